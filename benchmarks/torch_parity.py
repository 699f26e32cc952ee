#!/usr/bin/env python3
"""Recomputes vit's dumped training step in PyTorch and reports the deviations.

Loads the parameters vit initialised into timm's VisionTransformer when timm is
importable (load_state_dict strict=True: the names, shapes and layouts must be
timm's), else into the timm-equivalent model of torch_train_step.py. Then runs
the same forward (logits, loss with label smoothing 0.1), backward and AdamW
steps (lr 1e-3, wd 0.05 on rank>=2 weights except pos_embed/cls_token) and
prints, per quantity, the largest |vit - torch| relative to the tensor's largest
magnitude. Usage: torch_parity.py parity.bin --model cifar-tiny --steps 3
"""
import argparse, functools, struct, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __import__("os").path.dirname(__file__))
from torch_train_step import PRESETS, ViT  # noqa: E402


def read_dump(path):
    out = {}
    with open(path, "rb") as f:
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            (n,) = struct.unpack("<I", f.read(4))
            name = f.read(n).decode()
            (nd,) = struct.unpack("<I", f.read(4))
            dims = struct.unpack("<%dq" % nd, f.read(8 * nd))
            numel = 1
            for d in dims:
                numel *= d
            data = torch.frombuffer(bytearray(f.read(4 * numel)), dtype=torch.float32)
            out[name] = data.reshape(dims)
    return out


def make_model(name):
    image, ch, patch, dim, depth, heads, mlp, classes = PRESETS[name]
    try:
        import timm
        from timm.models.vision_transformer import VisionTransformer
        m = VisionTransformer(img_size=image, patch_size=patch, in_chans=ch, num_classes=classes,
                              embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=mlp / dim,
                              qkv_bias=True, norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6))
        return m, "timm " + timm.__version__
    except ImportError:
        return ViT(image, ch, patch, dim, depth, heads, mlp, classes), "torch_train_step.ViT"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--model", default="cifar-tiny")
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    d = read_dump(a.dump)
    model, kind = make_model(a.model)
    params = {k[len("param."):]: v for k, v in d.items() if k.startswith("param.")}
    if kind.startswith("timm"):
        model.load_state_dict(params, strict=True)
    else:  # the fallback model names its patch conv differently
        sd = {k.replace("patch_embed.proj.", "patch_embed.").replace("mlp.fc1.", "mlp.0.")
              .replace("mlp.fc2.", "mlp.2."): v for k, v in params.items()}
        model.load_state_dict(sd, strict=True)
    model.train()
    x, y = d["input"], d["labels"].long()

    named = dict(model.named_parameters())
    to_vit = {n: n for n in named}
    if not kind.startswith("timm"):
        to_vit = {n: n.replace("patch_embed.", "patch_embed.proj.").replace("mlp.0.", "mlp.fc1.")
                  .replace("mlp.2.", "mlp.fc2.") for n in named}
    decay = [p for n, p in named.items()
             if p.ndim >= 2 and not n.endswith(("pos_embed", "cls_token"))]
    no_decay = [p for n, p in named.items()
                if not (p.ndim >= 2 and not n.endswith(("pos_embed", "cls_token")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)

    def dev(ours, theirs):
        ref = theirs.detach().abs().max().item()
        return (ours - theirs.detach()).abs().max().item() / (ref if ref > 0 else 1.0)

    rows = []
    for s in range(a.steps):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        loss.backward()
        if s == 0:
            rows.append(("logits: max|diff| / max|torch|", dev(d["logits"], logits)))
            rows.append(("loss: |diff| / |torch|", dev(d["loss"].reshape(()), loss)))
            torch_loss = loss.item()
            rows.append(("gradients, worst parameter: max|diff| / max|torch|",
                         max(dev(d["grad." + to_vit[n]], p.grad) for n, p in named.items())))
        opt.step()
    # Adam divides by sqrt(v): an element whose gradient is rounding noise (the
    # key bias's gradient is exactly 0 in exact arithmetic) moves by ~lr either
    # way. So measure parameter drift against the update size lr·steps, over all
    # elements and over those whose step-0 gradient is not noise (> 1e-7).
    scale = 1e-3 * a.steps
    worst_all = worst_sig = 0.0
    for n, p in named.items():
        diff = (d["after." + to_vit[n]] - p.detach()).abs()
        worst_all = max(worst_all, diff.max().item() / scale)
        sig = d["grad." + to_vit[n]].abs() > 1e-7
        if sig.any():
            worst_sig = max(worst_sig, diff[sig].max().item() / scale)
    rows.append(("params after %d AdamW steps: max|diff| / (lr*steps)" % a.steps, worst_all))
    rows.append(("  same, elements with |grad| > 1e-7", worst_sig))
    print("parity vs torch %s (%s), model %s, batch %d" % (torch.__version__, kind, a.model, x.shape[0]))
    for name, v in rows:
        print("  %-56s %.2e" % (name, v))
    print("  loss at step 0: vit %.7f torch %.7f" % (d["loss"].item(), torch_loss))


if __name__ == "__main__":
    main()
