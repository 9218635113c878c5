#!/usr/bin/python3
"""crate2torch.py: convert a crate model file back to a PyTorch checkpoint.

Usage:
    /usr/bin/python3 tools/crate2torch.py [--container model|state_dict]
        [--no-official] IN.safetensors OUT.pth

MODEL.md §11.4 "export mode": the result is {'model': state_dict} (the MAE
framework container; --container state_dict gives {'state_dict': ...}) with
the official names of MODEL.md §6.  Training-checkpoint tensors (optim.*)
are dropped.  So that the official MaskedAutoencoderViT loads the result
with strict=True, the two official-only members are added (O11):
pos_embed = a copy of decoder_pos_embed, and a zero decoder_embed (weight
[d, d], bias [d]); --no-official leaves them out.  The configuration is
printed from the file's __metadata__ (the official module takes it as
constructor arguments, not from the checkpoint).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch2crate  # noqa: E402  (same directory)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="crate2torch.py",
        description="Convert a crate model file (.safetensors) to a PyTorch checkpoint (.pth).")
    ap.add_argument("--container", choices=("model", "state_dict"), default="model",
                    help="top-level key of the saved dict [model]")
    ap.add_argument("--no-official", action="store_true",
                    help="do not add pos_embed and the zero decoder_embed")
    ap.add_argument("input", help="crate model file (.safetensors)")
    ap.add_argument("output", help="PyTorch checkpoint (.pth)")
    a = ap.parse_args(argv)

    import torch

    try:
        tensors, meta = torch2crate.read_safetensors(a.input)
    except (OSError, ValueError) as e:
        raise SystemExit("crate2torch: %s" % e)
    for req in ("cls_token", "decoder_pos_embed"):
        if req not in tensors:
            raise SystemExit("crate2torch: %s has no %s: not a crate model file" % (a.input, req))
    sd = {}
    for name in sorted(tensors):
        if name.startswith("optim."):
            continue
        sd[name] = torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32))
    d = sd["cls_token"].shape[-1]
    if not a.no_official:
        sd["pos_embed"] = sd["decoder_pos_embed"].clone()
        sd["decoder_embed.weight"] = torch.zeros(d, d)
        sd["decoder_embed.bias"] = torch.zeros(d)
    torch.save({a.container: sd}, a.output)
    keys = ("preset", "img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
            "decoder_depth", "decoder_num_heads", "ista_eta", "ista_lambda")
    cfg = ", ".join("%s=%s" % (k, meta["crate." + k]) for k in keys if "crate." + k in meta)
    print("crate2torch: %s -> %s: %d tensors in '%s' (%s)"
          % (a.input, a.output, len(sd), a.container, cfg or "no crate metadata"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
