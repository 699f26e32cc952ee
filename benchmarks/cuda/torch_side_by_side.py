#!/usr/bin/env python3
"""torch_side_by_side.py: PyTorch on the same GPU, at the same shapes, timed the
same way as benchmarks/cuda/bench_kernels.cu and bench_train_step.cpp, and the
tables of ours against theirs. run_all.sh runs it right after our benchmarks, in
the same call, and benchmarks/cuda/bars.py reads its CSV for the bars of issue 18.

Suites (--suite):
  bars  (run_all.sh's) what issue 18's bars compare with, most telling first:
        ceilings (1 GiB copy; torch.mm 8192^3 in fp32, tf32 and bf16);
        F.scaled_dot_product_attention forward, backward and their sum in bf16 on
        contiguous (B,H,N,D) q, k, v, with the backend PyTorch picks (printed) and
        with flash, cudnn and efficient forced in turn (torch.nn.attention.sdpa_kernel)
        at N = 65 (B 512) and 197 (B 256), head dims 32, 64, 80 and 128;
        train steps at cifar-tiny b512, vit-s16 b256, vit-b16 b128: eager bf16
        (torch.autocast), torch.compile bf16, eager fp32, eager tf32; then, if time
        is left, bf16 F.layer_norm, F.gelu, torch.softmax forward and backward (for
        reading ours beside theirs; the bar is ours against the copy ceiling).
  full  everything: the bars suite's, plus the fp32 kernels of the issue-14
        comparison (LayerNorm, GELU, softmax, cross-entropy, SDPA fp32 with the
        efficient/cudnn/math backends and in timm's layout, patchify, AdamW
        foreach/fused over ViT-S/16's tensors, linear-layer GEMMs fp32/tf32/bf16),
        cifar-tiny b128, and torch.compile fp32 (--compile-tf32: tf32 too).

Train step (as bench_cuda_train_step): timm's vit_small_patch16_224 and
vit_base_patch16_224 at 224, and timm VisionTransformer built with the config of
our preset cifar-tiny (32x32): zero_grad, forward, F.cross_entropy(label_smoothing
0.1), backward, AdamW (lr 1e-3, wd 0.05 on timm's default groups; foreach).
bf16 = forward and loss under torch.autocast("cuda", dtype=torch.bfloat16) with
float32 parameters, gradients and optimizer state (PyTorch AMP; bf16 needs no
GradScaler). compile = torch.compile(model) (default mode) inside the same step.
Peak memory: torch.cuda.max_memory_allocated() over that run (warm-up included),
reset before it. If timm is missing, a local ViT with timm's layout is used
instead (said in the output).

Timing (as the C++ side): inputs random; rotation over enough input/output sets to
exceed 3x L2; warm-up; torch.cuda._sleep queued first so the host queues all runs
while the GPU waits (a row is marked "cpu-bound" if the sleep ended first); one pair
of torch.cuda.Event per run; median of --runs (>= 50). Train steps: W warm-up steps
(compile: 3 more), then S steps back to back between two events:
img/s = batch*S / elapsed. --deadline-s: a run that would end past it is skipped
and written as "skipped: deadline".

Given our CSVs (--ours-kernels from bench_cuda_kernels, --ours-train from
bench_cuda_train_step), it also prints ours, theirs and the ratio (speed ours/theirs
= their time / our time: > 1 means ours is faster). The bars and their verdicts are
bars.py's (summary.md).

--dry-run: on the CPU at tiny sizes, in well under a minute: runs every code path
except the CUDA timing itself and torch.compile, checks that timm's models and the
local fallback ViT have the same parameter names and shapes, and exercises the
comparison tables on made-up "ours" CSVs.
"""
import time

T_START = time.monotonic()  # --deadline-s counts from here: importing torch included

