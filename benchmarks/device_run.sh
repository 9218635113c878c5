#!/bin/bash
# device_run.sh: the scaling measurements of benchmarks/README.md on a
# machine with many cores, from a bundle built elsewhere:
#   BUNDLE/crate, BUNDLE/crate-noomp (built with -Dopenmp=disabled) and
#   BUNDLE/lib/ (libopenblas.so.0, libgfortran.so.5, libquadmath.so.0,
#   libjansson.so.4, libpng16.so.16, libgomp.so.1 from the build machine).
# Usage: benchmarks/device_run.sh BUNDLE OUTDIR [what...]
#   what: info threads batch size torch recon (default: all)
# Writes OUTDIR/scaling.jsonl, OUTDIR/compare.jsonl and OUTDIR/*.log.
set -u
B=$(cd "$1" && pwd)
OUT=$2
shift 2
WHAT=${*:-info threads batch size torch recon}
export LD_LIBRARY_PATH=$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NCPU=$(nproc)
mkdir -p "$OUT"
has() { case " $WHAT " in *" $1 "*) return 0 ;; esac; return 1; }
if has info; then
  lscpu | head -20 | tee "$OUT/info.log"
  "$B/crate" bench -v --steps 1 --warmup 0 --infer-reps 0 --no-ceiling --batch 1 --threads 1 \
    2>&1 | tee -a "$OUT/info.log" | grep -i core
fi
T="1,2,4,8"
[ "$NCPU" -ge 16 ] && T="$T,16"
if has threads; then
  python3 benchmarks/scaling.py --crate "$B/crate" --crate-noomp "$B/crate-noomp" --threads "$T" \
    --sweeps threads --passive --out "$OUT/scaling.jsonl"
fi
if has batch; then
  python3 benchmarks/scaling.py --crate "$B/crate" --threads "$T" --sweeps batch \
    --out "$OUT/scaling.jsonl"
fi
if has size; then
  python3 benchmarks/scaling.py --crate "$B/crate" --threads "$T" --sweeps size \
    --out "$OUT/scaling.jsonl"
fi
if has torch; then
  python3 benchmarks/compare.py --crate "$B/crate" --python python3 --threads "1,2,$NCPU" \
    --rounds 2 --recon-reps 20 --label device --out "$OUT/compare.jsonl" 2>&1 |
    tee "$OUT/compare.log"
fi
if has recon; then
  # whole-process reconstruct: with the auto-selected core (may re-exec) and
  # with OPENBLAS_CORETYPE preset (no re-exec possible)
  python3 - "$B/crate" <<'EOF' 2>&1 | tee "$OUT/recon.log"
import os, subprocess, sys, time, statistics, glob
crate = sys.argv[1]
m = "/tmp/recon-model.safetensors"
subprocess.run([crate, "bench", "--steps", "1", "--warmup", "0", "--infer-reps", "0",
                "--no-ceiling", "--batch", "1", "--threads", "1", "--json", "--save-model", m],
               check=True, stdout=subprocess.DEVNULL)
img = sorted(glob.glob("data/samples/*.png"))[0]
for label, extra in [("auto", {}), ("OPENBLAS_NUM_THREADS=1", {"OPENBLAS_NUM_THREADS": "1"})]:
    env = dict(os.environ, **extra)
    ts = []
    for i in range(21):
        t0 = time.perf_counter()
        subprocess.run([crate, "reconstruct", "-m", m, "-i", img, "-o", "/tmp/r.png", "-q",
                        "-t", "1"], env=env, check=True, stdout=subprocess.DEVNULL)
        if i:
            ts.append(1e3 * (time.perf_counter() - t0))
    print("reconstruct wall %-24s median %.2f ms  min %.2f ms" % (label, statistics.median(ts),
                                                                  min(ts)))
EOF
fi
