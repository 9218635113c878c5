#!/usr/bin/env python3
"""compare.py: crate against the PyTorch reference, side by side (issue 6).

For each thread count it runs `crate bench --json` (A) and
benchmarks/bench_torch.py (B) alternately, A B A B ..., for --rounds rounds,
then prints each side's median training throughput, the ratio crate / torch,
crate's achieved GFLOP/s against the SGEMM ceiling it measured in the same
run, both peak RSS figures and their ratio, and the single-image latency.
It also times whole-process `crate reconstruct` on a sample image (model load
included): with models/fmnist-tiny.safetensors when it exists, else a
randomly initialised model written by `crate bench --save-model`.

Both sides see the same thread count (crate --threads T; torch
set_num_threads(T) plus OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS = T).  Debian's torch calls OpenBLAS for its matrix products;
by default it gets OPENBLAS_CORETYPE = the kernel family crate reports, so
both sides run the same kernels (--torch-coretype default leaves the
variable unset, i.e. OpenBLAS's own choice; crate then still picks its
kernels, see `crate bench --help`), and the OMP_WAIT_POLICY crate ran with
(crate sets passive unless the caller set one; --torch-omp-wait default
leaves torch with libgomp's spinning default).

    python3 benchmarks/compare.py --crate build-rel/tools/crate \\
        --python /usr/bin/python3 --threads 1,2 --rounds 3 --out results.jsonl

Not a test: keep it out of CI.  The last measured table lives in
benchmarks/README.md.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd, env):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("compare.py: %s failed (%d):\n%s" % (" ".join(cmd), r.returncode,
                                                            r.stderr[-2000:]))
    line = [s for s in r.stdout.splitlines() if s.startswith("{")][-1]
    return json.loads(line)


def thread_env(base, t):
    env = dict(base)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(t)
    return env


def reconstruct_wall(crate, env, reps, tmp):
    """Median wall time (ms) of the whole `crate reconstruct` process."""
    model = os.path.join(ROOT, "models", "fmnist-tiny.safetensors")
    which = "shipped"
    if not os.path.exists(model):
        model = os.path.join(tmp, "random-fmnist-tiny.safetensors")
        which = "random init"
        run_json([crate, "bench", "--steps", "1", "--warmup", "0", "--infer-reps", "0",
                  "--no-ceiling", "--batch", "1", "--threads", "1", "--json",
                  "--save-model", model], env)
    samples = sorted(glob.glob(os.path.join(ROOT, "data", "samples", "*.png")))
    if not samples:
        return None, which
    out = os.path.join(tmp, "recon.png")
    cmd = [crate, "reconstruct", "-m", model, "-i", samples[0], "-o", out, "-q", "-t", "1"]
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit("compare.py: crate reconstruct failed:\n" + r.stderr.decode()[-2000:])
        if i > 0:  # the first run warms the page cache
            times.append(1e3 * dt)
    return statistics.median(times), which


def main(argv=None):
    ap = argparse.ArgumentParser(prog="compare.py")
    ap.add_argument("--crate", default=os.path.join(ROOT, "build", "tools", "crate"))
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch")
    ap.add_argument("--preset", default="fmnist-tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--torch-coretype", default="same", choices=["same", "default"])
    ap.add_argument("--torch-omp-wait", default="same", choices=["same", "default"],
                    help="same: torch gets the OMP_WAIT_POLICY crate ran with")
    ap.add_argument("--recon-reps", type=int, default=20)
    ap.add_argument("--out", default=None, help="append every raw result as a JSON line")
    ap.add_argument("--label", default="", help="tag stored with each JSON line")
    a = ap.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",") if t]
    base = dict(os.environ)
    rows, raw = [], []
    for t in threads:
        env = thread_env(base, t)
        c_runs, t_runs = [], []
        for r in range(a.rounds):
            c = run_json([a.crate, "bench", "--preset", a.preset, "--batch", str(a.batch),
                          "--threads", str(t), "--steps", str(a.steps), "--warmup",
                          str(a.warmup), "--json"], env)
            c_runs.append(c)
            tenv = dict(env)
            if a.torch_coretype == "same" and c.get("blas_core") not in (None, "unknown"):
                tenv["OPENBLAS_CORETYPE"] = c["blas_core"]
            if a.torch_omp_wait == "same" and c.get("omp_wait_policy"):
                tenv["OMP_WAIT_POLICY"] = c["omp_wait_policy"]
            tt = run_json([a.python, os.path.join(HERE, "bench_torch.py"), "--preset", a.preset,
                           "--batch", str(a.batch), "--threads", str(t), "--steps",
                           str(a.steps), "--warmup", str(a.warmup)], tenv)
            t_runs.append(tt)
            print("compare.py: threads %d round %d: crate %.1f img/s, torch %.1f img/s"
                  % (t, r + 1, c["train_img_per_s"], tt["train_img_per_s"]), file=sys.stderr,
                  flush=True)
        for x in c_runs:
            x.update(side="crate", label=a.label)
        for x in t_runs:
            x.update(side="torch", label=a.label)
        raw += c_runs + t_runs
        med = lambda runs, k: statistics.median([x[k] for x in runs])  # noqa: E731
        row = dict(threads=t, crate=med(c_runs, "train_img_per_s"),
                   torch=med(t_runs, "train_img_per_s"),
                   gflops=med(c_runs, "gflops"), ceiling=med(c_runs, "sgemm_ceiling_gflops"),
                   torch_gflops=med(t_runs, "gflops"),
                   rss_c=med(c_runs, "peak_rss_mb"), rss_t=med(t_runs, "peak_rss_mb"),
                   rec_c=med(c_runs, "reconstruct_ms"), rec_t=med(t_runs, "reconstruct_ms"),
                   core=c_runs[0].get("blas_core"), owner=c_runs[0].get("thread_owner"),
                   torch_version=t_runs[0].get("torch"),
                   torch_core=t_runs[0].get("openblas_coretype") or "default",
                   wait=c_runs[0].get("omp_wait_policy") or "default",
                   torch_wait=t_runs[0].get("omp_wait_policy") or "default")
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        rec_wall, which = reconstruct_wall(a.crate, thread_env(base, 1), a.recon_reps, tmp)
    if a.out:
        with open(a.out, "a") as f:
            for x in raw:
                f.write(json.dumps(x) + "\n")
            f.write(json.dumps(dict(side="crate", kind="reconstruct_wall", label=a.label,
                                    model=which, ms=rec_wall)) + "\n")

    print("\n%s, batch %d, %d rounds A B A B (medians); crate: BLAS core %s, model threads owned "
          "by %s, OMP_WAIT_POLICY %s; torch %s: OPENBLAS_CORETYPE %s, OMP_WAIT_POLICY %s\n"
          % (a.preset, a.batch, a.rounds, rows[0]["core"], rows[0]["owner"], rows[0]["wait"],
             rows[0]["torch_version"], rows[0]["torch_core"], rows[0]["torch_wait"]))
    print("| threads | crate img/s | torch img/s | crate / torch | crate GFLOP/s | SGEMM ceiling "
          "| achieved / ceiling | torch GFLOP/s | peak RSS crate / torch (MB) | RSS ratio "
          "| 1-image infer crate / torch (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %.1f | %.1f | **%.2f** | %.1f | %.1f | **%.2f** | %.1f | %.0f / %.0f | "
              "**%.2f** | %.2f / %.2f |"
              % (r["threads"], r["crate"], r["torch"], r["crate"] / r["torch"], r["gflops"],
                 r["ceiling"], r["gflops"] / r["ceiling"], r["torch_gflops"], r["rss_c"],
                 r["rss_t"], r["rss_c"] / r["rss_t"], r["rec_c"], r["rec_t"]))
    if rec_wall is not None:
        print("\nwhole-process `crate reconstruct` (%s model, 1 thread, median of %d): %.1f ms"
              % (which, a.recon_reps, rec_wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
