#!/usr/bin/python3
"""gen_reference.py: golden fixtures for the framework-parity test (tests/test_parity.c).

Regenerate (from the repository root, Debian's python3-torch 1.13, CPU):
    /usr/bin/python3 scripts/gen_reference.py --out tests/reference

For each configuration below it builds CRATE-MAE in PyTorch from the
MODEL.md §3 specification (own nn.Module code, float32, official tensor
names of MODEL.md §6 including the two dead official members), draws
weights from MODEL.md §4 plus random perturbations (so that LayerNorm gains,
biases and tokens are not trivially 1 / 0), a fixed input batch in [0, 1]
and FIXED masks with exactly n_keep visible patches per image, and runs
forward + backward.  Two files per configuration:

  <name>.model.safetensors  the weights as a crate model file (F32, every
                            trainable tensor + decoder_pos_embed, MODEL.md
                            §11.2 metadata).  For presets it is produced by
                            tools/torch2crate.py from an official-style
                            checkpoint ({'state_dict': {'module.' + name}}
                            with pos_embed and decoder_embed), so the
                            converter is exercised end to end.
  <name>.ref.safetensors    input (F16 (B, C, H, H), values k/256, exact in
                            F16), mask (F32 (B, n), 1 = masked), loss (F64
                            scalar, the float32 loss), pred (F32 (B, n, P),
                            target order (i, j, ch)), grad.<name> (F32) for
                            every trainable tensor, ref64.loss (F64: the same
                            model evaluated in float64), and metadata: the
                            config (crate.* keys), the seed, the torch
                            version and float32-vs-float64 noise figures.

Forward (MODEL.md §3): stride-Q conv patch embedding; mask tokens replace
masked patches BEFORE the encoder; CLS first; + decoder_pos_embed (2-D
sin-cos, column index first, computed in float32 as the official
pos_embed.py does); encoder blocks H = X + MSSA(LN1 X) (shared qkv without
bias, softmax(p^-1/2 W W^T) over keys, out-projection with bias),
X' = ReLU(A + eta D^T A - eta D^T D A - eta lambda) with A = LN2 H (the
official 3-product form) and no residual; norm (eps 1e-6); decoder blocks
H = E LN_a(X), X' = H - MSSA_V(LN_b H); decoder_norm (eps 1e-6);
decoder_pred; CLS dropped; masked MSE averaged over all masked patches of
the batch.

The seed is advanced until no ISTA pre-activation lies within 2e-5 of the
ReLU kink (recorded as crate.ref.min_abs_ista_preact), so that float32
rounding differences between implementations cannot flip a ReLU and change
a gradient discontinuously.
"""

import argparse
import math
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import torch2crate  # noqa: E402

KINK_MARGIN = 2e-5

# name: config overrides + batch + first seed.  fmnist-tiny is the preset;
# rgb224-mini is a small 224-pixel RGB config (N = 197, P = 768) whose two
# patch-vector orders differ.
CONFIGS = {
    "fmnist-tiny": dict(base="fmnist-tiny", batch=3, seed=1000),
    "rgb224-mini": dict(base="mae-tiny", batch=2, seed=2000,
                        over=dict(preset="custom", embed_dim=64, num_heads=4, decoder_embed_dim=64,
                                  decoder_num_heads=4, depth=2, decoder_depth=2, ista_lambda=0.5,
                                  pixel_mean=[0.0, 0.0, 0.0], pixel_std=[1.0, 1.0, 1.0])),
}


# ---- the model (MODEL.md §3, official names of §6) -------------------------------


def sincos_table(d, g):
    """(g*g + 1, d) table of MODEL.md §3.5 in float32 like the official
    numpy code: [sin(c w) | cos(c w) | sin(r w) | cos(r w)], CLS row 0."""
    D4 = d // 4
    omega = np.arange(D4, dtype=np.float32)
    omega /= np.float32(D4)
    omega = np.float32(1.0) / np.float32(10000.0) ** omega
    rows = []
    for r in range(g):
        for c in range(g):
            oc = np.float32(c) * omega
            orr = np.float32(r) * omega
            rows.append(np.concatenate([np.sin(oc), np.cos(oc), np.sin(orr), np.cos(orr)]))
    t = np.concatenate([np.zeros((1, d), np.float32), np.stack(rows).astype(np.float32)])
    return t.astype(np.float32)


