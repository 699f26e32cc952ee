#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Run once by hand when a format changes (the seeds are committed; CI never runs
this). Needs only the standard library, plus Pillow for the JPEG seeds.
Seeds are small and valid, so the fuzzer starts from inputs that reach deep
into each parser; a few near-misses show it the error paths.
"""
import gzip
import io
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, off, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(n, start=0.0):
    return struct.pack("<%df" % n, *[start + 0.01 * i for i in range(n)])


# ---- safetensors: every dtype the reader converts, metadata, an empty tensor
put("safetensors", "f32_f16_bf16_f64.safetensors", safetensors([
    ("a", "F32", [2, 3], f32(6)),
    ("b", "F16", [4], struct.pack("<4H", 0x3C00, 0xC000, 0x7C00, 0x0001)),
    ("c", "BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80)),
    ("d", "F64", [1, 1, 2], struct.pack("<2d", 1.5, -2.25)),
    ("e", "I64", [1], struct.pack("<q", 7)),
    ("empty", "F32", [0, 5], b""),
], {"format": "pt", "note": "seed"}))
put("safetensors", "scalar.safetensors", safetensors([("s", "F32", [], f32(1))]))
put("safetensors", "no_tensors.safetensors", safetensors([], {"k": "v"}))
put("safetensors", "bad_offsets.safetensors",
    safetensors([("a", "F32", [2], f32(2))])[:-3])  # buffer shorter than the offsets

# ---- checkpoint: the fuzz target's tiny model (image 8, 1 channel, patch 4,
# dim 8, depth 1, heads 2, mlp 16, 3 classes), timm names, with and without config
C, M, K, N = 8, 16, 3, 5
shapes = [
    ("cls_token", [1, 1, C]), ("pos_embed", [1, N, C]),
    ("patch_embed.proj.weight", [C, 1, 4, 4]), ("patch_embed.proj.bias", [C]),
    ("blocks.0.norm1.weight", [C]), ("blocks.0.norm1.bias", [C]),
    ("blocks.0.attn.qkv.weight", [3 * C, C]), ("blocks.0.attn.qkv.bias", [3 * C]),
    ("blocks.0.attn.proj.weight", [C, C]), ("blocks.0.attn.proj.bias", [C]),
    ("blocks.0.norm2.weight", [C]), ("blocks.0.norm2.bias", [C]),
    ("blocks.0.mlp.fc1.weight", [M, C]), ("blocks.0.mlp.fc1.bias", [M]),
    ("blocks.0.mlp.fc2.weight", [C, M]), ("blocks.0.mlp.fc2.bias", [C]),
    ("norm.weight", [C]), ("norm.bias", [C]),
    ("head.weight", [K, C]), ("head.bias", [K]),
]


def numel(s):
    n = 1
    for d in s:
        n *= d
    return n


model = [(n, "F32", s, f32(numel(s))) for n, s in shapes]
config = {"name": "fuzz-tiny", "image_size": 8, "in_chans": 1, "patch_size": 4, "dim": C,
          "depth": 1, "heads": 2, "mlp_dim": M, "num_classes": K, "qkv_bias": True,
          "drop_rate": 0.0, "drop_path_rate": 0.0, "representation_size": 0,
          "layer_norm_eps": 1e-6, "gelu": "erf", "seed": 0}
state = {"step": 12, "epoch": 1, "batch_in_epoch": 2, "dropout_seed": "0", "dropout_offset": "0",
         "best_top1": 0.5, "nonfinite_steps": 0, "nonfinite_run": 0, "optimizer": "adamw"}
meta = {"format": "pt", "vit.config": json.dumps(config), "vit.classes": json.dumps(["a", "b", "c"]),
        "vit.train_state": json.dumps(state)}
opt = [("optimizer.head.bias.exp_avg", "F32", [K], f32(K)),
       ("optimizer.head.bias.exp_avg_sq", "F32", [K], f32(K))]
put("checkpoint", "training.safetensors", safetensors(model + opt, meta))
put("checkpoint", "weights_only.safetensors", safetensors(model, {"format": "pt"}))
put("checkpoint", "timm_f16.safetensors",
    safetensors([(n, "F16", s, struct.pack("<%dH" % numel(s), *([0x3C00] * numel(s)))) for n, s in shapes]))
put("checkpoint", "wrong_shape.safetensors",
    safetensors([(n, "F32", [s[0]] if n == "norm.weight" else s,
                  f32(numel(s))) for n, s in shapes], meta))

# ---- cifar: first byte 0 = CIFAR-10, 1/2 = CIFAR-100 fine/coarse, 3 = names
pix = bytes((i * 7) % 256 for i in range(3072))
put("cifar", "cifar10_two_records", bytes([0]) + bytes([3]) + pix + bytes([9]) + pix)
put("cifar", "cifar100_fine", bytes([1]) + bytes([19, 99]) + pix)
put("cifar", "cifar100_coarse", bytes([2]) + bytes([0, 5]) + pix + bytes([4, 42]) + pix)
put("cifar", "names", bytes([3]) + b"airplane\nautomobile\r\nbird\ncat\n\n deer \ndog\nfrog\nhorse\nship\ntruck")
put("cifar", "bad_label", bytes([0]) + bytes([10]) + pix)


# ---- idx: 2-byte little-endian image-file length, image file, label file
def idx_images(n, r, c):
    return struct.pack(">IIII", 0x803, n, r, c) + bytes((i * 13) % 256 for i in range(n * r * c))


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_pair(img, lab):
    return struct.pack("<H", len(img)) + img + lab


img, lab = idx_images(3, 4, 5), idx_labels([0, 9, 4])
put("idx", "raw", idx_pair(img, lab))
put("idx", "gzip_both", idx_pair(gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))
put("idx", "gzip_two_members", idx_pair(gzip.compress(img[:10], mtime=0) + gzip.compress(img[10:], mtime=0), lab))
put("idx", "truncated", idx_pair(img[:-1], lab))


# ---- image: first byte's low bit = RGB (1) or grey (0), then the file
def png(w, h, grey):
    color = 0 if grey else 2
    bpp = 1 if grey else 3
    raw = b"".join(b"\x00" + bytes((x * 31 + y * 17 + k) % 256 for x in range(w) for k in range(bpp))
                   for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp(w, h):
    rows = []
    for y in range(h):
        row = bytes((x * 40 + y * 10 + k) % 256 for x in range(w) for k in range(3))
        rows.append(row + b"\x00" * (-len(row) % 4))
    data = b"".join(rows)
    hdr = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    return hdr + dib + data


put("image", "rgb.png", b"\x01" + png(5, 3, False))
put("image", "grey.png", b"\x00" + png(4, 4, True))
put("image", "rgb.bmp", b"\x01" + bmp(3, 2))
try:
    from PIL import Image
    im = Image.new("RGB", (9, 7))
    im.putdata([((x * 28) % 256, (y * 36) % 256, 128) for y in range(7) for x in range(9)])
    for name, kw in (("baseline.jpg", {}), ("progressive.jpg", {"progressive": True})):
        b = io.BytesIO()
        im.save(b, "JPEG", quality=80, **kw)
        put("image", name, b"\x01" + b.getvalue())
except ImportError:
    print("Pillow not found: no JPEG seeds")
put("image", "truncated.png", b"\x01" + png(5, 3, False)[:40])
print("seeds written to", os.path.join(HERE, "corpus"))
