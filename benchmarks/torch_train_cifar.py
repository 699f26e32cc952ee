#!/usr/bin/env python3
"""Train the `vit train` default CIFAR recipe in PyTorch + timm, for comparison.

Same data files (CIFAR-10 binary), same model (timm VisionTransformer with the
cifar-tiny layout, timm's init), same recipe as `vit train --dataset cifar10`:
AdamW lr 1e-3, weight decay 0.05 (timm's grouping: none on biases, norms,
pos_embed, cls_token), batch 128 with the last partial batch dropped, linear
warmup from 0 over --warmup-epochs then cosine to 1e-5 per step, label
smoothing 0.1, random crop 32 with padding 4 and horizontal flip, CIFAR-10
normalisation, test evaluation after every epoch.

Prints one line per epoch and, last, one JSON object: best and final top-1,
wall time, torch/timm versions. Measuring tool only; not a dependency of vit.
"""
import argparse, json, math, os, time

import numpy as np
import torch
import torch.nn.functional as F

PRESETS = {  # name: (image, channels, patch, dim, depth, heads, mlp)
    "cifar-tiny": (32, 3, 4, 192, 6, 3, 384),
    "cifar-small": (32, 3, 4, 384, 7, 12, 384),
    "cifar-deep": (32, 3, 4, 192, 9, 12, 384),
}
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def read_cifar(paths):
    raw = np.concatenate([np.fromfile(p, dtype=np.uint8) for p in paths]).reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


def augment(x, gen):
    """RandomCrop(32, padding=4) with zero fill, then a horizontal flip with p=0.5."""
    B = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    out = torch.empty_like(x)
    offs = torch.randint(0, 9, (B, 2), generator=gen)
    flips = torch.rand(B, generator=gen) < 0.5
    for i in range(B):
        t, l = offs[i].tolist()
        img = padded[i, :, t:t + 32, l:l + 32]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def normalise(x_uint8):
    return (x_uint8.float() / 255 - MEAN) / STD


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="cifar-tiny", choices=sorted(PRESETS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1)
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    import timm
    from timm.models.vision_transformer import VisionTransformer
    from timm.optim import create_optimizer_v2

    image, ch, patch, dim, depth, heads, mlp = PRESETS[a.model]
    model = VisionTransformer(img_size=image, patch_size=patch, in_chans=ch, num_classes=10, embed_dim=dim,
                              depth=depth, num_heads=heads, mlp_ratio=mlp / dim, qkv_bias=True)
    opt = create_optimizer_v2(model, "adamw", lr=a.lr, weight_decay=a.weight_decay)
    xtr, ytr = read_cifar([os.path.join(a.data, f"data_batch_{i}.bin") for i in range(1, 6)])
    xte, yte = read_cifar([os.path.join(a.data, "test_batch.bin")])
    steps_per_epoch = len(xtr) // a.batch
    total = a.epochs * steps_per_epoch
    warmup = round(a.warmup_epochs * steps_per_epoch)

    def lr_at(step):  # vit's LrSchedule: linear warmup from 0, then cosine to min_lr
        if step < warmup:
            return a.lr * step / warmup
        frac = min(1.0, (step - warmup) / max(total - warmup, 1))
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))

    gen = torch.Generator().manual_seed(a.seed)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    t0 = time.time()
    step, best, top1 = 0, 0.0, 0.0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * a.batch:(b + 1) * a.batch]
            x = normalise(augment(xtr[idx], gen))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x), ytr[idx])
            loss.backward()
            opt.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for b in range(0, len(xte), 256):
                correct += (model(normalise(xte[b:b + 256])).argmax(1) == yte[b:b + 256]).sum().item()
        top1 = correct / len(xte)
        best = max(best, top1)
        print(f"epoch {epoch + 1}/{a.epochs}  loss {loss.item():.4f}  test top-1 {100 * top1:.2f}%  "
              f"({time.time() - t0:.0f} s)", flush=True)
    print(json.dumps({"model": a.model, "epochs": a.epochs, "best_top1": best, "final_top1": top1,
                      "wall_s": round(time.time() - t0, 1), "torch": torch.__version__,
                      "timm": timm.__version__, "threads": a.threads}))


if __name__ == "__main__":
    main()
