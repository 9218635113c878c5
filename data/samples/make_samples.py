#!/usr/bin/env python3
"""make_samples.py: writes the sample images of data/samples/ (standard library only).

The first Fashion-MNIST test image (t10k split, never used for training) of
four classes, as 28x28 8-bit gray PNGs with the stored byte values unchanged.
Usage: python3 data/samples/make_samples.py [/usr/share/datasets/fashion-mnist]
"""
import gzip
import os
import struct
import sys
import zlib

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
WANT = [9, 0, 8, 7]  # ankle boot, T-shirt, bag, sneaker


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    m, count = struct.unpack(">II", data[:8])
    assert m == magic, hex(m)
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return count, rows, cols, data[16:]
    return count, data[8:]


def png_gray8(path, w, h, pixels):
    def chunk(tag, body):
        c = struct.pack(">I", len(body)) + tag + body
        return c + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out = os.path.dirname(os.path.abspath(__file__))
    count, rows, cols, pix = read_idx(os.path.join(src, "t10k-images-idx3-ubyte.gz"), 0x803)
    _, labels = read_idx(os.path.join(src, "t10k-labels-idx1-ubyte.gz"), 0x801)
    for cls in WANT:
        i = labels.index(cls)
        name = "fmnist-t10k-%05d-%s.png" % (i, CLASSES[cls])
        png_gray8(os.path.join(out, name), cols, rows, pix[i * rows * cols:(i + 1) * rows * cols])
        print(name)


if __name__ == "__main__":
    main()
