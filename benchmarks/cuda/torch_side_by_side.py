#!/usr/bin/env python3
"""torch_side_by_side.py: PyTorch on the same GPU, at the same shapes, timed the
same way as benchmarks/cuda/bench_kernels.cu and bench_train_step.cpp, and the
tables of ours against theirs.

Measures (all FP32; TF32 off unless a row says tf32):
  ceilings      a 1 GiB device-to-device copy (bytes read + written) and an
                8192^3 torch.mm, FP32 and TF32: PyTorch's view of the same ceilings
                bench_cuda_kernels measures, to check the two agree;
  kernels       F.layer_norm, F.gelu (exact erf), torch.softmax forward and backward
                (backward: torch.autograd.grad on a retained graph, so only the
                backward kernels run), F.cross_entropy forward+backward with soft
                targets, F.scaled_dot_product_attention forward, backward and their
                sum: on contiguous (B,H,N,D) q, k, v with the backend PyTorch picks
                (printed), with each backend forced in turn (efficient, cudnn, math;
                flash has no FP32), and in timm's layout (qkv (B,N,3C) viewed per
                head, output transposed back to (B,N,C), as timm's Attention);
                patchify as reshape/permute/copy; AdamW.step (foreach and fused) over
                ViT-S/16's 152 parameter tensors; linear-layer GEMMs (F.linear and
                addmm_) FP32 and TF32;
  train steps   timm's vit_small_patch16_224 at 224 (batch 256) and timm
                VisionTransformer built with the configs of our presets cifar-tiny
                and cifar-small (32x32, batch 512 and 128): zero_grad, forward,
                F.cross_entropy(label_smoothing=0.1), backward, AdamW (lr 1e-3,
                wd 0.05 on timm's default groups; foreach), eager with TF32 off and
                on, and torch.compile (default mode, whole model; TF32 off, and on
                with --compile-tf32). If timm is missing, a local ViT with timm's
                layout is used instead (said in the output).

Timing (as the C++ side): inputs random; rotation over enough input/output sets to
exceed 3x L2; warm-up; torch.cuda._sleep queued first so the host queues all runs
while the GPU waits (a row is marked "cpu-bound" if the sleep ended first); one pair
of torch.cuda.Event per run; median of --runs (>= 50). Train steps: W warm-up steps,
then S steps back to back between two events: img/s = batch*S / elapsed.

Then, given our CSVs (--ours-kernels from bench_cuda_kernels, --ours-train from
bench_cuda_train_step), prints ours, theirs and the ratio (speed ours/theirs =
their time / our time: > 1 means ours is faster), and the issue's bars.

--dry-run: on the CPU at tiny sizes, in well under a minute: runs every code path
except the CUDA timing itself and torch.compile, checks that timm's models and the
local fallback ViT have the same parameter names and shapes, and exercises the
comparison tables on made-up "ours" CSVs.
"""
import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

T_START = time.monotonic()

# ---- the shapes (keep the labels identical to bench_kernels.cu's) -------------------
BN = [(512, 65), (256, 197)]  # (B, N): 64 patches + cls at batch 512, 196 + cls at 256
CS = [192, 384, 768]
ATTN_CH = [(192, 3), (192, 6), (384, 6), (384, 12), (768, 12)]  # (C, H): D = 64, 32, 64, 32, 64
SOFTMAX_H = [6, 12]
CE_BK = [(256, 10), (256, 100), (256, 1000), (512, 10), (512, 100), (512, 1000)]
PATCH = [(256, 3, 224, 16), (512, 3, 32, 4)]

# Our presets (include/vit/nn/presets.hpp): image, patch, dim, depth, heads, mlp, classes.
PRESETS = {
    "cifar-tiny": dict(img=32, patch=4, dim=192, depth=6, heads=3, mlp=384, classes=10),
    "cifar-small": dict(img=32, patch=4, dim=384, depth=7, heads=12, mlp=384, classes=10),
    "vit-s16": dict(img=224, patch=16, dim=384, depth=12, heads=6, mlp=1536, classes=1000,
                    timm="vit_small_patch16_224"),
}
TRAIN_CONFIGS = [("cifar-tiny", 512), ("cifar-tiny", 128), ("cifar-small", 512), ("cifar-small", 128),
                 ("vit-s16", 256)]
COMPILE_CONFIGS = [("vit-s16", 256), ("cifar-tiny", 512), ("cifar-small", 512)]  # most telling first


def shape_bnc(B, N, letter, C):
    return f"B={B} N={N} {letter}={C}"


def time_left(args):
    if not args.deadline_s:
        return math.inf
    return args.deadline_s - (time.monotonic() - T_START)


def log(*a):
    print(*a, flush=True)


