#!/usr/bin/env python3
"""vit against timm on the same inputs (issue 16's "compared with timm").

1. The evaluation transform: a few images of odd aspect ratios, through vit's
   eval_transform (benchmarks/eval_transform_dump.cpp: resize the shorter side
   to floor(224 / crop_pct), centre crop, normalise) and through timm's
   create_transform(224, crop_pct=0.875, interpolation='bilinear', mean, std)
   on PIL images. Prints the max abs difference after normalisation and on the
   0..1 scale (it must be <= 1/255 there).
2. The in21k presets' parameter counts: `vit info --model X` against
   timm.create_model(name, pretrained=False) (no weights are downloaded).

Needs a Python with torch, torchvision, timm and Pillow:
    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision timm Pillow
    /tmp/tv/bin/python benchmarks/timm_compare.py --vit build/bin/vit
The dump program is built from source with g++ unless --dump names a binary.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (width, height): landscape, portrait, square, panorama, smaller than the crop, off-by-one.
SIZES = [(500, 375), (333, 500), (224, 224), (640, 181), (97, 150), (257, 256), (1024, 683)]
# vit preset -> timm names to try, newest first (timm >= 0.9 renamed the in21k models).
IN21K = {
    "vit-b16-in21k": ["vit_base_patch16_224.augreg_in21k", "vit_base_patch16_224_in21k"],
    "vit-b32-in21k": ["vit_base_patch32_224.augreg_in21k", "vit_base_patch32_224_in21k"],
    "vit-l16-in21k": ["vit_large_patch16_224.augreg_in21k", "vit_large_patch16_224_in21k"],
    "vit-l32-in21k": ["vit_large_patch32_224.orig_in21k", "vit_large_patch32_224_in21k"],
    "vit-h14-in21k": ["vit_huge_patch14_224.orig_in21k", "vit_huge_patch14_224_in21k"],
}


def make_image(path, w, h, seed):
    """Smooth gradients plus noise: resampling differences show, not just noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                    ((x + y) * 7) % 256], axis=-1).astype(np.int32)
    img = np.clip(img + rng.integers(-40, 41, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img, "RGB").save(path)


def build_dump(out_dir):
    exe = os.path.join(out_dir, "eval_transform_dump")
    src = os.path.join(ROOT, "benchmarks", "eval_transform_dump.cpp")
    subprocess.run(["g++", "-std=c++20", "-O2", "-I" + os.path.join(ROOT, "include"), src, "-o", exe],
                   check=True)
    return exe


def compare_transform(dump, tmp):
    import timm.data
    t = timm.data.create_transform(224, crop_pct=0.875, interpolation="bilinear",
                                   mean=IMAGENET_MEAN, std=IMAGENET_STD)
    std = np.array(IMAGENET_STD, dtype=np.float64).reshape(3, 1, 1)
    rows = []
    for i, (w, h) in enumerate(SIZES):
        path = os.path.join(tmp, f"img{i}_{w}x{h}.png")
        make_image(path, w, h, i)
        out = os.path.join(tmp, f"img{i}.f32")
        subprocess.run([dump, path, "224", "0.875", *map(str, IMAGENET_MEAN), *map(str, IMAGENET_STD),
                        out], check=True)
        ours = np.fromfile(out, dtype=np.float32).reshape(3, 224, 224).astype(np.float64)
        theirs = t(Image.open(path).convert("RGB")).numpy().astype(np.float64)
        d = np.abs(ours - theirs)
        rows.append((f"{w}x{h}", d.max(), (d * std).max(), int((d * std > 0.5 / 255).sum())))
    return t, rows


def vit_params(vit, preset):
    out = subprocess.run([vit, "info", "--model", preset], check=True, capture_output=True,
                         text=True).stdout
    return int(re.search(r"parameters\s+(\d+)", out).group(1))


def timm_params(names):
    import timm
    for name in names:
        try:
            # orig_in21k checkpoints ship without a head: ask for the 21843 classes.
            m = timm.create_model(name, pretrained=False, num_classes=21843)
        except Exception:  # not in this timm version
            continue
        n = sum(p.numel() for p in m.parameters())
        pre = sum(p.numel() for k, p in m.named_parameters() if k.startswith("pre_logits"))
        return name, n, pre, m.num_classes
    return None, 0, 0, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vit", default=os.path.join(ROOT, "build", "bin", "vit"), help="the vit binary")
    ap.add_argument("--dump", help="eval_transform_dump binary (default: built here with g++)")
    args = ap.parse_args()
    import timm
    import torch
    import torchvision
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        dump = args.dump or build_dump(tmp)
        t, rows = compare_transform(dump, tmp)
    print("\ntimm transform:", " | ".join(str(s) for s in t.transforms))
    print("\nEvaluation transform, vit vs timm (224, crop_pct 0.875, bilinear, ImageNet mean/std)")
    print(f"{'image WxH':>12} {'max |diff| normalised':>22} {'max |diff| 0..1':>16} {'px > 0.5/255':>13}")
    worst = 0.0
    for name, dn, d01, n in rows:
        worst = max(worst, d01)
        print(f"{name:>12} {dn:22.3e} {d01:16.3e} {n:13d}")
    ok_transform = worst <= 1 / 255 + 1e-9
    print(f"worst on the 0..1 scale: {worst:.3e} (limit 1/255 = {1 / 255:.3e}): "
          f"{'PASS' if ok_transform else 'FAIL'}")

    print("\nParameter counts, in21k presets")
    print(f"{'vit preset':>14} {'vit':>12} {'timm model':>36} {'timm':>12} {'timm pre-logits':>16}  match")
    ok_params = True
    for preset, names in IN21K.items():
        ours = vit_params(args.vit, preset)
        name, theirs, pre, classes = timm_params(names)
        if name is None:
            print(f"{preset:>14} {ours:12d} {'(not in this timm)':>36}")
            ok_params = False
            continue
        # timm >= 0.9 dropped the in21k pre-logits layer (Linear dim x dim + Tanh);
        # vit keeps it as timm 0.4 did: compare with it added back when absent.
        match = ours == theirs
        note = ""
        if not match and pre == 0:
            dim = {"b": 768, "l": 1024, "h": 1280}[preset[4]]
            match = ours == theirs + dim * dim + dim
            note = f" (+ pre-logits {dim}x{dim}+{dim} = {theirs + dim * dim + dim})"
        ok_params &= match
        print(f"{preset:>14} {ours:12d} {name:>36} {theirs:12d} {pre:16d}  {'yes' if match else 'NO'}{note}")
    sys.exit(0 if ok_transform and ok_params else 1)


if __name__ == "__main__":
    main()
