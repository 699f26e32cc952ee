#!/usr/bin/env python3
"""Time the same ViT training step (forward, backward, AdamW) in PyTorch.

The model mirrors timm's VisionTransformer exactly (pre-norm blocks, cls token,
learned pos_embed, LayerNorm eps 1e-6, exact GELU, fused qkv) so the workload is
the one vit's bench_train_step runs. Needs only torch (no timm), so it works with
Debian's python3-torch 1.13 as well as a current PyPI torch.

Prints one JSON line: model, batch, threads, img_per_s, peak_rss_mb, torch version.
"""
import argparse, json, resource, time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # name: (image, channels, patch, dim, depth, heads, mlp, classes)
    "cifar-tiny": (32, 3, 4, 192, 6, 3, 384, 10),
    "cifar-small": (32, 3, 4, 384, 7, 12, 384, 10),
    "cifar-deep": (32, 3, 4, 192, 9, 12, 384, 10),
    "fmnist-tiny": (28, 1, 4, 128, 6, 4, 256, 10),
    "vit-ti16": (224, 3, 16, 192, 12, 3, 768, 1000),
    "vit-s16": (224, 3, 16, 384, 12, 6, 1536, 1000),
    "vit-b16": (224, 3, 16, 768, 12, 12, 3072, 1000),
}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image, channels, patch, dim, depth, heads, mlp, classes):
        super().__init__()
        n = (image // patch) ** 2
        self.patch_embed = nn.Conv2d(channels, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cifar-tiny", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    image, ch, *_ = PRESETS[a.model]
    model = ViT(*PRESETS[a.model])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x = torch.randn(a.batch, ch, image, image)
    y = torch.randint(0, PRESETS[a.model][-1], (a.batch,))

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "model": a.model, "batch": a.batch,
        "threads": a.threads, "steps": a.steps, "img_per_s": round(a.batch * a.steps / dt, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