# ---- precision -------------------------------------------------------------------------------
def set_tf32(on):
    """TF32 for matmuls and convolutions (timm's patch embedding is a conv).
    The legacy flags only: PyTorch >= 2.9 raises when the legacy getter is read after
    the new fp32_precision setter was used, while its new getters (which inductor
    reads) follow the legacy setters."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


# ---- timing -----------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.cuda = not args.dry_run
        self.dev = torch.device("cuda" if self.cuda else "cpu")
        self.runs = args.runs if self.cuda else 1
        self.rows = []
        self.copy_gbps = math.nan
        self.gemm = {"fp32": math.nan, "tf32": math.nan}
        if self.cuda:
            props = torch.cuda.get_device_properties(0)
            self.l2 = getattr(props, "L2_cache_size", 50 << 20) or (50 << 20)
            self.sleep_cycles = self._calibrate_sleep(0.015)
        else:
            self.l2 = 1 << 20
            self.sleep_cycles = 0

    def _calibrate_sleep(self, seconds):
        """torch.cuda._sleep takes clock cycles: find how many make `seconds`."""
        torch.cuda._sleep(1000)
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        cycles = 10_000_000
        s.record()
        torch.cuda._sleep(cycles)
        e.record()
        torch.cuda.synchronize()
        ms = max(s.elapsed_time(e), 1e-3)
        return int(cycles * seconds * 1e3 / ms)

    def sets_for(self, set_bytes):
        n = math.ceil(3 * self.l2 / max(set_bytes, 1))
        n = max(1, min(n, 256))
        if self.cuda:
            free, _ = torch.cuda.mem_get_info()
            n = max(1, min(n, int(0.5 * free / max(set_bytes, 1))))
        return n if self.cuda else 1

    def time(self, nsets, fn, runs=None):
        """Median microseconds of fn(set_index) and whether the host was the bottleneck."""
        runs = runs or self.runs
        warm = max(nsets, 3) if self.cuda else 1
        for i in range(warm):
            fn(i % nsets)
        if not self.cuda:
            ts = []
            for r in range(runs):
                t = time.perf_counter()
                fn((warm + r) % nsets)
                ts.append(1e6 * (time.perf_counter() - t))
            return statistics.median(ts), False
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        spin_done = torch.cuda.Event()
        torch.cuda._sleep(self.sleep_cycles)
        spin_done.record()
        for r in range(runs):
            starts[r].record()
            fn((warm + r) % nsets)
            ends[r].record()
        cpu_bound = spin_done.query()  # already done: the GPU waited for the host
        torch.cuda.synchronize()
        us = [1e3 * s.elapsed_time(e) for s, e in zip(starts, ends)]
        return statistics.median(us), cpu_bound

    def add(self, kernel, variant, shape, time_us, nbytes, flops=0.0, ceil=None, note="", sets=0):
        r = dict(impl="torch", kernel=kernel, variant=variant, shape=shape, time_us=time_us, bytes=nbytes,
                 gbps=math.nan, pct_copy=math.nan, gflop=flops * 1e-9, tflops=math.nan, pct_gemm=math.nan,
                 sets=sets, note=note)
        if time_us and time_us > 0 and math.isfinite(time_us):
            if nbytes:
                r["gbps"] = nbytes / (time_us * 1e-6) / 1e9
                r["pct_copy"] = 100 * r["gbps"] / self.copy_gbps
            if flops:
                r["tflops"] = flops / (time_us * 1e-6) / 1e12
                if ceil:
                    r["pct_gemm"] = 100 * r["tflops"] / self.gemm[ceil]
        self.rows.append(r)
        log(f"  {kernel:22s} {variant:14s} {shape:28s} {time_us:10.2f} us {r['gbps']:9.1f} GB/s "
            f"{r['pct_copy']:6.1f}% copy {r['tflops']:8.2f} TFLOP/s  sets {sets:3d}  {note}")
        return r

    def case(self, kernel, variant, shape, nbytes, set_bytes, make, flops=0.0, ceil=None, runs=None):
        """make() -> fn() for one set; times fn over rotating sets."""
        try:
            nsets = self.sets_for(set_bytes)
            fns = [make() for _ in range(nsets)]
            t, cpu_bound = self.time(nsets, lambda i: fns[i](), runs)
            note = []
            if cpu_bound:
                note.append("cpu-bound")
            if self.cuda and nsets * set_bytes < 2 * self.l2:
                note.append("L2-resident")
            r = self.add(kernel, variant, shape, t, nbytes, flops, ceil, "; ".join(note), nsets)
            del fns
            return r
        except Exception as e:  # one failing case (an unsupported backend, say) must not stop the rest
            msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
            return self.add(kernel, variant, shape, math.nan, nbytes, flops, ceil, "error: " + msg.replace(",", ";"))


def rnd(shape, dev, lo=-1.0, hi=1.0, requires_grad=False):
    t = torch.empty(shape, device=dev, dtype=torch.float32).uniform_(lo, hi)
    return t.requires_grad_(requires_grad)


# ---- ceilings ----------------------------------------------------------------------------------
def bench_ceilings(b):
    dev = b.dev
    n = (1 << 28) if b.cuda else (1 << 16)
    src, dst = rnd((n,), dev), torch.empty(n, device=dev)
    t, _ = b.time(1, lambda i: dst.copy_(src), runs=30 if b.cuda else 1)
    b.copy_gbps = 8.0 * n / (t * 1e-6) / 1e9
    b.add("ceiling_copy", "copy_", "D2D 1 GiB", t, 8.0 * n)
    del src, dst
    m = 8192 if b.cuda else 64
    x, y = rnd((m, m), dev), rnd((m, m), dev)
    out = torch.empty((m, m), device=dev)
    for prec in ("fp32", "tf32"):
        set_tf32(prec == "tf32")
        t, _ = b.time(1, lambda i: torch.mm(x, y, out=out), runs=20 if b.cuda else 1)
        flops = 2.0 * m ** 3
        b.gemm[prec] = flops / (t * 1e-6) / 1e12
        b.add(f"ceiling_gemm_{prec}", "torch.mm", "8192^3 NN", t, 12.0 * m * m, flops, prec)
    set_tf32(False)
    del x, y, out


# ---- kernels -------------------------------------------------------------------------------------
def grad_fn(outputs, inputs, grad_out):
    """Backward only: the graph is kept, so each call runs just the backward kernels."""
    return lambda: torch.autograd.grad(outputs, inputs, grad_out, retain_graph=True)


def bench_layer_norm(b, bn, cs):
    dev = b.dev
    for B, N in bn:
        for C in cs:
            R = B * N
            shape = shape_bnc(B, N, "C", C)
            fwd_bytes = 4.0 * (2 * R * C + 2 * C + 2 * R)
            bwd_bytes = 4.0 * (3 * R * C + 2 * R + 5 * C)

            def make_fwd():
                x, w, bb = rnd((R, C), dev), rnd((C,), dev, 0.5, 1.5), rnd((C,), dev)

                def f():
                    with torch.no_grad():
                        F.layer_norm(x, (C,), w, bb, 1e-6)
                return f

            def make_bwd():
                x = rnd((R, C), dev, requires_grad=True)
                w, bb = rnd((C,), dev, 0.5, 1.5, True), rnd((C,), dev, requires_grad=True)
                y = F.layer_norm(x, (C,), w, bb, 1e-6)
                return grad_fn(y, (x, w, bb), rnd((R, C), dev))

            b.case("layer_norm_fwd", "F.layer_norm", shape, fwd_bytes, fwd_bytes, make_fwd)
            b.case("layer_norm_bwd", "autograd", shape, bwd_bytes, bwd_bytes + 8.0 * R * C, make_bwd)


def bench_gelu(b, bn, cs):
    dev = b.dev
    for B, N in bn:
        for C in cs:
            R, M = B * N, 4 * C
            n = R * M
            shape = shape_bnc(B, N, "M", M)

            def make_fwd():
                x = rnd((R, M), dev, -3, 3)

                def f():
                    with torch.no_grad():
                        F.gelu(x)
                return f

            def make_bwd():
                x = rnd((R, M), dev, -3, 3, True)
                return grad_fn(F.gelu(x), (x,), rnd((R, M), dev))

            b.case("gelu_fwd", "F.gelu", shape, 8.0 * n, 8.0 * n, make_fwd)
            b.case("gelu_bwd", "autograd", shape, 12.0 * n, 16.0 * n, make_bwd)


def bench_softmax_case(b, shape, R, n):
    dev = b.dev
    e = R * n

    def make_fwd():
        x = rnd((R, n), dev, -4, 4)

        def f():
            with torch.no_grad():
                torch.softmax(x, -1)
        return f

    def make_bwd():
        x = rnd((R, n), dev, -4, 4, True)
        return grad_fn(torch.softmax(x, -1), (x,), rnd((R, n), dev))

    b.case("softmax_fwd", "torch.softmax", shape, 8.0 * e, 8.0 * e, make_fwd)
    b.case("softmax_bwd", "autograd", shape, 12.0 * e, 16.0 * e, make_bwd)


def bench_softmax(b, bn, cs, hs):
    for B, N in bn:
        for H in hs:
            bench_softmax_case(b, f"attn B={B} H={H} N={N}", B * H * N, N)
    for B, N in bn:
        for C in cs:
            bench_softmax_case(b, shape_bnc(B, N, "C", C), B * N, C)


def bench_cross_entropy(b, bks):
    dev = b.dev
    for B, K in bks:
        def make():
            logits = rnd((B, K), dev, -5, 5, True)
            target = torch.softmax(rnd((B, K), dev), -1)  # soft targets, as our training step

            def f():
                loss = F.cross_entropy(logits, target)
                torch.autograd.grad(loss, (logits,))
            return f

        b.case("cross_entropy_fwd_bwd", "F.cross_entropy", f"B={B} K={K}", 4.0 * (6 * B * K + 2),
               4.0 * 4 * B * K, make)


def sdpa_backends():
    from torch.nn.attention import SDPBackend
    return [("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
            ("math", SDPBackend.MATH)]


def default_sdpa_backend(q, k, v):
    try:
        from torch.nn.attention import SDPBackend
        choice = torch._fused_sdp_choice(q, k, v)
        for name, m in SDPBackend.__members__.items():  # a pybind11 enum: not iterable itself
            if int(m) == int(choice):
                return name.lower()
        return f"backend {choice}"
    except Exception as e:  # private API: may move between versions
        return f"unknown ({type(e).__name__})"


def bench_attention(b, bn, chs):
    from contextlib import nullcontext
    from torch.nn.attention import sdpa_kernel
    dev = b.dev
    picked = {}
    for B, N in bn:
        for C, H in chs:
            D = C // H
            shape = f"B={B} N={N} C={C} H={H}"
            bnc, bhn, nnd = B * N * C, B * H * N, B * H * N * N * D
            fwd_bytes, bwd_bytes = 4.0 * (4 * bnc + bhn), 4.0 * (8 * bnc + bhn)
            probe = [rnd((B, H, N, D), dev) for _ in range(3)]
            picked[shape] = default_sdpa_backend(*probe)
            del probe
            variants = [("default", None)] + ([] if not b.cuda else sdpa_backends())
            for name, backend in variants:
                ctx = (lambda: sdpa_kernel([backend])) if backend is not None else nullcontext

                def make_fwd(ctx=ctx):
                    q, k, v = (rnd((B, H, N, D), dev) for _ in range(3))

                    def f():
                        with torch.no_grad(), ctx():
                            F.scaled_dot_product_attention(q, k, v)
                    return f

                def make_bwd(ctx=ctx):
                    q, k, v = (rnd((B, H, N, D), dev, requires_grad=True) for _ in range(3))
                    with ctx():
                        o = F.scaled_dot_product_attention(q, k, v)
                    return grad_fn(o, (q, k, v), rnd((B, H, N, D), dev))

                label = f"sdpa {name}" if name != "default" else f"sdpa default={picked[shape]}"
                rf = b.case("attention_fwd", label, shape, fwd_bytes, 4.0 * 4 * bnc, make_fwd, 4.0 * nnd, "fp32")
                rb = b.case("attention_bwd", label, shape, bwd_bytes, 4.0 * 12 * bnc, make_bwd, 8.0 * nnd, "fp32")
                b.add("attention_fwd_bwd", label, shape, rf["time_us"] + rb["time_us"], fwd_bytes + bwd_bytes,
                      12.0 * nnd, "fp32", "sum of the two medians")

            # timm's Attention: qkv (B,N,3C) -> per-head views -> SDPA -> (B,N,C), default backend.
            def timm_attn(qkv):
                q, k, v = qkv.view(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
                return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)

            def make_fwd_timm():
                qkv = rnd((B, N, 3 * C), dev)

                def f():
                    with torch.no_grad():
                        timm_attn(qkv)
                return f

            def make_bwd_timm():
                qkv = rnd((B, N, 3 * C), dev, requires_grad=True)
                return grad_fn(timm_attn(qkv), (qkv,), rnd((B, N, C), dev))

            rf = b.case("attention_fwd", "timm layout", shape, fwd_bytes, 4.0 * 4 * bnc, make_fwd_timm, 4.0 * nnd, "fp32")
            rb = b.case("attention_bwd", "timm layout", shape, bwd_bytes, 4.0 * 12 * bnc, make_bwd_timm, 8.0 * nnd, "fp32")
            b.add("attention_fwd_bwd", "timm layout", shape, rf["time_us"] + rb["time_us"], fwd_bytes + bwd_bytes,
                  12.0 * nnd, "fp32", "sum of the two medians")
    log("  SDPA backend PyTorch picks for float32 (B,H,N,D) inputs: " +
        ", ".join(f"{s}: {p}" for s, p in picked.items()))
    return picked


def bench_patchify(b, shapes):
    dev = b.dev
    for B, ch, HW, P in shapes:
        n, g = B * ch * HW * HW, HW // P
        shape = f"B={B} ch={ch} HW={HW} P={P}"

        def make_fwd():
            x = rnd((B, ch, HW, HW), dev)
            return lambda: x.reshape(B, ch, g, P, g, P).permute(0, 2, 4, 1, 3, 5).reshape(B * g * g, ch * P * P)

        def make_bwd():
            cols = rnd((B * g * g, ch * P * P), dev)
            return lambda: cols.reshape(B, g, g, ch, P, P).permute(0, 3, 1, 4, 2, 5).reshape(B, ch, HW, HW)

        b.case("patchify", "reshape-permute", shape, 8.0 * n, 8.0 * n, make_fwd)
        b.case("unpatchify", "reshape-permute", shape, 8.0 * n, 8.0 * n, make_bwd)


def vit_s16_param_shapes():
    """ViT-S/16's 152 parameter tensors in timm's order; True where weight decay applies."""
    C, M, N, K = 384, 1536, 197, 1000
    p = [((1, 1, C), False), ((1, N, C), False), ((C, 3, 16, 16), True), ((C,), False)]
    for _ in range(12):
        p += [((C,), False), ((C,), False), ((3 * C, C), True), ((3 * C,), False), ((C, C), True), ((C,), False),
              ((C,), False), ((C,), False), ((M, C), True), ((M,), False), ((C, M), True), ((C,), False)]
    p += [((C,), False), ((C,), False), ((K, C), True), ((K,), False)]
    return p


def bench_adam(b):
    dev = b.dev
    shapes = vit_s16_param_shapes() if b.cuda else [((4, 3), True), ((3,), False)]
    total = sum(math.prod(s) for s, _ in shapes)
    for variant in ("foreach", "fused"):
        if variant == "fused" and not b.cuda:
            continue

        def make(variant=variant):
            ps = [rnd(s, dev).requires_grad_(True) for s, _ in shapes]
            for p in ps:
                p.grad = rnd(p.shape, dev, -1e-2, 1e-2)
            groups = [{"params": [p for p, (_, wd) in zip(ps, shapes) if wd], "weight_decay": 0.05},
                      {"params": [p for p, (_, wd) in zip(ps, shapes) if not wd], "weight_decay": 0.0}]
            opt = torch.optim.AdamW(groups, lr=1e-3, **({"fused": True} if variant == "fused" else {"foreach": True}))
            opt.step()  # creates the state (exp_avg, exp_avg_sq)
            return opt.step

        b.case("adam_step", f"AdamW {variant}", "vit-s16 params", 28.0 * total, 16.0 * total, make)


def bench_gemm(b, bn, cs):
    dev = b.dev
    for prec in ("fp32", "tf32"):
        set_tf32(prec == "tf32")
        for B, N in bn:
            for C in cs:
                R = B * N
                tail = f" B={B} N={N} C={C}"
                for mult, layer in ((3, "qkv"), (4, "fc1")):
                    O = mult * C
                    nbytes = 4.0 * (R * C + O * C + R * O)

                    def make(O=O):
                        x, w = rnd((R, C), dev), rnd((O, C), dev, -0.05, 0.05)
                        return lambda: F.linear(x, w)

                    b.case(f"gemm_{prec}", "F.linear", layer + tail, nbytes, nbytes, make, 2.0 * R * O * C, prec)
                O = 4 * C
                nbytes = 4.0 * (R * O + R * C + 2 * O * C)

                def make_dw(O=O):
                    dout, x, dw = rnd((R, O), dev), rnd((R, C), dev), rnd((O, C), dev)
                    return lambda: dw.addmm_(dout.t(), x)

                b.case(f"gemm_{prec}", "addmm_", "fc1.dW" + tail, nbytes, nbytes, make_dw, 2.0 * R * O * C, prec)
    set_tf32(False)


# ---- models ----------------------------------------------------------------------------------------
class LocalAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class LocalMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LocalBlock(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = LocalAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = LocalMlp(dim, mlp)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class LocalPatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class LocalViT(nn.Module):
    """timm's VisionTransformer (token pooling, pre-norm, cls token, learned
    pos_embed), with the same parameter names and shapes, for when timm is missing."""

    def __init__(self, img, patch, dim, depth, heads, mlp, classes, chans=3, **_):
        super().__init__()
        n = (img // patch) ** 2
        self.patch_embed = LocalPatchEmbed(chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[LocalBlock(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def have_timm():
    try:
        import timm  # noqa: F401
        return True
    except Exception:
        return False


def build_model(name, use_timm):
    p = PRESETS[name]
    if use_timm:
        import timm
        if "timm" in p:
            return timm.create_model(p["timm"], pretrained=False, num_classes=p["classes"]), f"timm {p['timm']}"
        from timm.models.vision_transformer import VisionTransformer
        m = VisionTransformer(img_size=p["img"], patch_size=p["patch"], in_chans=3, num_classes=p["classes"],
                              embed_dim=p["dim"], depth=p["depth"], num_heads=p["heads"],
                              mlp_ratio=p["mlp"] / p["dim"], qkv_bias=True, class_token=True, global_pool="token")
        return m, "timm VisionTransformer"
    return LocalViT(**p), "local ViT (timm layout; timm not importable)"


def param_groups(model, wd=0.05):
    """timm's default: no decay on 1-D parameters, pos_embed and cls_token (as ours)."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or n.endswith("pos_embed") or n.endswith("cls_token") else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def train_step_rate(b, name, batch, mode, prec, use_timm, steps, warmup):
    """img/s of `steps` steps back to back after `warmup`; returns a row dict."""
    dev = b.dev
    set_tf32(prec == "tf32")
    p = PRESETS[name]
    torch.manual_seed(0)
    model, what = build_model(name, use_timm)
    model = model.to(dev).train()
    opt = torch.optim.AdamW(param_groups(model), lr=1e-3)  # foreach on CUDA, as PyTorch's default
    run = model
    if mode == "compile":
        torch._dynamo.reset()
        run = torch.compile(model)
    x = torch.randn(batch, 3, p["img"], p["img"], device=dev)
    labels = torch.randint(0, p["classes"], (batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(run(x), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss

    if b.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t_warm = time.monotonic()
    loss_first = step().item()
    for _ in range(warmup - 1):
        step()
    warm_s = time.monotonic() - t_warm
    if b.cuda:
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(steps):
            loss = step()
        e.record()
        e.synchronize()
        secs = s.elapsed_time(e) * 1e-3
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        t = time.perf_counter()
        for _ in range(steps):
            loss = step()
        secs = time.perf_counter() - t
        peak = math.nan
    row = dict(impl="torch", model=name, batch=batch, precision=prec, mode=mode, img_per_s=batch * steps / secs,
               step_ms=1e3 * secs / steps, loss_first=loss_first, loss_last=loss.item(), peak_mib=peak,
               warmup_s=warm_s, what=what, note="")
    log(f"  {name:12s} batch {batch:4d} {mode:8s} {prec}: {row['img_per_s']:9.1f} img/s, {row['step_ms']:8.2f} ms/step, "
        f"loss {loss_first:.3f} -> {row['loss_last']:.3f}, peak {peak:.0f} MiB, warm-up {warm_s:.1f} s ({what})")
    del model, run, opt
    if b.cuda:
        torch.cuda.empty_cache()
    set_tf32(False)
    return row


def bench_train(b, args, use_timm):
    rows = []
    steps, warmup = (args.steps, args.warmup) if b.cuda else (1, 1)
    # Dry run: one small model is enough for the code path (check_models built all three).
    configs = TRAIN_CONFIGS if b.cuda else [("cifar-tiny", 2)]
    compile_configs = [] if (args.no_compile or not b.cuda) else COMPILE_CONFIGS

    def one(name, batch, mode, prec):
        oom = False
        try:
            rows.append(train_step_rate(b, name, batch, mode, prec, use_timm, steps,
                                        warmup + (3 if mode == "compile" else 0)))
        except torch.cuda.OutOfMemoryError:
            oom = True  # retried below, once the exception (and the frames it holds) is gone
        except Exception as e:
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
            log(f"  {name} batch {batch} {mode} {prec}: error: {msg}")
            rows.append(dict(impl="torch", model=name, batch=batch, precision=prec, mode=mode,
                             img_per_s=math.nan, note="error: " + msg.replace(",", ";")))
        if not oom:
            return
        torch.cuda.empty_cache()
        if batch > 128:
            log(f"  note: {name} batch {batch} {mode} {prec} ran out of memory; batch 128 instead")
            one(name, 128, mode, prec)
            rows[-1]["note"] = f"batch {batch} out of memory"
        else:
            rows.append(dict(impl="torch", model=name, batch=batch, precision=prec, mode=mode,
                             img_per_s=math.nan, note="out of memory"))

    for name, batch in configs:
        for prec in ("fp32", "tf32") if b.cuda else ("fp32",):
            if time_left(args) < 20:
                log(f"  {name} batch {batch} eager {prec}: skipped (deadline)")
                continue
            one(name, batch, "eager", prec)
    compile_precs = ("fp32", "tf32") if args.compile_tf32 else ("fp32",)
    for name, batch in compile_configs:
        for prec in compile_precs:
            need = 100 if name == "vit-s16" else 70  # compile + warm-up + steps, seconds, roughly
            if time_left(args) < need:
                log(f"  {name} batch {batch} compile {prec}: skipped ({time_left(args):.0f} s left, ~{need} s needed)")
                rows.append(dict(impl="torch", model=name, batch=batch, precision=prec, mode="compile",
                                 img_per_s=math.nan, note="skipped: deadline"))
                continue
            one(name, batch, "compile", prec)
    return rows


# ---- reading ours, printing tables ---------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fnum(v):
    try:
        x = float(v)
        return x if math.isfinite(x) else math.nan
    except (TypeError, ValueError):
        return math.nan


def f1(x, digits=1):
    return "" if not math.isfinite(x) else f"{x:.{digits}f}"


def write_csv(path, krows, trows):
    kcols = ["impl", "kernel", "variant", "shape", "time_us", "bytes", "gbps", "pct_copy", "gflop", "tflops",
             "pct_gemm", "sets", "note"]
    tcols = ["impl", "model", "batch", "precision", "mode", "img_per_s", "step_ms", "loss_first", "loss_last",
             "peak_mib", "warmup_s", "note"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section"] + kcols)
        for r in krows:
            w.writerow(["kernel"] + [r.get(c, "") for c in kcols])
        w.writerow(["section"] + tcols)
        for r in trows:
            w.writerow(["train"] + [r.get(c, "") for c in tcols])
    log(f"wrote {path}")


BAR_KERNELS = ("layer_norm_fwd", "layer_norm_bwd", "gelu_fwd", "gelu_bwd", "softmax_fwd", "softmax_bwd")


def print_tables(b, krows, trows, ours_k, ours_t, picked, info):
    print()
    print(f"## PyTorch {torch.__version__} on {info} (TF32 off unless tf32 is named)")
    print()
    print(f"- ceilings seen by PyTorch: copy {b.copy_gbps:.0f} GB/s, torch.mm 8192^3 fp32 {b.gemm['fp32']:.1f} / "
          f"tf32 {b.gemm['tf32']:.1f} TFLOP/s")
    if picked:
        print("- SDPA backend PyTorch picks for these float32 inputs: " + ", ".join(sorted(set(picked.values()))) +
              (" (flash attention has no float32 kernel)" if b.cuda else ""))
    print("- ratio = their time / our time (train: our img/s / their img/s): > 1 means ours is faster")

    theirs = {}
    for r in krows:
        theirs.setdefault((r["kernel"], r["shape"]), []).append(r)

    if ours_k:
        print()
        print("## ours vs PyTorch: kernels (median us)")
        print()
        print("| kernel | shape | ours us | ours %copy | torch us | torch variant | ratio |")
        print("|---|---|---:|---:|---:|---|---:|")
        for o in ours_k:
            key = (o["kernel"], o["shape"])
            ours_us = fnum(o["time_us"])
            cands = [t for t in theirs.get(key, []) if math.isfinite(t["time_us"])]
            if not cands:
                continue
            if o["kernel"].startswith("attention"):
                # PyTorch's own choice, the fastest forced backend if another, and timm's layout
                # (every backend is in torch.csv and torch.log).
                default = [t for t in cands if t["variant"].startswith("sdpa default")]
                forced = [t for t in cands if t["variant"].startswith("sdpa ") and t not in default]
                best = [min(forced, key=lambda t: t["time_us"])] if forced else []
                if default and best and best[0]["time_us"] >= default[0]["time_us"]:
                    best = []
                cands = default + best + [t for t in cands if t["variant"] == "timm layout"]
            for t in cands:
                ratio = t["time_us"] / ours_us if ours_us > 0 else math.nan
                print(f"| {o['kernel']} | {o['shape']} | {f1(ours_us)} | {f1(fnum(o['pct_copy']))} | "
                      f"{f1(t['time_us'])} | {t['variant']} | {f1(ratio, 2)} |")

    if ours_t or trows:
        print()
        print("## ours vs PyTorch: training step (img/s)")
        print()
        print("| model | batch | precision | ours | torch eager | ratio | torch compile | ratio | torch peak MiB | ours peak MiB |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        keys = []
        for r in list(ours_t) + list(trows):
            k = (r["model"], int(r["batch"]), r["precision"])
            if k not in keys and r["precision"] in ("fp32", "tf32"):
                keys.append(k)
        for k in keys:
            o = next((r for r in ours_t if (r["model"], int(r["batch"]), r["precision"]) == k), None)
            e = next((r for r in trows if (r["model"], r["batch"], r["precision"], r["mode"]) == k + ("eager",)), None)
            c = next((r for r in trows if (r["model"], r["batch"], r["precision"], r["mode"]) == k + ("compile",)), None)
            ov = fnum(o["img_per_s"]) if o else math.nan
            ev = fnum(e["img_per_s"]) if e else math.nan
            cv = fnum(c["img_per_s"]) if c else math.nan
            print(f"| {k[0]} | {k[1]} | {k[2]} | {f1(ov)} | {f1(ev)} | {f1(ov / ev, 2) if ev else ''} | {f1(cv)} | "
                  f"{f1(ov / cv, 2) if cv else ''} | {f1(fnum(e.get('peak_mib')) if e else math.nan, 0)} | "
                  f"{f1(fnum(o['peak_mib']) if o else math.nan, 0)} |")

    if not (ours_k or ours_t):
        return
    print()
    print("## the issue's bars")
    print()
    lines = []
    bar_rows = [o for o in ours_k if o["kernel"] in BAR_KERNELS]
    if bar_rows:
        fails = [o for o in bar_rows if not fnum(o["pct_copy"]) >= 80.0]
        worst = min(bar_rows, key=lambda o: fnum(o["pct_copy"]) if math.isfinite(fnum(o["pct_copy"])) else -1)
        lines.append(f"| LayerNorm/GELU/softmax fwd+bwd >= 80% of copy | {len(bar_rows) - len(fails)}/{len(bar_rows)} "
                     f"rows pass | lowest: {worst['kernel']} {worst['shape']} {f1(fnum(worst['pct_copy']))}% |")
        for o in fails:
            lines.append(f"| - below: {o['kernel']} | {o['shape']} | {f1(fnum(o['pct_copy']))}% of copy |")
    for o in (o for o in ours_k if o["kernel"] == "attention_fwd_bwd"):
        cands = [t for t in theirs.get((o["kernel"], o["shape"]), []) if math.isfinite(t["time_us"])]
        if not cands:
            continue
        default = next((t for t in cands if t["variant"].startswith("sdpa default")), None)
        best = min((t for t in cands if t["variant"].startswith("sdpa")), key=lambda t: t["time_us"], default=None)
        ours_us = fnum(o["time_us"])
        for label, t in (("default", default), ("fastest backend", best)):
            if t is None:
                continue
            ok = ours_us < t["time_us"]
            lines.append(f"| attention fwd+bwd faster than SDPA ({label}) | {o['shape']} | "
                         f"{'PASS' if ok else 'FAIL'}: ours {f1(ours_us)} us vs {f1(t['time_us'])} us "
                         f"({t['variant']}), ratio {f1(t['time_us'] / ours_us, 2)} |")
    for o in ours_t:
        e = next((r for r in trows if r["model"] == o["model"] and r["batch"] == int(o["batch"])
                  and r["precision"] == o["precision"] and r["mode"] == "eager"), None)
        if e is None or not math.isfinite(fnum(e["img_per_s"])):
            continue
        ov, ev = fnum(o["img_per_s"]), fnum(e["img_per_s"])
        lines.append(f"| train step >= PyTorch eager | {o['model']} batch {o['batch']} {o['precision']} | "
                     f"{'PASS' if ov >= ev else 'FAIL'}: {f1(ov)} vs {f1(ev)} img/s, ratio {f1(ov / ev, 2)} |")
    print("| bar | case | result |")
    print("|---|---|---|")
    print("\n".join(lines))
    sys.stdout.flush()


# ---- dry run helpers --------------------------------------------------------------------------------------
def check_models(use_timm):
    """The fallback ViT must match timm's names and shapes, for every preset."""
    for name in PRESETS:
        local, _ = build_model(name, False)
        n_local = sum(p.numel() for p in local.parameters())
        if use_timm:
            tm, what = build_model(name, True)
            a = {k: tuple(v.shape) for k, v in tm.state_dict().items()}
            bsd = {k: tuple(v.shape) for k, v in local.state_dict().items()}
            if a != bsd:
                diff = sorted(set(a.items()) ^ set(bsd.items()))[:6]
                raise SystemExit(f"dry-run: local ViT differs from {what} for {name}: {diff}")
            log(f"  {name}: {what} and the local ViT agree: {len(a)} tensors, {n_local / 1e6:.3f}M parameters")
        else:
            log(f"  {name}: local ViT {n_local / 1e6:.3f}M parameters (timm not importable: not compared)")
    shapes = vit_s16_param_shapes()
    n = sum(math.prod(s) for s, _ in shapes)
    if use_timm:
        tm, _ = build_model("vit-s16", True)
        got = [tuple(p.shape) for p in tm.parameters()]
        if got != [s for s, _ in shapes]:
            raise SystemExit("dry-run: vit_s16_param_shapes() differs from timm's vit_small_patch16_224")
    log(f"  adam_step parameter set: {len(shapes)} tensors, {n} floats")


def fake_ours(tmp, krows, trows):
    """Made-up 'ours' CSVs in bench_cuda_kernels' and bench_cuda_train_step's formats."""
    kp, tp = os.path.join(tmp, "kernels.csv"), os.path.join(tmp, "train.csv")
    with open(kp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kernel", "shape", "time_us", "bytes", "gbps", "pct_copy", "gflop", "tflops", "pct_gemm", "sets", "note"])
        seen = set()
        for r in krows:
            if (r["kernel"], r["shape"]) in seen or not math.isfinite(r["time_us"]):
                continue
            seen.add((r["kernel"], r["shape"]))
            w.writerow([r["kernel"], r["shape"], 0.9 * r["time_us"], r["bytes"], "", 85.0, "", "", "", 1, ""])
    with open(tp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "batch", "precision", "img_per_s", "step_ms", "loss_first", "loss_last", "peak_mib",
                    "gflop_per_step", "tflops", "mallocs_per_step", "note"])
        for r in trows:
            if r["mode"] == "eager":
                w.writerow([r["model"], r["batch"], r["precision"], 1.1 * r["img_per_s"], 1, 2.3, 2.2, 100, 1, 1, 0, ""])
    return kp, tp


# ---- main ---------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours-kernels", help="CSV written by bench_cuda_kernels")
    ap.add_argument("--ours-train", help="CSV written by bench_cuda_train_step --csv")
    ap.add_argument("--csv", help="write PyTorch's rows here")
    ap.add_argument("--runs", type=int, default=60, help="timed runs per kernel (>= 50)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--deadline-s", type=float, default=0, help="skip what would end after this many seconds")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile train steps")
    ap.add_argument("--compile-tf32", action="store_true", help="also compile with TF32 on")
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--no-timm", action="store_true", help="use the local ViT even if timm is there")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check the code paths (no timing)")
    args = ap.parse_args()
    args.runs = max(args.runs, 50)

    if not args.dry_run and not torch.cuda.is_available():
        print("torch_side_by_side: no CUDA device visible to PyTorch: nothing measured (try --dry-run)")
        return 0
    use_timm = have_timm() and not args.no_timm
    b = Bench(args)
    info = torch.cuda.get_device_name(0) if b.cuda else "CPU (dry run: timings meaningless)"
    log(f"torch_side_by_side: torch {torch.__version__} on {info}; timm "
        f"{'available' if use_timm else 'NOT used: local ViT with timm layout'}; L2 {b.l2 / 2**20:.0f} MiB; "
        f"median of {b.runs} runs")
    torch.manual_seed(0)
    set_tf32(False)

    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if args.dry_run:
        bn, cs, chs, hs, bks, patch = [(2, 5)], [8], [(8, 2)], [2], [(4, 10)], [(2, 3, 8, 4)]
        log("models:")
        check_models(use_timm)
    else:
        bn, cs, chs, hs, bks, patch = BN, CS, ATTN_CH, SOFTMAX_H, CE_BK, PATCH

    picked = {}
    log("ceilings:")
    bench_ceilings(b)
    if not args.skip_kernels:
        log("kernels:")
        for fn in (lambda: bench_layer_norm(b, bn, cs), lambda: bench_gelu(b, bn, cs),
                   lambda: bench_softmax(b, bn, cs, hs), lambda: bench_cross_entropy(b, bks),
                   lambda: picked.update(bench_attention(b, bn, chs) or {}), lambda: bench_patchify(b, patch),
                   lambda: bench_adam(b), lambda: bench_gemm(b, bn, cs)):
            if time_left(args) < 30:
                log("  kernels: stopped early (deadline)")
                break
            fn()
    trows = []
    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if not args.skip_train:
        log("train steps:")
        trows = bench_train(b, args, use_timm)

    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if args.csv:
        write_csv(args.csv, b.rows, trows)
    ours_k = read_csv(args.ours_kernels) if args.ours_kernels and os.path.exists(args.ours_kernels) else []
    ours_t = read_csv(args.ours_train) if args.ours_train and os.path.exists(args.ours_train) else []
    if args.dry_run and not (ours_k or ours_t):
        with tempfile.TemporaryDirectory() as tmp:
            kp, tp = fake_ours(tmp, b.rows, trows)
            ours_k, ours_t = read_csv(kp), read_csv(tp)
        log("(dry run: the 'ours' columns below are made up, to exercise the tables)")
    print_tables(b, b.rows, trows, ours_k, ours_t, picked, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