class PreNorm(nn.Module):
    def __init__(self, d, fn):
        super().__init__()
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class MSSA(nn.Module):
    """M = W_o [X_1 A_1; ...; X_K A_K] + b_o, X_k = W_k z (shared qkv),
    A_k = softmax over keys of p^-1/2 X_k^T X_k."""

    def __init__(self, d, K):
        super().__init__()
        self.K, self.p = K, d // K
        self.qkv = nn.Linear(d, d, bias=False)
        self.to_out = nn.Sequential(nn.Linear(d, d))

    def forward(self, z):  # z: (B, N, d)
        B, N, d = z.shape
        w = self.qkv(z).reshape(B, N, self.K, self.p).permute(0, 2, 1, 3)  # (B, K, N, p)
        dots = torch.matmul(w, w.transpose(-1, -2)) * (self.p ** -0.5)  # (B, K, N, N)
        attn = torch.softmax(dots, dim=-1)  # row = query, softmax over keys
        out = torch.matmul(attn, w).permute(0, 2, 1, 3).reshape(B, N, d)
        return self.to_out(out)


class ISTA(nn.Module):
    """X' = ReLU(A + eta D^T A - eta D^T D A - eta lambda), official 3-product form."""

    def __init__(self, d, eta, lam):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, d))
        self.eta, self.lam = eta, lam
        self.last_preact = None

    def forward(self, a):  # a: (B, N, d), rows are tokens
        Da = F.linear(a, self.weight)                 # D a
        DtDa = F.linear(Da, self.weight.t())          # D^T D a
        Dta = F.linear(a, self.weight.t())            # D^T a
        u = a + self.eta * (Dta - DtDa) - self.eta * self.lam
        self.last_preact = u.detach()
        return F.relu(u)


