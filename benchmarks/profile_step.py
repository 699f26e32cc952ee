#!/usr/bin/env python3
"""Where a training step's time goes, by op class, against each class's ceiling.

Runs build/bin/bench_train_step under `perf record`, groups the samples of the
timed process by symbol into op classes, and prints one markdown table:

  class | share of samples | ms per step | GFLOP per step | GFLOP/s | % of ceiling

The GEMM and attention classes carry their analytic FLOPs (2 x MACs, x3 for a
training step, as bench_train_step counts them) and are held to the peak that
bench_train_step measured after its run (fp32 FMA, or the bf16 dot-product peak
in bf16 runs on an AVX512-BF16 build); the other classes are memory- or
latency-bound and get their time only. Samples of model set-up and of the
ceiling measurement are left out; the warm-up steps stay in (the same work as a
timed step). Shares come from the samples, ms from the median step time.

usage: benchmarks/profile_step.py [--bin build/bin/bench_train_step] [bench_train_step args...]
  e.g. benchmarks/profile_step.py --model cifar-tiny --batch 128 --threads 2 --steps 10 --precision bf16
Needs `perf` (Debian: linux-perf) with sampling allowed.
"""
import json, os, re, subprocess, sys, tempfile

PRESETS = {  # name: (image, channels, patch, dim, depth, heads, mlp, classes), as torch_train_step.py
    "cifar-tiny": (32, 3, 4, 192, 6, 3, 384, 10),
    "cifar-small": (32, 3, 4, 384, 7, 12, 384, 10),
    "cifar-deep": (32, 3, 4, 192, 9, 12, 384, 10),
    "fmnist-tiny": (28, 1, 4, 128, 6, 4, 256, 10),
    "vit-ti16": (224, 3, 16, 192, 12, 3, 768, 1000),
    "vit-s16": (224, 3, 16, 384, 12, 6, 1536, 1000),
    "vit-b16": (224, 3, 16, 768, 12, 12, 3072, 1000),
}

# Not part of a step: samples left out of the shares.
EXCLUDED = r"fma_chains|bf16_dot_chains|measure_peak|trunc_normal|Tensor<.*>::normal|__cos|__sin|__ieee754_log|" \
           r"_dl_|do_lookup|create_vit|init_weights"

# (class, symbol regex), first match wins.
CLASSES = [
    ("GEMM (packed kernels)", r"packed_gemm|sgemm|gemm_avx|gemm_eigen|gemm_bf16|general_matrix"),
    ("attention (per head)", r"attention"),
    ("LayerNorm", r"layer_norm"),
    ("GELU", r"gelu"),
    ("bf16 conversions", r"widen|narrow|convert|cast"),
    ("cross-entropy, softmax", r"cross_entropy|softmax"),
    ("optimizer (AdamW)", r"adam|optim"),
    ("elementwise, shape, patchify", r"binary|unary|add_values|elementwise|scale|copy|transpose|concat|slice|"
                                     r"patch|reduce|dropout|sum|column_sums|mul|add"),
    ("OpenMP runtime (waits, fork/join)", r"gomp|GOMP|omp_"),
    ("kernel (page faults, syscalls)", r"^\[k\]"),
    ("libc (memset, memcpy, malloc)", r"memset|memmove|memcpy|malloc|free|_int_"),
]


def analytic_gflop(model, batch, train):
    image, ch, patch, dim, depth, heads, mlp, classes = PRESETS[model]
    np_ = (image // patch) ** 2
    n = np_ + 1
    gemm = np_ * ch * patch * patch * dim + depth * (n * dim * 3 * dim + n * dim * dim + 2 * n * dim * mlp)
    gemm += dim * classes
    attn = depth * 2 * n * n * dim
    f = (3 if train else 1) * 2 * batch * 1e-9
    return gemm * f, attn * f


def main():
    args = sys.argv[1:]
    binary = "build/bin/bench_train_step"
    if len(args) >= 2 and args[0] == "--bin":
        binary, args = args[1], args[2:]
    if not os.access(binary, os.X_OK):
        sys.exit(f"profile_step.py: {binary} not found or not executable (build bench_train_step first)")

    def opt(name, default):
        return args[args.index(name) + 1] if name in args else default

    model, batch = opt("--model", "cifar-tiny"), int(opt("--batch", "128"))
    train = opt("--mode", "train") == "train"
    if model not in PRESETS:
        sys.exit(f"profile_step.py: no FLOP table for --model {model}")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        run = subprocess.run(["perf", "record", "-F", "1999", "-o", data, "--", binary] + args,
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"profile_step.py: perf record failed:\n{run.stderr[-2000:]}")
        last = [l for l in run.stdout.splitlines() if l.startswith("{")]
        if not last:
            sys.exit("profile_step.py: bench_train_step printed no JSON line")
        bench = json.loads(last[-1])
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
                              "--stdio", "-q"], capture_output=True, text=True)
    shares = {c: 0.0 for c, _ in CLASSES}
    shares["other"] = 0.0
    excluded = 0.0
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+(\[[.k]\])\s+(.*)", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        key = f"{kind} {sym}" if kind == "[k]" else sym
        if "libgomp" in dso:
            key = "GOMP " + sym
        if re.search(EXCLUDED, key):
            excluded += pct
            continue
        for c, rx in CLASSES:
            if re.search(rx, key):
                shares[c] += pct
                break
        else:
            shares["other"] += pct
    total = sum(shares.values()) or 1.0
    step_ms = bench["step_ms"]
    gemm_gf, attn_gf = analytic_gflop(model, batch, train)
    peak = bench["peak_gflops"]
    print(f"bench_train_step {' '.join(args)}: {bench['img_per_s']} img/s, step {step_ms} ms (median), "
          f"{bench['gflop_per_s']} GFLOP/s overall; ceiling {peak} GFLOP/s ({bench.get('peak_kind', 'fp32_fma')}), "
          f"{bench['threads']} threads")
    print(f"({excluded:.1f}% of the samples were set-up and the ceiling measurement, left out)")
    print()
    print("| class | share | ms / step | GFLOP / step | GFLOP/s | % of ceiling |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in list(shares):
        if shares[c] < 0.05:
            continue
        frac = shares[c] / total
        ms = frac * step_ms
        gf = gemm_gf if c.startswith("GEMM") else attn_gf if c.startswith("attention") else None
        rate = gf / (ms * 1e-3) if gf and ms > 0 else None
        print(f"| {c} | {100 * frac:.1f}% | {ms:.1f} | " + (f"{gf:.2f} | {rate:.0f} | {100 * rate / peak:.0f}% |"
                                                            if rate else "— | — | — |"))


if __name__ == "__main__":
    main()
