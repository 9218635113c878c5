#!/usr/bin/env python3
"""scaling.py: the scaling figures of issue 6, from `crate bench --json` runs.

Series (each a JSON line in --out, tagged with "series" and "sweep"):
  threads  fmnist-tiny, batch 64, T in --threads, for each thread-ownership
           variant: large GEMMs on OpenMP tiles (CRATE_THREAD_OWNER=openmp),
           on threaded OpenBLAS (CRATE_THREAD_OWNER=blas), and a build without
           OpenMP (--crate-noomp: threaded OpenBLAS only); plus, with
           --passive, OMP_WAIT_POLICY=passive;
  batch    fmnist-tiny, B in --batches, at the smallest and largest T;
  size     forward only (training forward, no backward) of mae-tiny and
           mae-base at image sides --sizes (tokens N = (H/16)^2 + 1), batch 8,
           largest T.

    python3 benchmarks/scaling.py --crate .dev/bench/crate \\
        --crate-noomp .dev/bench/crate-noomp --threads 1,2,4,8,16 --out scaling.jsonl
    crate bench --plot scaling.jsonl --sweep threads -o benchmarks/scaling_threads.png

Not a test; the last measured figures live in benchmarks/README.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def bench(crate, args, env_extra, series, sweep, out):
    env = dict(os.environ)
    env.update(env_extra)
    t = [a for i, a in enumerate(args) if i > 0 and args[i - 1] == "--threads"]
    if t:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = t[0]
    t0 = time.time()
    r = subprocess.run([crate, "bench", "--json"] + args, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        print("scaling.py: %s %s failed: %s" % (series, " ".join(args), r.stderr[-500:]),
              file=sys.stderr, flush=True)
        return None
    j = json.loads([s for s in r.stdout.splitlines() if s.startswith("{")][-1])
    j.update(series=series, sweep=sweep, wall_s=time.time() - t0)
    with open(out, "a") as f:
        f.write(json.dumps(j) + "\n")
    key = "train_img_per_s" if "train_img_per_s" in j else "forward_img_per_s"
    print("%-22s %-8s %-12s B=%-4d T=%-3d H=%-4d %9.1f img/s %8.1f GFLOP/s ceil %7s  rss %6.0f MB"
          "  infer %s ms" % (series, sweep, j["preset"], j["batch"], j["threads"], j["img_size"],
                             j[key], j["gflops"],
                             "%.1f" % j["sgemm_ceiling_gflops"] if j["sgemm_ceiling_gflops"]
                             else "-", j["peak_rss_mb"],
                             "%.3f" % j["reconstruct_ms"] if j["reconstruct_ms"] else "-"),
          flush=True)
    return j


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scaling.py")
    ap.add_argument("--crate", required=True)
    ap.add_argument("--crate-noomp", default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="16,32,64,128,256")
    ap.add_argument("--sizes", default="64,112,160,224")
    ap.add_argument("--sweeps", default="threads,batch,size")
    ap.add_argument("--passive", action="store_true")
    ap.add_argument("--steps", default="20")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    threads = [t for t in a.threads.split(",") if t]
    sweeps = a.sweeps.split(",")
    common = ["--preset", "fmnist-tiny", "--batch", "64", "--steps", a.steps]
    if "threads" in sweeps:
        for t in threads:
            bench(a.crate, common + ["--threads", t], {"CRATE_THREAD_OWNER": "openmp"},
                  "crate owner=openmp", "threads", a.out)
            bench(a.crate, common + ["--threads", t], {"CRATE_THREAD_OWNER": "blas"},
                  "crate owner=blas", "threads", a.out)
            if a.crate_noomp:
                bench(a.crate_noomp, common + ["--threads", t], {}, "crate no-openmp", "threads",
                      a.out)
            if a.passive and t != "1":
                bench(a.crate, common + ["--threads", t],
                      {"CRATE_THREAD_OWNER": "openmp", "OMP_WAIT_POLICY": "passive"},
                      "crate omp passive", "threads", a.out)
    if "batch" in sweeps:
        for t in sorted({threads[0], threads[-1]}, key=int):
            for b in a.batches.split(","):
                bench(a.crate, ["--preset", "fmnist-tiny", "--batch", b, "--threads", t,
                                "--steps", "10", "--infer-reps", "0", "--no-ceiling"], {},
                      "crate T=%s" % t, "batch", a.out)
    if "size" in sweeps:
        for preset in ("mae-tiny", "mae-base"):
            for h in a.sizes.split(","):
                bench(a.crate, ["--preset", preset, "--img-size", h, "--batch", "8", "--threads",
                                threads[-1], "--steps", "5", "--warmup", "2", "--infer-reps", "0",
                                "--no-ceiling", "--forward-only"], {},
                      "crate %s fwd" % preset, "size", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
