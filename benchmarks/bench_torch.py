#!/usr/bin/python3
"""bench_torch.py: the PyTorch side of the issue-6 benchmark.

The same CRATE-MAE as the parity fixtures (the nn.Module of
scripts/gen_reference.py: MODEL.md §3, official 3-product ISTA), float32 on
the CPU, trained the way `crate bench` trains it: synthetic images uniform in
[0, 1), a fresh random mask per step (n_keep visible patches per image),
forward + masked MSE + backward + AdamW (betas 0.9 / 0.95, eps 1e-8, weight
decay 0.05 on >= 2-D tensors only, MODEL.md §10.1).  It prints one JSON
object with the keys of `crate bench --json`:

    preset, batch, threads, train_img_per_s, step_ms_median, gflops
    (MODEL.md §9 FLOP count, the same number crate divides by),
    peak_rss_mb (ru_maxrss of this process, read after training and
    inference), reconstruct_ms (one image, forward under inference_mode).

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 benchmarks/bench_torch.py --preset fmnist-tiny --batch 64 --threads 1
Thread counts: torch.set_num_threads(T); set OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS to T in the environment too (benchmarks/compare.py
does), since Debian's torch calls OpenBLAS for its matrix products.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))

import torch  # noqa: E402

import gen_reference  # noqa: E402  (the parity model; imports tools/torch2crate.py)


def flops_per_image(cfg):
    """MODEL.md §9 (as crate_config_flops): matrix products only, 2 FLOPs per
    multiply-add; forward = L_e encoder + L_d decoder layers + patch
    embedding (all n patches) + head; training = 3 x forward."""
    d, Q, C = cfg["embed_dim"], cfg["patch_size"], cfg["in_chans"]
    g = cfg["img_size"] // Q
    n = g * g
    N, P = n + 1, C * Q * Q
    enc = 8 * N * d * d + 4 * N * N * d
    dec = 6 * N * d * d + 4 * N * N * d
    fwd = cfg["depth"] * enc + cfg["decoder_depth"] * dec + 2 * n * P * d + 2 * n * P * d
    return fwd, 3 * fwd


def make_masks(B, n, n_keep, gen):
    noise = torch.rand(B, n, generator=gen)
    ids = torch.argsort(noise, dim=1)
    mask = torch.ones(B, n)
    mask.scatter_(1, ids[:, :n_keep], 0.0)
    return mask


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench_torch.py")
    ap.add_argument("--preset", default="fmnist-tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer-reps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    cfg = gen_reference.torch2crate.preset_config(a.preset)
    model = gen_reference.CrateMAE(cfg)
    gen_reference.init_weights(model, gen)
    params = gen_reference.trainable(model)
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)

    C, H = cfg["in_chans"], cfg["img_size"]
    g = H // cfg["patch_size"]
    n = g * g
    n_keep = int(n * (1 - cfg["mask_ratio"]))
    imgs = torch.rand(a.batch, C, H, H, generator=gen)

    times, loss = [], float("nan")
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        mask = make_masks(a.batch, n, n_keep, gen)
        opt.zero_grad(set_to_none=True)
        l, _ = model(imgs, mask)
        l.backward()
        opt.step()
        loss = float(l.detach())
        dt = time.perf_counter() - t0
        if s >= a.warmup:
            times.append(dt)

    rec = []
    one = imgs[:1]
    m1 = make_masks(1, n, n_keep, gen)
    with torch.inference_mode():
        for r in range(3 + a.infer_reps):
            t0 = time.perf_counter()
            model(one, m1)
            if r >= 3:
                rec.append(time.perf_counter() - t0)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    fwd, train = flops_per_image(cfg)
    med = statistics.median(times)
    out = {
        "side": "torch",
        "torch": torch.__version__,
        "preset": a.preset,
        "batch": a.batch,
        "threads": a.threads,
        "steps": a.steps,
        "warmup": a.warmup,
        "step_ms_median": 1e3 * med,
        "step_ms_min": 1e3 * min(times),
        "train_img_per_s": a.batch / med,
        "flops_per_image": float(train),
        "gflops": train * a.batch / med * 1e-9,
        "peak_rss_mb": rss_mb,
        "reconstruct_ms": 1e3 * statistics.median(rec) if rec else None,
        "loss": loss,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
