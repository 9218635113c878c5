#!/usr/bin/python3
"""torch2crate.py: convert a PyTorch CRATE-MAE checkpoint to a crate model file.

Usage:
    /usr/bin/python3 tools/torch2crate.py --preset PRESET [--lambda L]
        [--source TEXT] IN.pth OUT.safetensors

MODEL.md §11.4 (import), §11.1 (file layout), §11.2 (metadata), §6 (names).

  1. torch.load(IN, map_location="cpu").
  2. Take the 'model' (MAE framework) or 'state_dict' (CRATE's own script)
     entry, or use the object itself when it is a bare state dict; strip a
     leading 'module.' from every key.
  3. Drop the official-only tensors pos_embed and decoder_embed.* (never
     used by the network, MODEL.md §6); reject any other unknown tensor and
     any missing one; check every shape against the preset.
  4. Write F32 safetensors with the standard library only (struct + json):
     tensors ordered by descending dtype alignment then name, compact JSON
     with __metadata__ first (keys sorted), padded with spaces to a multiple
     of 8, written to a temporary file and renamed (atomic).  The metadata
     holds the preset's configuration (§11.2 keys); the head count and
     lambda cannot be read from the shapes, so they come from the preset
     (lambda can be overridden with --lambda: official checkpoints do not
     record it, MODEL.md §10.2 O1).

The module also serves tools/crate2torch.py and scripts/gen_reference.py:
PRESETS, config_metadata(), required_names(), write_safetensors(),
read_safetensors().  Debian's python3-torch (1.13) and numpy are the only
non-standard dependencies; the safetensors pip package is not used.
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

FORMAT_VERSION = "1"

# MODEL.md §2 preset table; mae presets use lambda = 0.5 (open choice O1)
# and the ImageNet input transform, fmnist presets none (O9).
_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
PRESETS = {
    "fmnist-tiny": dict(img_size=28, in_chans=1, patch_size=4, embed_dim=128, depth=4,
                        num_heads=4, ista_lambda=0.1),
    "fmnist-small": dict(img_size=28, in_chans=1, patch_size=4, embed_dim=256, depth=6,
                         num_heads=8, ista_lambda=0.1),
    "mae-tiny": dict(img_size=224, in_chans=3, patch_size=16, embed_dim=384, depth=12,
                     num_heads=6, ista_lambda=0.5),
    "mae-small": dict(img_size=224, in_chans=3, patch_size=16, embed_dim=576, depth=12,
                      num_heads=12, ista_lambda=0.5),
    "mae-base": dict(img_size=224, in_chans=3, patch_size=16, embed_dim=768, depth=12,
                     num_heads=12, ista_lambda=0.5),
    "mae-large": dict(img_size=224, in_chans=3, patch_size=16, embed_dim=1024, depth=24,
                      num_heads=16, ista_lambda=0.5),
}


def preset_config(name):
    """The full configuration of a preset (MODEL.md §2, §5, §11.2 fields)."""
    if name not in PRESETS:
        raise SystemExit("torch2crate: unknown preset '%s' (known: %s)"
                         % (name, ", ".join(PRESETS)))
    p = PRESETS[name]
    rgb = p["in_chans"] == 3 and name.startswith("mae-")
    return dict(
        preset=name, img_size=p["img_size"], patch_size=p["patch_size"],
        in_chans=p["in_chans"], embed_dim=p["embed_dim"], depth=p["depth"],
        num_heads=p["num_heads"], decoder_embed_dim=p["embed_dim"],
        decoder_depth=p["depth"], decoder_num_heads=p["num_heads"],
        ista_eta=0.1, ista_lambda=p["ista_lambda"], ln_eps=1e-5, final_ln_eps=1e-6,
        norm_pix_loss=False, mask_ratio=0.75,
        pixel_mean=list(_IMAGENET[0]) if rgb else [0.0] * p["in_chans"],
        pixel_std=list(_IMAGENET[1]) if rgb else [1.0] * p["in_chans"],
    )


def _g(x):
    """%.9g of a double: round-trips every float32, prints 0.1 as 0.1."""
    return "%.9g" % float(x)


def config_metadata(cfg, source=None):
    """MODEL.md §11.2 metadata (string -> string) for a configuration."""
    c = cfg["in_chans"]
    md = {
        "crate.format_version": FORMAT_VERSION,
        "crate.arch": "crate-mae",
        "crate.preset": cfg["preset"],
        "crate.img_size": str(int(cfg["img_size"])),
        "crate.patch_size": str(int(cfg["patch_size"])),
        "crate.in_chans": str(int(c)),
        "crate.embed_dim": str(int(cfg["embed_dim"])),
        "crate.depth": str(int(cfg["depth"])),
        "crate.num_heads": str(int(cfg["num_heads"])),
        "crate.decoder_embed_dim": str(int(cfg["decoder_embed_dim"])),
        "crate.decoder_depth": str(int(cfg["decoder_depth"])),
        "crate.decoder_num_heads": str(int(cfg["decoder_num_heads"])),
        "crate.ista_eta": _g(cfg["ista_eta"]),
        "crate.ista_lambda": _g(cfg["ista_lambda"]),
        "crate.ln_eps": _g(cfg["ln_eps"]),
        "crate.final_ln_eps": _g(cfg["final_ln_eps"]),
        "crate.norm_pix_loss": "true" if cfg["norm_pix_loss"] else "false",
        "crate.mask_ratio": _g(cfg["mask_ratio"]),
        "crate.pixel_mean": ",".join(_g(v) for v in cfg["pixel_mean"][:c]),
        "crate.pixel_std": ",".join(_g(v) for v in cfg["pixel_std"][:c]),
    }
    if source is not None:
        md["crate.source"] = str(source)
    return md


def required_shapes(cfg):
    """name -> shape of every tensor a crate model file holds (MODEL.md §6):
    the trainable tensors plus decoder_pos_embed."""
    d, C, Q = cfg["embed_dim"], cfg["in_chans"], cfg["patch_size"]
    g = cfg["img_size"] // Q
    N, P = g * g + 1, C * Q * Q
    s = {
        "cls_token": (1, 1, d), "mask_token": (1, 1, d), "decoder_pos_embed": (1, N, d),
        "patch_embed.proj.weight": (d, C, Q, Q), "patch_embed.proj.bias": (d,),
        "norm.weight": (d,), "norm.bias": (d,),
        "decoder_norm.weight": (d,), "decoder_norm.bias": (d,),
        "decoder_pred.weight": (P, d), "decoder_pred.bias": (P,),
    }
    for i in range(cfg["depth"]):
        b = "blocks.%d.layers.0." % i
        s[b + "0.norm.weight"] = (d,)
        s[b + "0.norm.bias"] = (d,)
        s[b + "0.fn.qkv.weight"] = (d, d)
        s[b + "0.fn.to_out.0.weight"] = (d, d)
        s[b + "0.fn.to_out.0.bias"] = (d,)
        s[b + "1.norm.weight"] = (d,)
        s[b + "1.norm.bias"] = (d,)
        s[b + "1.fn.weight"] = (d, d)
    for j in range(cfg["decoder_depth"]):
        b = "decoder_blocks.%d.layers.0." % j
        s[b + "0.norm.weight"] = (d,)
        s[b + "0.norm.bias"] = (d,)
        s[b + "0.fn.weight"] = (d, d)
        s[b + "1.norm.weight"] = (d,)
        s[b + "1.norm.bias"] = (d,)
        s[b + "1.fn.qkv.weight"] = (d, d)
        s[b + "1.fn.to_out.0.weight"] = (d, d)
        s[b + "1.fn.to_out.0.bias"] = (d,)
    return s


OFFICIAL_ONLY = ("pos_embed", "decoder_embed.weight", "decoder_embed.bias")

# ---- safetensors (MODEL.md §11.1) with the standard library -------------------

_DTYPES = {  # numpy dtype -> (safetensors name, alignment)
    np.dtype("float64"): ("F64", 8),
    np.dtype("float32"): ("F32", 4),
    np.dtype("float16"): ("F16", 2),
}
_FROM_NAME = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2")}


def safetensors_bytes(tensors, metadata=None):
    """Serialises {name: numpy array} (+ metadata) exactly as crate's C
    writer does: descending alignment then name, __metadata__ first with
    sorted keys, compact JSON padded with spaces to a multiple of 8."""
    items = []
    for name, arr in tensors.items():
        a = np.asarray(arr)
        if a.dtype not in _DTYPES:
            raise ValueError("tensor %s: unsupported dtype %s" % (name, a.dtype))
        items.append((name, a))
    items.sort(key=lambda t: (-_DTYPES[t[1].dtype][1], t[0].encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    blobs, off = [], 0
    for name, a in items:
        dt = _DTYPES[a.dtype][0]
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": [int(s) for s in a.shape],
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def write_safetensors(path, tensors, metadata=None):
    """Writes atomically: a temporary file in the same directory, renamed."""
    data = safetensors_bytes(tensors, metadata)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(data)


def read_safetensors(path):
    """Reads a safetensors file: ({name: numpy array}, metadata dict).
    Checks the layout rules of MODEL.md §11.1 (BF16 is widened to float32)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: truncated (%d bytes)" % (path, len(buf)))
    (n,) = struct.unpack("<Q", buf[:8])
    if n > 100000000 or 8 + n > len(buf):
        raise ValueError("%s: bad header length %d" % (path, n))

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("%s: duplicate key in header" % path)
        return dict(pairs)

    header = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(buf)[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        dt = info["dtype"]
        if dt == "BF16":
            raw = np.frombuffer(data[b:e], dtype="<u2", count=count).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        elif dt in _FROM_NAME:
            arr = np.frombuffer(data[b:e], dtype=_FROM_NAME[dt], count=count)
        else:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        if e - b != count * (2 if dt == "BF16" else arr.dtype.itemsize):
            raise ValueError("%s: tensor %s: size mismatch" % (path, name))
        out[name] = arr.reshape(shape).copy()
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError("%s: tensor %s: offsets do not tile the buffer" % (path, name))
        pos = e
    if pos != len(data):
        raise ValueError("%s: data buffer is %d bytes, tensors cover %d" % (path, len(data), pos))
    return out, meta


# ---- conversion ---------------------------------------------------------------


def extract_state_dict(obj):
    """'model' or 'state_dict' container, or a bare state dict; strips a
    leading 'module.' from the keys."""
    sd = obj
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                sd = obj[key]
                break
    if not isinstance(sd, dict):
        raise SystemExit("torch2crate: the checkpoint holds no state dict "
                         "(expected a 'model' or 'state_dict' entry or a bare dict)")
    out = {}
    for k, v in sd.items():
        name = k[len("module."):] if k.startswith("module.") else k
        if name in out:
            raise SystemExit("torch2crate: key %s appears twice after stripping 'module.'" % k)
        out[name] = v
    return out


def convert_state_dict(sd, cfg):
    """{name: tensor} (official names) -> {name: float32 numpy} holding
    exactly the crate tensors; raises SystemExit naming every problem."""
    want = required_shapes(cfg)
    problems, out = [], {}
    for name, v in sd.items():
        if name in OFFICIAL_ONLY:
            continue
        if name not in want:
            problems.append("unknown tensor %s" % name)
            continue
        a = v.detach().cpu().float().numpy() if hasattr(v, "detach") else np.asarray(v)
        a = np.ascontiguousarray(a, dtype=np.float32)
        if tuple(a.shape) != tuple(want[name]):
            problems.append("tensor %s has shape %s, preset %s needs %s"
                            % (name, list(a.shape), cfg["preset"], list(want[name])))
            continue
        if not np.all(np.isfinite(a)):
            problems.append("tensor %s holds non-finite values" % name)
        out[name] = a
    for name in want:
        if name not in out and not any(p.startswith("tensor %s " % name) for p in problems):
            problems.append("missing tensor %s" % name)
    if problems:
        hint = ""
        cls = sd.get("cls_token")
        if cls is not None and tuple(cls.shape)[-1:] != (cfg["embed_dim"],):
            d = int(tuple(cls.shape)[-1])
            fits = [k for k, p in PRESETS.items() if p["embed_dim"] == d]
            hint = ("\n  (cls_token has width d=%d; presets with that width: %s)"
                    % (d, ", ".join(fits) if fits else "none"))
        more = "\n  ... and %d more" % (len(problems) - 8) if len(problems) > 8 else ""
        raise SystemExit("torch2crate: the checkpoint does not match preset %s:\n  %s%s%s"
                         % (cfg["preset"], "\n  ".join(problems[:8]), more, hint))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="torch2crate.py",
        description="Convert a PyTorch CRATE-MAE checkpoint (.pth) to a crate model file "
                    "(.safetensors, MODEL.md §11).")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS),
                    help="configuration (heads and lambda cannot be read from the shapes)")
    ap.add_argument("--lambda", dest="lam", type=float, default=None,
                    help="ISTA lambda to record (default: the preset's; official "
                         "checkpoints do not store it, MODEL.md §10.2 O1)")
    ap.add_argument("--source", default=None,
                    help="text for crate.source [the input file name]")
    ap.add_argument("input", help="PyTorch checkpoint (.pth)")
    ap.add_argument("output", help="crate model file (.safetensors)")
    a = ap.parse_args(argv)

    import torch  # only the conversion itself needs torch

    cfg = preset_config(a.preset)
    if a.lam is not None:
        if not (a.lam >= 0 and np.isfinite(a.lam)):
            ap.error("--lambda must be finite and >= 0")
        cfg["ista_lambda"] = a.lam
    obj = torch.load(a.input, map_location="cpu")
    sd = extract_state_dict(obj)
    tensors = convert_state_dict(sd, cfg)
    md = config_metadata(cfg, a.source if a.source is not None else os.path.basename(a.input))
    n = write_safetensors(a.output, tensors, md)
    count = sum(t.size for k, t in tensors.items() if k != "decoder_pos_embed")
    print("torch2crate: %s -> %s: %d tensors, %d trainable parameters, %d bytes "
          "(preset %s, lambda %s)" % (a.input, a.output, len(tensors), count, n, a.preset,
                                      _g(cfg["ista_lambda"])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