import argparse  # noqa: E402
import csv  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---- the shapes (keep the labels identical to bench_kernels.cu's) -------------------
BN = [(512, 65), (256, 197)]  # (B, N): 64 patches + cls at batch 512, 196 + cls at 256
CS = [192, 384, 768]
# (C, H): D = 64, 32, 64, 32, 64, 80, 128 (bench_kernels.cu's kAttnCH)
ATTN_CH = [(192, 3), (192, 6), (384, 6), (384, 12), (768, 12), (1280, 16), (1024, 8)]
ATTN_CH_FP32 = ATTN_CH[:5]  # the issue-14 comparison (full suite)
SOFTMAX_H = [6, 12]
CE_BK = [(256, 10), (256, 100), (256, 1000), (512, 10), (512, 100), (512, 1000)]
PATCH = [(256, 3, 224, 16), (512, 3, 32, 4)]

# Our presets (include/vit/nn/presets.hpp): image, patch, dim, depth, heads, mlp, classes.
PRESETS = {
    "cifar-tiny": dict(img=32, patch=4, dim=192, depth=6, heads=3, mlp=384, classes=10),
    "cifar-small": dict(img=32, patch=4, dim=384, depth=7, heads=12, mlp=384, classes=10),
    "vit-s16": dict(img=224, patch=16, dim=384, depth=12, heads=6, mlp=1536, classes=1000,
                    timm="vit_small_patch16_224"),
    "vit-b16": dict(img=224, patch=16, dim=768, depth=12, heads=12, mlp=3072, classes=1000,
                    timm="vit_base_patch16_224"),
}
# Issue 18's configurations (bench_cuda_train_step's defaults).
TRAIN_CONFIGS = [("cifar-tiny", 512), ("vit-s16", 256), ("vit-b16", 128)]
# Seconds one run needs, roughly (build, warm-up, steps; compile included): a run
# is skipped when less than this is left before --deadline-s.
NEED_S = {("eager", "cifar-tiny"): 8, ("eager", "vit-s16"): 15, ("eager", "vit-b16"): 18,
          ("compile", "cifar-tiny"): 30, ("compile", "vit-s16"): 45, ("compile", "vit-b16"): 50}


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


DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


def esize(dt):
    """Bytes per element of a row's storage."""
    return 2 if dt == "bf16" else 4


# ---- timing -----------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.cuda = not args.dry_run
        self.dev = torch.device("cuda" if self.cuda else "cpu")
        self.runs = args.runs if self.cuda else 1
        self.rows = []
        self.copy_gbps = math.nan
        self.gemm = {"fp32": math.nan, "tf32": math.nan, "bf16": math.nan}
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

    def add(self, kernel, dtype, variant, shape, time_us, nbytes, flops=0.0, ceil=None, note="", sets=0):
        r = dict(impl="torch", kernel=kernel, dtype=dtype, variant=variant, shape=shape, time_us=time_us,
                 bytes=nbytes, gbps=math.nan, pct_copy=math.nan, gflop=flops * 1e-9, tflops=math.nan,
                 pct_gemm=math.nan, sets=sets, note=note)
        if time_us and time_us > 0 and math.isfinite(time_us):
            if nbytes:
                r["gbps"] = nbytes / (time_us * 1e-6) / 1e9
                r["pct_copy"] = 100 * r["gbps"] / self.copy_gbps
            if flops:
                r["tflops"] = flops / (time_us * 1e-6) / 1e12
                if ceil:
                    r["pct_gemm"] = 100 * r["tflops"] / self.gemm[ceil]
        self.rows.append(r)
        log(f"  {kernel:22s} {dtype:4s} {variant:16s} {shape:28s} {time_us:10.2f} us {r['gbps']:9.1f} GB/s "
            f"{r['pct_copy']:6.1f}% copy {r['tflops']:8.2f} TFLOP/s  sets {sets:3d}  {note}")
        return r

    def case(self, kernel, dtype, variant, shape, nbytes, set_bytes, make, flops=0.0, ceil=None, runs=None):
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
            r = self.add(kernel, dtype, variant, shape, t, nbytes, flops, ceil, "; ".join(note), nsets)
            del fns
            return r
        except Exception as e:  # one failing case (an unsupported backend, say) must not stop the rest
            msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
            return self.add(kernel, dtype, variant, shape, math.nan, nbytes, flops, ceil,
                            "error: " + msg.replace(",", ";"))


def rnd(shape, dev, lo=-1.0, hi=1.0, requires_grad=False, dt="fp32"):
    t = torch.empty(shape, device=dev, dtype=DTYPES[dt]).uniform_(lo, hi)
    return t.requires_grad_(requires_grad)


# ---- ceilings ----------------------------------------------------------------------------------
def bench_ceilings(b):
    dev = b.dev
    n = (1 << 28) if b.cuda else (1 << 16)
    src, dst = rnd((n,), dev), torch.empty(n, device=dev)
    t, _ = b.time(1, lambda i: dst.copy_(src), runs=30 if b.cuda else 1)
    b.copy_gbps = 8.0 * n / (t * 1e-6) / 1e9
    b.add("ceiling_copy", "-", "copy_", "D2D 1 GiB", t, 8.0 * n)
    del src, dst
    m = 8192 if b.cuda else 64
    for prec in ("fp32", "tf32", "bf16"):
        x, y = rnd((m, m), dev, dt=prec), rnd((m, m), dev, dt=prec)
        out = torch.empty((m, m), device=dev, dtype=DTYPES[prec])
        set_tf32(prec == "tf32")
        t, _ = b.time(1, lambda i: torch.mm(x, y, out=out), runs=20 if b.cuda else 1)
        flops = 2.0 * m ** 3
        b.gemm[prec] = flops / (t * 1e-6) / 1e12
        b.add("ceiling_gemm", prec, "torch.mm", "8192^3 NN", t, 3.0 * esize(prec) * m * m, flops, prec)
        del x, y, out
    set_tf32(False)


# ---- kernels -------------------------------------------------------------------------------------
def grad_fn(outputs, inputs, grad_out):
    """Backward only: the graph is kept, so each call runs just the backward kernels."""
    return lambda: torch.autograd.grad(outputs, inputs, grad_out, retain_graph=True)


def bench_layer_norm(b, bn, cs, dt):
    dev, s = b.dev, esize(dt)
    for B, N in bn:
        for C in cs:
            R = B * N
            shape = shape_bnc(B, N, "C", C)
            fwd_bytes = s * (2 * R * C + 2 * C) + 8.0 * R
            bwd_bytes = s * (3 * R * C + 5 * C) + 8.0 * R

            def make_fwd():
                x, w, bb = rnd((R, C), dev, dt=dt), rnd((C,), dev, 0.5, 1.5, dt=dt), rnd((C,), dev, dt=dt)

                def f():
                    with torch.no_grad():
                        F.layer_norm(x, (C,), w, bb, 1e-6)
                return f

            def make_bwd():
                x = rnd((R, C), dev, requires_grad=True, dt=dt)
                w, bb = rnd((C,), dev, 0.5, 1.5, True, dt=dt), rnd((C,), dev, requires_grad=True, dt=dt)
                y = F.layer_norm(x, (C,), w, bb, 1e-6)
                return grad_fn(y, (x, w, bb), rnd((R, C), dev, dt=dt))

            b.case("layer_norm_fwd", dt, "F.layer_norm", shape, fwd_bytes, fwd_bytes, make_fwd)
            b.case("layer_norm_bwd", dt, "autograd", shape, bwd_bytes, bwd_bytes + 2.0 * s * R * C, make_bwd)


def bench_gelu(b, bn, cs, dt):
    dev, s = b.dev, esize(dt)
    for B, N in bn:
        for C in cs:
            R, M = B * N, 4 * C
            n = R * M
            shape = shape_bnc(B, N, "M", M)

            def make_fwd():
                x = rnd((R, M), dev, -3, 3, dt=dt)

                def f():
                    with torch.no_grad():
                        F.gelu(x)
                return f

            def make_bwd():
                x = rnd((R, M), dev, -3, 3, True, dt=dt)
                return grad_fn(F.gelu(x), (x,), rnd((R, M), dev, dt=dt))

            b.case("gelu_fwd", dt, "F.gelu", shape, 2.0 * s * n, 2.0 * s * n, make_fwd)
            b.case("gelu_bwd", dt, "autograd", shape, 3.0 * s * n, 4.0 * s * n, make_bwd)


def bench_softmax_case(b, shape, R, n, dt):
    dev, s = b.dev, esize(dt)
    e = R * n

    def make_fwd():
        x = rnd((R, n), dev, -4, 4, dt=dt)

        def f():
            with torch.no_grad():
                torch.softmax(x, -1)
        return f

    def make_bwd():
        x = rnd((R, n), dev, -4, 4, True, dt=dt)
        return grad_fn(torch.softmax(x, -1), (x,), rnd((R, n), dev, dt=dt))

    b.case("softmax_fwd", dt, "torch.softmax", shape, 2.0 * s * e, 2.0 * s * e, make_fwd)
    b.case("softmax_bwd", dt, "autograd", shape, 3.0 * s * e, 4.0 * s * e, make_bwd)


def bench_softmax(b, bn, cs, hs, dt):
    for B, N in bn:
        for H in hs:
            bench_softmax_case(b, f"attn B={B} H={H} N={N}", B * H * N, N, dt)
    for B, N in bn:
        for C in cs:
            bench_softmax_case(b, shape_bnc(B, N, "C", C), B * N, C, dt)


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

        b.case("cross_entropy_fwd_bwd", "fp32", "F.cross_entropy", f"B={B} K={K}", 4.0 * (6 * B * K + 2),
               4.0 * 4 * B * K, make)


def sdpa_backends(dt):
    """The backends forced in turn: flash first for bf16 (issue 18's bar is against
    it; it has no float32 kernel)."""
    from torch.nn.attention import SDPBackend
    if dt == "bf16":
        return [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
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


def bench_attention(b, bn, chs, dt, timm_layout=False):
    from contextlib import nullcontext
    from torch.nn.attention import sdpa_kernel
    dev, s = b.dev, esize(dt)
    picked = {}
    for B, N in bn:
        for C, H in chs:
            D = C // H
            shape = f"B={B} N={N} C={C} H={H}"
            bnc, bhn, nnd = B * N * C, B * H * N, B * H * N * N * D
            fwd_bytes, bwd_bytes = s * 4.0 * bnc + 4.0 * bhn, s * 8.0 * bnc + 4.0 * bhn
            probe = [rnd((B, H, N, D), dev, dt=dt) for _ in range(3)]
            picked[(dt, shape)] = default_sdpa_backend(*probe)
            del probe
            variants = [("default", None)] + ([] if not b.cuda else sdpa_backends(dt))
            for name, backend in variants:
                ctx = (lambda backend=backend: sdpa_kernel([backend])) if backend is not None else nullcontext

                def make_fwd(ctx=ctx):
                    q, k, v = (rnd((B, H, N, D), dev, dt=dt) for _ in range(3))

                    def f():
                        with torch.no_grad(), ctx():
                            F.scaled_dot_product_attention(q, k, v)
                    return f

                def make_bwd(ctx=ctx):
                    q, k, v = (rnd((B, H, N, D), dev, requires_grad=True, dt=dt) for _ in range(3))
                    with ctx():
                        o = F.scaled_dot_product_attention(q, k, v)
                    return grad_fn(o, (q, k, v), rnd((B, H, N, D), dev, dt=dt))

                label = f"sdpa {name}" if name != "default" else f"sdpa default={picked[(dt, shape)]}"
                rf = b.case("attention_fwd", dt, label, shape, fwd_bytes, s * 4.0 * bnc, make_fwd, 4.0 * nnd, dt)
                rb = b.case("attention_bwd", dt, label, shape, bwd_bytes, s * 12.0 * bnc, make_bwd, 8.0 * nnd, dt)
                b.add("attention_fwd_bwd", dt, label, shape, rf["time_us"] + rb["time_us"], fwd_bytes + bwd_bytes,
                      12.0 * nnd, dt, "sum of the two medians")
            if not timm_layout:
                continue

            # timm's Attention: qkv (B,N,3C) -> per-head views -> SDPA -> (B,N,C), default backend.
            def timm_attn(qkv):
                q, k, v = qkv.view(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
                return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)

            def make_fwd_timm():
                qkv = rnd((B, N, 3 * C), dev, dt=dt)

                def f():
                    with torch.no_grad():
                        timm_attn(qkv)
                return f

            def make_bwd_timm():
                qkv = rnd((B, N, 3 * C), dev, requires_grad=True, dt=dt)
                return grad_fn(timm_attn(qkv), (qkv,), rnd((B, N, C), dev, dt=dt))

            rf = b.case("attention_fwd", dt, "timm layout", shape, fwd_bytes, s * 4.0 * bnc, make_fwd_timm,
                        4.0 * nnd, dt)
            rb = b.case("attention_bwd", dt, "timm layout", shape, bwd_bytes, s * 12.0 * bnc, make_bwd_timm,
                        8.0 * nnd, dt)
            b.add("attention_fwd_bwd", dt, "timm layout", shape, rf["time_us"] + rb["time_us"],
                  fwd_bytes + bwd_bytes, 12.0 * nnd, dt, "sum of the two medians")
    log(f"  SDPA backend PyTorch picks for {dt} (B,H,N,D) inputs: " +
        ", ".join(f"{s_}: {p}" for (_, s_), p in picked.items()))
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

        b.case("patchify", "fp32", "reshape-permute", shape, 8.0 * n, 8.0 * n, make_fwd)
        b.case("unpatchify", "fp32", "reshape-permute", shape, 8.0 * n, 8.0 * n, make_bwd)


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

        b.case("adam_step", "fp32", f"AdamW {variant}", "vit-s16 params", 28.0 * total, 16.0 * total, make)


def bench_gemm(b, bn, cs):
    dev = b.dev
    for prec in ("fp32", "tf32", "bf16"):
        set_tf32(prec == "tf32")
        s = esize(prec)
        for B, N in bn:
            for C in cs:
                R = B * N
                tail = f" B={B} N={N} C={C}"
                for mult, layer in ((3, "qkv"), (4, "fc1")):
                    O = mult * C
                    nbytes = s * (R * C + O * C + R * O)

                    def make(O=O):
                        x, w = rnd((R, C), dev, dt=prec), rnd((O, C), dev, -0.05, 0.05, dt=prec)
                        return lambda: F.linear(x, w)

                    b.case("gemm", prec, "F.linear", layer + tail, nbytes, nbytes, make, 2.0 * R * O * C, prec)
                O = 4 * C
                nbytes = s * (R * O + R * C + 2 * O * C)

                def make_dw(O=O):
                    dout, x, dw = rnd((R, O), dev, dt=prec), rnd((R, C), dev, dt=prec), rnd((O, C), dev, dt=prec)
                    return lambda: dw.addmm_(dout.t(), x)

                b.case("gemm", prec, "addmm_", "fc1.dW" + tail, nbytes, nbytes, make_dw, 2.0 * R * O * C, prec)
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
    from contextlib import nullcontext
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
    # bf16: PyTorch AMP: float32 parameters, gradients and AdamW state; the forward
    # and the loss under autocast (bf16 GEMMs and attention, float32 LayerNorm,
    # softmax and loss); no GradScaler (bf16 has float32's range).
    amp = (lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)) if prec == "bf16" else nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with amp():
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


def train_runs(args, cuda):
    """(preset, batch, mode, precision) in the order they run: issue 18's bars first."""
    if not cuda:  # dry run: one small model is enough for the code path (check_models built all)
        return [("cifar-tiny", 2, "eager", "fp32"), ("cifar-tiny", 2, "eager", "bf16")]
    compile_ok = not args.no_compile
    runs = [(n, bt, "eager", "bf16") for n, bt in TRAIN_CONFIGS]
    if compile_ok:
        runs += [(n, bt, "compile", "bf16") for n, bt in TRAIN_CONFIGS]
    runs += [(n, bt, "eager", p) for p in ("fp32", "tf32") for n, bt in TRAIN_CONFIGS]
    if args.suite == "full":
        runs += [("cifar-tiny", 128, "eager", p) for p in ("bf16", "fp32", "tf32")]
        if compile_ok:
            for p in ("fp32", "tf32") if args.compile_tf32 else ("fp32",):
                runs += [(n, bt, "compile", p) for n, bt in TRAIN_CONFIGS]
    return runs


def bench_train(b, args, use_timm, save=lambda trows: None):
    """The train runs; save(rows) after each, so a run cut by its cap keeps what it measured."""
    rows = []
    steps, warmup = (args.steps, args.warmup) if b.cuda else (1, 1)

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
        set_tf32(False)
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

    for name, batch, mode, prec in train_runs(args, b.cuda):
        need = NEED_S.get((mode, name), 20) if b.cuda else 0
        if time_left(args) < need:
            log(f"  {name} batch {batch} {mode} {prec}: skipped ({time_left(args):.0f} s left, ~{need} s needed)")
            rows.append(dict(impl="torch", model=name, batch=batch, precision=prec, mode=mode,
                             img_per_s=math.nan, note="skipped: deadline"))
            continue
        one(name, batch, mode, prec)
        save(rows)
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


KCOLS = ["impl", "kernel", "dtype", "variant", "shape", "time_us", "bytes", "gbps", "pct_copy", "gflop", "tflops",
         "pct_gemm", "sets", "note"]
TCOLS = ["impl", "model", "batch", "precision", "mode", "img_per_s", "step_ms", "loss_first", "loss_last",
         "peak_mib", "warmup_s", "note"]


def write_csv(path, krows, trows):
    """One file, two sections: rows whose first field is "kernel" (columns KCOLS) and
    "train" (TCOLS), each after its own "section" header row (bars.py reads it so)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["section"] + KCOLS)
        for r in krows:
            w.writerow(["kernel"] + [r.get(c, "") for c in KCOLS])
        w.writerow(["section"] + TCOLS)
        for r in trows:
            w.writerow(["train"] + [r.get(c, "") for c in TCOLS])


def print_tables(b, krows, trows, ours_k, ours_t, picked, info):
    print()
    print(f"## PyTorch {torch.__version__} on {info}")
    print()
    print(f"- ceilings seen by PyTorch: copy {b.copy_gbps:.0f} GB/s, torch.mm 8192^3 fp32 {b.gemm['fp32']:.1f} / "
          f"tf32 {b.gemm['tf32']:.1f} / bf16 {b.gemm['bf16']:.1f} TFLOP/s")
    for dt in ("bf16", "fp32"):
        got = sorted({p for (d, _), p in picked.items() if d == dt})
        if got:
            print(f"- SDPA backend PyTorch picks for {dt} inputs: " + ", ".join(got))
    print("- ratio = their time / our time (train: our img/s / their img/s): > 1 means ours is faster;"
          " the bars and their verdicts: summary.md (bars.py)")

    theirs = {}
    for r in krows:
        theirs.setdefault((r["kernel"], r["dtype"], r["shape"]), []).append(r)

    if ours_k:
        print()
        print("## ours vs PyTorch: kernels (median us)")
        print()
        print("| kernel | dtype | shape | ours us | ours %copy | torch us | torch variant | ratio |")
        print("|---|---|---|---:|---:|---:|---|---:|")
        for o in ours_k:
            key = (o["kernel"], o.get("dtype") or "fp32", o["shape"])
            ours_us = fnum(o["time_us"])
            cands = [t for t in theirs.get(key, []) if math.isfinite(t["time_us"])]
            if not cands or not math.isfinite(ours_us):
                continue
            if o["kernel"].startswith("attention"):
                # PyTorch's own choice, flash, the fastest forced backend if another, timm's layout
                # (every backend is in torch.csv and torch.log).
                default = [t for t in cands if t["variant"].startswith("sdpa default")]
                flash = [t for t in cands if t["variant"] == "sdpa flash"]
                forced = [t for t in cands if t["variant"].startswith("sdpa ") and t not in default]
                best = [min(forced, key=lambda t: t["time_us"])] if forced else []
                if best and (best[0] in flash or (default and best[0]["time_us"] >= default[0]["time_us"])):
                    best = []
                cands = default + flash + best + [t for t in cands if t["variant"] == "timm layout"]
            for t in cands:
                ratio = t["time_us"] / ours_us if ours_us > 0 else math.nan
                print(f"| {o['kernel']} | {key[1]} | {o['shape']} | {f1(ours_us)} | {f1(fnum(o['pct_copy']))} | "
                      f"{f1(t['time_us'])} | {t['variant']} | {f1(ratio, 2)} |")

    if ours_t or trows:
        print()
        print("## ours vs PyTorch: training step (img/s; ours: op by op / replayed as a CUDA graph)")
        print()
        print("| model | batch | precision | ours | ours graph | torch eager | ratio | torch compile | ratio | "
              "torch eager peak MiB | ours peak MiB |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        keys = []
        for r in list(ours_t) + list(trows):
            k = (r["model"], int(r["batch"]), r["precision"])
            if k not in keys and r["precision"] in ("fp32", "tf32", "bf16"):
                keys.append(k)

        def ours(k, prec):
            return next((r for r in ours_t if (r["model"], int(r["batch"]), r["precision"]) == k[:2] + (prec,)), None)

        for k in keys:
            o, og = ours(k, k[2]), ours(k, k[2] + "-graph")
            e = next((r for r in trows if (r["model"], r["batch"], r["precision"], r["mode"]) == k + ("eager",)), None)
            c = next((r for r in trows if (r["model"], r["batch"], r["precision"], r["mode"]) == k + ("compile",)), None)
            ov = max(fnum(o["img_per_s"]) if o else math.nan, fnum(og["img_per_s"]) if og else math.nan,
                     key=lambda v: v if math.isfinite(v) else -1)
            ev = fnum(e["img_per_s"]) if e else math.nan
            cv = fnum(c["img_per_s"]) if c else math.nan
            peaks = [fnum(r["peak_mib"]) for r in (o, og) if r]
            op = max(peaks) if peaks else math.nan
            print(f"| {k[0]} | {k[1]} | {k[2]} | {f1(fnum(o['img_per_s']) if o else math.nan)} | "
                  f"{f1(fnum(og['img_per_s']) if og else math.nan)} | {f1(ev)} | {f1(ov / ev, 2)} | {f1(cv)} | "
                  f"{f1(ov / cv, 2)} | {f1(fnum(e.get('peak_mib')) if e else math.nan, 0)} | {f1(op, 0)} |")
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
        w.writerow(["kernel", "dtype", "shape", "time_us", "bytes", "gbps", "pct_copy", "gflop", "tflops", "pct_gemm",
                    "sets", "note"])
        seen = set()
        for r in krows:
            key = (r["kernel"], r["dtype"], r["shape"])
            if key in seen or not math.isfinite(r["time_us"]):
                continue
            seen.add(key)
            w.writerow([r["kernel"], r["dtype"], r["shape"], 0.9 * r["time_us"], r["bytes"], "", 85.0, "", "", "",
                        1, ""])
    with open(tp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "batch", "precision", "img_per_s", "step_ms", "loss_first", "loss_last", "peak_mib",
                    "gflop_per_step", "tflops", "mallocs_per_step", "note"])
        for r in trows:
            if r["mode"] == "eager" and math.isfinite(fnum(r["img_per_s"])):
                for suffix, f_ in (("", 1.1), ("-graph", 1.2)):
                    w.writerow([r["model"], r["batch"], r["precision"] + suffix, f_ * r["img_per_s"], 1, 2.3, 2.2,
                                100, 1, 1, 0, ""])
    return kp, tp


# ---- main ---------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=("bars", "full"), default="full",
                    help="bars: what issue 18's bars compare with (run_all.sh); full: also the issue-14 kernels")
    ap.add_argument("--ours-kernels", help="CSV written by bench_cuda_kernels")
    ap.add_argument("--ours-train", help="CSV written by bench_cuda_train_step --csv")
    ap.add_argument("--csv", help="write PyTorch's rows here")
    ap.add_argument("--runs", type=int, default=60, help="timed runs per kernel (>= 50)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--deadline-s", type=float, default=0, help="skip what would end after this many seconds")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile train steps")
    ap.add_argument("--compile-tf32", action="store_true", help="full suite: also compile fp32 steps with TF32 on")
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
    log(f"torch_side_by_side: torch {torch.__version__} on {info}; suite {args.suite}; timm "
        f"{'available' if use_timm else 'NOT used: local ViT with timm layout'}; L2 {b.l2 / 2**20:.0f} MiB; "
        f"median of {b.runs} runs")
    torch.manual_seed(0)
    set_tf32(False)

    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if args.dry_run:
        bn, cs, chs, hs, bks, patch = [(2, 5)], [8], [(8, 2)], [2], [(4, 10)], [(2, 3, 8, 4)]
        chs_fp32 = chs
        log("models:")
        check_models(use_timm)
    else:
        bn, cs, chs, hs, bks, patch = BN, CS, ATTN_CH, SOFTMAX_H, CE_BK, PATCH
        chs_fp32 = ATTN_CH_FP32

    trows = []

    def save(rows=None):
        """torch.csv rewritten as rows come in: a run stopped by its cap keeps what it measured."""
        if args.csv:
            write_csv(args.csv, b.rows, trows if rows is None else rows)

    def kernels(fns):
        for what, fn in fns:
            if time_left(args) < 30:
                log(f"  kernels: {what} and after skipped (deadline)")
                return
            fn()
            save()

    picked = {}
    log("ceilings:")
    bench_ceilings(b)
    if not args.skip_kernels:
        log("kernels (bars):")
        kernels([("attention bf16", lambda: picked.update(bench_attention(b, bn, chs, "bf16") or {}))])
    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if not args.skip_train:
        log("train steps:")
        trows = bench_train(b, args, use_timm, save)
    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if not args.skip_kernels:
        log("kernels (reference):")
        fns = [("layer_norm bf16", lambda: bench_layer_norm(b, bn, cs, "bf16")),
               ("gelu bf16", lambda: bench_gelu(b, bn, cs, "bf16")),
               ("softmax bf16", lambda: bench_softmax(b, bn, cs, hs, "bf16"))]
        if args.suite == "full":
            fns += [("layer_norm fp32", lambda: bench_layer_norm(b, bn, cs, "fp32")),
                    ("gelu fp32", lambda: bench_gelu(b, bn, cs, "fp32")),
                    ("softmax fp32", lambda: bench_softmax(b, bn, cs, hs, "fp32")),
                    ("cross_entropy", lambda: bench_cross_entropy(b, bks)),
                    ("attention fp32", lambda: picked.update(bench_attention(b, bn, chs_fp32, "fp32", True) or {})),
                    ("patchify", lambda: bench_patchify(b, patch)), ("adam", lambda: bench_adam(b)),
                    ("gemm", lambda: bench_gemm(b, bn, cs))]
        kernels(fns)

    log(f"(+{time.monotonic() - T_START:.0f} s)")
    if args.csv:
        write_csv(args.csv, b.rows, trows)
        log(f"wrote {args.csv}")
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