class Dict(nn.Module):
    """H = E b (decoder dictionary, no bias)."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d, d))

    def forward(self, b):
        return F.linear(b, self.weight)


class EncoderBlock(nn.Module):
    def __init__(self, d, K, eta, lam):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([PreNorm(d, MSSA(d, K)),
                                                    PreNorm(d, ISTA(d, eta, lam))])])

    def forward(self, x):
        attn, ista = self.layers[0]
        h = x + attn(x)
        return ista(h)


class DecoderBlock(nn.Module):
    def __init__(self, d, K):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([PreNorm(d, Dict(d)),
                                                    PreNorm(d, MSSA(d, K))])])

    def forward(self, x):
        ff, attn = self.layers[0]
        h = ff(x)
        return h - attn(h)


class PatchEmbed(nn.Module):
    def __init__(self, C, Q, d):
        super().__init__()
        self.proj = nn.Conv2d(C, d, kernel_size=Q, stride=Q)

    def forward(self, x):  # (B, C, H, H) -> (B, n, d), token t = r g + c
        return self.proj(x).flatten(2).transpose(1, 2)


class CrateMAE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, C, Q = cfg["embed_dim"], cfg["in_chans"], cfg["patch_size"]
        self.cfg = cfg
        self.C, self.Q, self.g = C, Q, cfg["img_size"] // Q
        n = self.g * self.g
        self.patch_embed = PatchEmbed(C, Q, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        # official dead member: fixed, never used
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, d), requires_grad=False)
        self.blocks = nn.ModuleList([EncoderBlock(d, cfg["num_heads"], cfg["ista_eta"],
                                                  cfg["ista_lambda"])
                                     for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(d, eps=cfg["final_ln_eps"])
        # official dead member: trainable but never applied
        self.decoder_embed = nn.Linear(d, d, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, n + 1, d), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([DecoderBlock(d, cfg["decoder_num_heads"])
                                             for _ in range(cfg["decoder_depth"])])
        self.decoder_norm = nn.LayerNorm(d, eps=cfg["final_ln_eps"])
        self.decoder_pred = nn.Linear(d, C * Q * Q, bias=True)

    def patchify(self, imgs):
        """(B, C, H, H) -> (B, n, P) in target order (i, j, ch)."""
        B, C, Q, g = imgs.shape[0], self.C, self.Q, self.g
        x = imgs.reshape(B, C, g, Q, g, Q)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(B, g * g, Q * Q * C)

    def forward(self, imgs, mask):
        """imgs (B, C, H, H); mask (B, n) float 0/1, 1 = masked."""
        B = imgs.shape[0]
        e = self.patch_embed(imgs)                                     # (B, n, d)
        m = mask.unsqueeze(-1) > 0.5
        x = torch.where(m, self.mask_token.expand_as(e), e)            # mask tokens first
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)    # CLS is token 0
        x = x + self.decoder_pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        pred = self.decoder_pred(x)[:, 1:, :]                          # drop CLS
        target = self.patchify(imgs)
        per_patch = ((pred - target) ** 2).mean(dim=-1)                # (B, n)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, pred

    def min_abs_preact(self):
        return min(float(b.layers[0][1].fn.last_preact.abs().min()) for b in self.blocks)


def init_weights(model, gen):
    """MODEL.md §4 initialisation, then perturbations so that no parameter
    path is trivial (LayerNorm gains != 1, biases and tokens != 0)."""
    d = model.cfg["embed_dim"]

    def uni(t, bound):
        with torch.no_grad():
            t.copy_((torch.rand(t.shape, generator=gen) * 2 - 1) * bound)

    def nrm(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    def xavier(t):
        fan_out, fan_in = t.shape[0], int(np.prod(t.shape[1:]))
        uni(t, math.sqrt(6.0 / (fan_in + fan_out)))

    for name, p in model.named_parameters():
        if not p.requires_grad:             # pos_embed, decoder_pos_embed: fixed tables
            continue
        if name.endswith("norm.weight") or name in ("norm.weight", "decoder_norm.weight"):
            nrm(p, 0.2, 1.0)            # LayerNorm gain: 1 + 0.2 N(0,1)
        elif name.endswith("norm.bias"):
            nrm(p, 0.1)
        elif name == "patch_embed.proj.weight":
            xavier(p.view(p.shape[0], -1))
        elif name == "patch_embed.proj.bias":
            uni(p, 1.0 / math.sqrt(model.C * model.Q * model.Q))  # Conv2d default
        elif name in ("cls_token", "mask_token"):
            nrm(p, 0.2)
        elif name.endswith(".fn.weight"):   # ISTA D and decoder E: Kaiming-uniform
            uni(p, math.sqrt(6.0 / d))
        elif p.dim() == 2:                  # qkv, to_out, decoder_pred, decoder_embed
            xavier(p)
        elif name.endswith(".bias"):        # out-proj, decoder_pred, decoder_embed biases
            nrm(p, 0.05)
        else:
            raise RuntimeError("no init rule for " + name)
    table = torch.from_numpy(sincos_table(d, model.g)).unsqueeze(0)
    with torch.no_grad():
        model.decoder_pos_embed.copy_(table)
        model.pos_embed.copy_(table)


def make_batch(cfg, B, gen):
    """Images with values k/256 (exact in F16) and masks with exactly
    n_keep visible patches per image (official random_masking on fixed
    noise)."""
    C, H = cfg["in_chans"], cfg["img_size"]
    g = H // cfg["patch_size"]
    n = g * g
    imgs = torch.randint(0, 256, (B, C, H, H), generator=gen).float() / 256.0
    n_keep = int(n * (1 - cfg["mask_ratio"]))
    noise = torch.rand(B, n, generator=gen)
    ids_shuffle = torch.argsort(noise, dim=1)
    mask = torch.ones(B, n)
    for b in range(B):
        mask[b, ids_shuffle[b, :n_keep]] = 0.0
    return imgs, mask, n_keep


def trainable(model):
    return [(n, p) for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith("decoder_embed.")]


def run(model, imgs, mask):
    model.zero_grad(set_to_none=True)
    loss, pred = model(imgs, mask)
    loss.backward()
    return loss, pred


def generate(name, spec, out_dir, tmp_dir):
    cfg = torch2crate.preset_config(spec["base"])
    cfg.update(spec.get("over", {}))
    B = spec["batch"]
    for seed in range(spec["seed"], spec["seed"] + 200):
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = CrateMAE(cfg)
        init_weights(model, gen)
        imgs, mask, n_keep = make_batch(cfg, B, gen)
        loss, pred = run(model, imgs, mask)
        margin = model.min_abs_preact()
        if margin > KINK_MARGIN:
            break
        print("gen_reference: %s seed %d: an ISTA pre-activation is %.2e from the kink; "
              "next seed" % (name, seed, margin), file=sys.stderr)
    else:
        raise SystemExit("gen_reference: no seed kept the ISTA pre-activations off the kink")

    grads = {n: p.grad.detach().clone() for n, p in trainable(model)}
    for n, gr in grads.items():
        if gr is None or not torch.isfinite(gr).all():
            raise SystemExit("gen_reference: bad gradient for " + n)

    # The same model in float64: the float32 noise floor of the reference.
    m64 = CrateMAE(cfg).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    loss64, pred64 = run(m64, imgs.double(), mask.double())
    g64 = {n: p.grad for n, p in trainable(m64)}
    noise_loss = abs(float(loss) - float(loss64)) / abs(float(loss64))
    noise_pred = float((pred.double() - pred64).abs().max() / pred64.abs().max())
    noise_grad = max(float((grads[n].double() - g64[n]).abs().max() / g64[n].abs().max())
                     for n in grads)

    # Model file: for presets through the converter, from an official-style
    # checkpoint ('state_dict' container, 'module.' prefix, dead members).
    sd = model.state_dict()
    model_path = os.path.join(out_dir, name + ".model.safetensors")
    source = "scripts/gen_reference.py %s seed %d" % (name, seed)
    if cfg["preset"] in torch2crate.PRESETS:
        pth = os.path.join(tmp_dir, name + ".pth")
        torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, pth)
        argv = ["--preset", cfg["preset"], "--lambda", repr(cfg["ista_lambda"]),
                "--source", source, pth, model_path]
        if torch2crate.main(argv) != 0:
            raise SystemExit("gen_reference: torch2crate failed")
    else:
        tensors = torch2crate.convert_state_dict(sd, cfg)
        torch2crate.write_safetensors(model_path, tensors,
                                      torch2crate.config_metadata(cfg, source))

    ref = {
        "input": imgs.numpy().astype(np.float16),
        "mask": mask.numpy().astype(np.float32),
        "loss": np.array(float(loss), dtype=np.float64),
        "pred": pred.detach().numpy().astype(np.float32),
        "ref64.loss": np.array(float(loss64), dtype=np.float64),
    }
    if not np.array_equal(ref["input"].astype(np.float32), imgs.numpy()):
        raise SystemExit("gen_reference: input not exact in F16")
    for n, gr in grads.items():
        ref["grad." + n] = gr.numpy().astype(np.float32)
    md = torch2crate.config_metadata(cfg, source)
    md.update({
        "crate.ref.name": name,
        "crate.ref.seed": str(seed),
        "crate.ref.batch": str(B),
        "crate.ref.n_keep": str(n_keep),
        "crate.ref.torch": torch.__version__,
        "crate.ref.generator": "scripts/gen_reference.py",
        "crate.ref.ista_form": "3-product (official)",
        "crate.ref.min_abs_ista_preact": "%.3e" % margin,
        "crate.ref.f32_vs_f64.loss": "%.3e" % noise_loss,
        "crate.ref.f32_vs_f64.pred": "%.3e" % noise_pred,
        "crate.ref.f32_vs_f64.grad_max": "%.3e" % noise_grad,
    })
    ref_path = os.path.join(out_dir, name + ".ref.safetensors")
    torch2crate.write_safetensors(ref_path, ref, md)
    print("gen_reference: %s: seed %d, B=%d, loss %.9g (float64 model %.9g), float32 noise: "
          "loss %.1e pred %.1e grad %.1e, kink margin %.1e; %s (%d bytes), %s (%d bytes)"
          % (name, seed, B, float(loss), float(loss64), noise_loss, noise_pred, noise_grad,
             margin, model_path, os.path.getsize(model_path), ref_path,
             os.path.getsize(ref_path)), file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="gen_reference.py",
                                 description="Generate the framework-parity fixtures.")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "reference"),
                    help="output directory [tests/reference]")
    ap.add_argument("--only", choices=sorted(CONFIGS), default=None,
                    help="generate one configuration only")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # fixed reduction order: bit-identical reruns
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CONFIGS.items():
            if a.only is None or a.only == name:
                generate(name, spec, a.out, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
