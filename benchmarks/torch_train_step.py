#!/usr/bin/env python3
"""Time the same ViT training step (forward, backward, AdamW) or inference
forward in PyTorch, in fp32 or bf16 autocast.

The model mirrors timm's VisionTransformer exactly (pre-norm blocks, cls token,
learned pos_embed, LayerNorm eps 1e-6, exact GELU, fused qkv) so the workload is
the one vit's bench_train_step runs. Needs only torch (no timm), so it works with
Debian's python3-torch 1.13 as well as a current PyPI torch.

  --mode train (default): zero_grad, forward, cross_entropy (label smoothing
      0.1), backward, AdamW (lr 1e-3, weight decay 0.05)
  --mode infer: model.eval() and one forward of the batch under
      torch.inference_mode()
  --precision fp32 (default): eager float32
  --precision bf16: forward and loss under torch.autocast('cpu',
      dtype=torch.bfloat16), as a PyTorch user writes it: float32 master
      weights, float32 gradients and AdamW state (no GradScaler: bf16 needs none)

Attention: --attention sdpa (F.scaled_dot_product_attention, what timm runs
with fused_attn), explicit (softmax(q·kᵀ)·v), or best (the default): where
torch has SDPA (2.0 and later) both are timed over the warm-up steps and the
faster one runs the timed steps, so vit is compared with PyTorch's better
path on this machine (on CPUs SDPA is not always the faster one, notably under
bf16 autocast); 1.13 has only the explicit one. The JSON says which ("sdpa").

Prints one JSON line: torch version, model, mode, precision, sdpa, batch,
threads, steps, img_per_s, step_ms (median), loss_first/loss_last (train),
peak_rss_mb.
"""
import argparse, json, resource, statistics, time

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


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
USE_SDPA = HAS_SDPA  # set by --attention


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
        if USE_SDPA:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
            x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cifar-tiny", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: torch.autocast('cpu', dtype=torch.bfloat16) around forward and loss")
    ap.add_argument("--mode", default="train", choices=["train", "infer"],
                    help="infer: model.eval() and forward under torch.inference_mode()")
    ap.add_argument("--attention", default="best", choices=["best", "sdpa", "explicit"],
                    help="best: time both over the warm-up, keep the faster (SDPA only where torch has it)")
    a = ap.parse_args()
    global USE_SDPA
    if a.attention == "sdpa" and not HAS_SDPA:
        ap.error(f"--attention sdpa: torch {torch.__version__} has no scaled_dot_product_attention")
    USE_SDPA = HAS_SDPA and a.attention != "explicit"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    image, ch, *_ = PRESETS[a.model]
    model = ViT(*PRESETS[a.model])
    x = torch.randn(a.batch, ch, image, image)
    y = torch.randint(0, PRESETS[a.model][-1], (a.batch,))
    bf16 = a.precision == "bf16"

    def autocast():
        # enabled=False: a no-op context, so fp32 runs the same code path.
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    if a.mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

        def step():
            opt.zero_grad(set_to_none=False)
            with autocast():
                loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            loss.backward()
            opt.step()
            return loss.item()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast():
                out = model(x)
            return out.float().mean().item()

    first = None
    for _ in range(a.warmup):
        v = step()
        first = v if first is None else first
    if a.attention == "best" and HAS_SDPA:
        # Two more steps with each path (the first warms it up), keep the faster.
        def timed(use):
            global USE_SDPA
            USE_SDPA = use
            step()
            t = time.perf_counter()
            step()
            return time.perf_counter() - t
        t_sdpa, t_explicit = timed(True), timed(False)
        USE_SDPA = t_sdpa <= t_explicit
    times = []
    t0 = time.perf_counter()
    for _ in range(a.steps):
        s0 = time.perf_counter()
        last = step()
        times.append(time.perf_counter() - s0)
        first = last if first is None else first
    dt = time.perf_counter() - t0
    train = a.mode == "train"
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "model": a.model, "mode": a.mode,
        "precision": a.precision, "sdpa": USE_SDPA, "batch": a.batch, "threads": a.threads,
        "steps": a.steps, "warmup": a.warmup, "img_per_s": round(a.batch * a.steps / dt, 2),
        "step_ms": round(statistics.median(times) * 1e3, 2),
        "loss_first": round(first, 5) if train else None,
        "loss_last": round(last, 5) if train else None,
        "logit_mean": None if train else round(last, 5),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
