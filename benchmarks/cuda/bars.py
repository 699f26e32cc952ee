#!/usr/bin/env python3
"""bars.py: the bars of issue 18, each with a PASS/FAIL verdict computed from the
files one call of benchmarks/cuda/run_all.sh wrote into OUT (Python's standard
library only: it runs where PyTorch does not).

  python3 benchmarks/cuda/bars.py OUT [--csv OUT/bars.csv]

Reads (a missing file or row makes its bars "FAIL (not measured: ...)", never a
figure from elsewhere):
  kernels.csv   bench_cuda_kernels: kernel,dtype,shape,time_us,...,pct_copy,...,note
  train.csv     bench_cuda_train_step: model,batch,precision,img_per_s,...,peak_mib,...,note
  torch.csv     torch_side_by_side.py: "section" header rows, then "kernel" rows
                (impl,kernel,dtype,variant,shape,time_us,...) and "train" rows
                (impl,model,batch,precision,mode,img_per_s,...,peak_mib,...)
  accuracy.csv  run_all.sh: run,dataset,model,precision,seed,epochs,rc,seconds,run_dir
                (each run_dir's metrics.csv gives its test top-1: the last epoch row)
  checks.csv    run_all.sh: check,rc,failed,errors,summary (the [cuda] tests, the four
                sanitizers: failed = failed test cases, errors = the sanitizer's
                ERROR/RACECHECK SUMMARY count, empty when no summary line was printed;
                determinism: rc of cmp)

The bars (issue 18, "Bars"):
  train bf16 >= torch.compile bf16 and >= 1.5x torch eager bf16, peak memory <= torch
    eager bf16's, at cifar-tiny b512, vit-s16 b256, vit-b16 b128. Ours is the faster
    of the op-by-op step ("bf16") and its CUDA-graph replay ("bf16-graph", what
    `vit train` runs); its peak is the larger of the two rows' peaks.
  attention forward + backward, bf16, faster than F.scaled_dot_product_attention
    forced to the flash backend at N = 65 and 197, head dims 32 and 64; head dims 80
    and 128 measured (no verdict).
  LayerNorm, GELU, softmax forward and backward, bf16: every benchmark shape >= 80%
    of the copy bandwidth bench_cuda_kernels measured in the same run.
  fp32 and tf32 train steps >= PyTorch eager fp32 / tf32 at every configuration
    (ours: the faster of op by op and graph, as for bf16).
  accuracy, bf16 on the GPU: Fashion-MNIST default recipe >= 92.0% test top-1 (the
    last epoch's); CIFAR subset, cifar-tiny, 20 epochs, 3 seeds: |mean bf16 - mean
    fp32| <= 1.0 point; two identical bf16 runs write bitwise-equal checkpoints.
  the [cuda] tests pass; compute-sanitizer memcheck, initcheck, synccheck and
    racecheck each finish with 0 errors.

The extras' bars (earlier issues, closed awaiting a GPU run of run_all.sh; a table of
their own, not counted with issue 18's):
  issue 14: `vit train --device cuda`, cifar-tiny, batch 128, end to end (images / wall
    time over the metrics.csv step rows after the first logging window, OUT/train_bar/)
    >= 90% of bench_cuda_train_step's cifar-tiny batch-128 rate of the same run
    (--bar-precision, default fp32; train.csv's row, else train_bar.csv's); data wait
    (each window's data_wait weighted by its length) <= 1%.
  issue 15: vit_dist_gpu_tests (NCCL, one rank) pass; two ranks sharing the GPU (MPI
    staged, batch 64 each) end within 1e-5 (compare_weights' worst relative difference)
    of one process at batch 128 after 5 SGD steps.
  checks.csv rows: train_bar, dist_nccl, dist_one_rank, dist_two_ranks_staged,
    dist_compare (rc "skipped" with the reason as summary when not run).
"""
import argparse
import csv
import math
import os
import sys

TRAIN_CONFIGS = [("cifar-tiny", 512), ("vit-s16", 256), ("vit-b16", 128)]
ATTN_N = [(512, 65), (256, 197)]
# (C, H) of the attention rows, as bench_kernels.cu's kAttnCH: D = C / H.
ATTN_CH = [(192, 3), (192, 6), (384, 6), (384, 12), (768, 12), (1280, 16), (1024, 8)]
ATTN_BAR_D = (32, 64)
# GELU: the plain kernel and the MLP's fused bias+GELU (what the model runs), each a bar.
BW_KERNELS = ["layer_norm_fwd", "layer_norm_bwd", "gelu_fwd", "gelu_bwd", "bias_gelu_fwd", "bias_gelu_bwd",
              "softmax_fwd", "softmax_bwd"]
BW_BAR_PCT = 80.0
COMPILE_BAR, EAGER_BF16_BAR, EAGER_F32_BAR = 1.0, 1.5, 1.0
FMNIST_BAR = 92.0
CIFAR_SEEDS, CIFAR_POINTS = 3, 1.0
SANITIZERS = ["memcheck", "initcheck", "synccheck", "racecheck"]
BAR_MODEL, BAR_BATCH = "cifar-tiny", 128
TRAINER_BAR_PCT, DATA_WAIT_BAR_PCT = 90.0, 1.0
DIST_RTOL = 1e-5


# ---- reading -------------------------------------------------------------------------------------
def fnum(v):
    try:
        x = float(v)
        return x if math.isfinite(x) else math.nan
    except (TypeError, ValueError):
        return math.nan


def ok(x):
    return isinstance(x, float) and math.isfinite(x)


def read_rows(path):
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_sections(path):
    """torch.csv: {"kernel": [...], "train": [...]}, each section after its own header row."""
    if not os.path.isfile(path):
        return None
    out, header = {}, None
    with open(path, newline="") as f:
        for rec in csv.reader(f):
            if not rec:
                continue
            if rec[0] == "section":
                header = rec[1:]
                continue
            if header is None:
                continue
            out.setdefault(rec[0], []).append(dict(zip(header, rec[1:])))
    return out


def last_epoch(run_dir):
    """(test top-1 in %, epoch rows) of RUN_DIR/metrics.csv; (nan, 0) when absent."""
    rows = read_rows(os.path.join(run_dir, "metrics.csv")) if run_dir else None
    if not rows:
        return math.nan, 0
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs:
        return math.nan, 0
    return 100.0 * fnum(epochs[-1].get("test_top1")), len(epochs)


# ---- formatting ----------------------------------------------------------------------------------
def f(x, digits=1):
    return f"{x:.{digits}f}" if ok(x) else "-"


class Bars:
    def __init__(self):
        self.rows = []  # (bar, case, ours, reference, ratio, threshold, verdict)
        self.details = []  # extra markdown lines

    def add(self, bar, case, ours, ref, ratio, threshold, verdict):
        self.rows.append((bar, case, ours, ref, ratio, threshold, verdict))

    def missing(self, bar, case, threshold, why):
        self.add(bar, case, "-", "-", "-", threshold, f"FAIL (not measured: {why})")

    def counts(self):
        c = {"PASS": 0, "FAIL": 0, "measured": 0, "not measured": 0}
        for r in self.rows:
            v = r[6]
            c["PASS" if v == "PASS" else "FAIL" if v.startswith("FAIL") else "measured" if v == "measured"
              else "not measured"] += 1
        return c


def verdict(passed):
    return "PASS" if passed else "FAIL"


# ---- the bars --------------------------------------------------------------------------------------
def best_ours(train, model, batch, prec):
    """(img/s, peak MiB, which) of ours: the faster of PREC and PREC-graph, the larger peak."""
    cands = [r for r in train or [] if r.get("model") == model and str(r.get("batch")) == str(batch)
             and r.get("precision") in (prec, prec + "-graph") and ok(fnum(r.get("img_per_s")))]
    if not cands:
        return math.nan, math.nan, ""
    best = max(cands, key=lambda r: fnum(r["img_per_s"]))
    peaks = [fnum(r.get("peak_mib")) for r in cands if ok(fnum(r.get("peak_mib")))]
    return fnum(best["img_per_s"]), (max(peaks) if peaks else math.nan), best["precision"]


def torch_train(torch_rows, model, batch, prec, mode):
    for r in (torch_rows or {}).get("train", []):
        if (r.get("model"), str(r.get("batch")), r.get("precision"), r.get("mode")) == (model, str(batch), prec, mode):
            return r
    return None


def why_not(row, what):
    if row is None:
        return f"no {what} row"
    note = (row.get("note") or "").strip()
    return f"{what}: {note}" if note else f"{what}: no figure"


def train_bars(bars, train, torch_rows):
    if train is None:
        why_ours = "train.csv missing (bench_cuda_train_step did not run)"
    else:
        why_ours = None
    for model, batch in TRAIN_CONFIGS:
        case = f"{model} b{batch}"
        ours, peak, which = best_ours(train, model, batch, "bf16")
        failed = [r for r in train or [] if r.get("model") == model and "bf16" in (r.get("precision") or "")
                  and (r.get("note") or "").startswith("failed")]
        ours_why = why_ours or (failed[0]["note"] if failed else "no bf16 row in train.csv")
        for mode, bar, thr in (("compile", "train step bf16 vs torch.compile bf16", COMPILE_BAR),
                               ("eager", "train step bf16 vs torch eager bf16", EAGER_BF16_BAR)):
            t = torch_train(torch_rows, model, batch, "bf16", mode)
            theirs = fnum(t.get("img_per_s")) if t else math.nan
            thr_s = f">= {thr:.1f}x"
            if not ok(ours):
                bars.missing(bar, case, thr_s, ours_why)
            elif not ok(theirs):
                bars.missing(bar, case, thr_s, why_not(t, f"torch {mode} bf16"))
            else:
                ratio = ours / theirs
                bars.add(bar, case, f"{f(ours)} img/s ({which})", f"{f(theirs)} img/s", f"{ratio:.2f}x", thr_s,
                         verdict(ratio >= thr))
        t = torch_train(torch_rows, model, batch, "bf16", "eager")
        theirs_peak = fnum(t.get("peak_mib")) if t else math.nan
        bar = "peak GPU memory bf16 vs torch eager bf16"
        if not ok(peak):
            bars.missing(bar, case, "<= 1.00x", ours_why)
        elif not ok(theirs_peak):
            bars.missing(bar, case, "<= 1.00x", why_not(t, "torch eager bf16"))
        else:
            bars.add(bar, case, f"{f(peak, 0)} MiB", f"{f(theirs_peak, 0)} MiB", f"{peak / theirs_peak:.2f}x",
                     "<= 1.00x", verdict(peak <= theirs_peak))


def attention_bars(bars, kernels, torch_rows):
    ours_rows = {(r.get("kernel"), r.get("dtype"), r.get("shape")): r for r in kernels or []}
    missing_note = next((r.get("note") for r in kernels or [] if r.get("kernel") == "attention_fwd_bwd"
                         and r.get("dtype") == "bf16" and (r.get("note") or "").startswith("missing launcher")), None)
    theirs = {}
    for r in (torch_rows or {}).get("kernel", []):
        if r.get("kernel") == "attention_fwd_bwd" and r.get("dtype") == "bf16":
            theirs.setdefault(r.get("shape"), []).append(r)
    for B, N in ATTN_N:
        for C, H in ATTN_CH:
            D = C // H
            shape = f"B={B} N={N} C={C} H={H}"
            case = f"N={N} D={D} (B={B} C={C} H={H})"
            is_bar = D in ATTN_BAR_D
            bar = "attention fwd+bwd bf16 vs SDPA flash" + ("" if is_bar else " (measured)")
            thr = "< flash time" if is_bar else "-"
            o = ours_rows.get(("attention_fwd_bwd", "bf16", shape))
            ours_us = fnum(o.get("time_us")) if o else math.nan
            cands = [t for t in theirs.get(shape, []) if ok(fnum(t.get("time_us")))]
            flash = next((t for t in theirs.get(shape, []) if t.get("variant") == "sdpa flash"), None)
            flash_us = fnum(flash.get("time_us")) if flash else math.nan
            why = None
            if not ok(ours_us):
                why = missing_note or (f"ours: {o.get('note')}" if o and o.get("note") else
                                       "no bf16 attention_fwd_bwd row in kernels.csv")
            elif not ok(flash_us):
                why = why_not(flash, "torch sdpa flash")
            if why is not None:
                if is_bar:
                    bars.missing(bar, case, thr, why)
                else:
                    bars.add(bar, case, f"{f(ours_us)} us" if ok(ours_us) else "-",
                             f"{f(flash_us)} us (flash)" if ok(flash_us) else "-", "-", thr, f"not measured: {why}")
                continue
            ratio = flash_us / ours_us
            ref = f"{f(flash_us)} us (flash)"
            fastest = min(cands, key=lambda t: fnum(t["time_us"])) if cands else None
            if fastest is not None and fastest is not flash and fnum(fastest["time_us"]) < flash_us:
                ref += f"; fastest {fastest['variant']} {f(fnum(fastest['time_us']))} us"
            bars.add(bar, case, f"{f(ours_us)} us", ref, f"{ratio:.2f}x", thr,
                     verdict(ours_us < flash_us) if is_bar else "measured")


def bandwidth_bars(bars, kernels):
    copy = next((r for r in kernels or [] if r.get("kernel") == "ceiling_copy"), None)
    copy_gbps = fnum(copy.get("gbps")) if copy else math.nan
    below = []
    for k in BW_KERNELS:
        bar = "bf16 kernel >= 80% of copy bandwidth"
        thr = f">= {BW_BAR_PCT:.0f}% every shape"
        rows = [r for r in kernels or [] if r.get("kernel") == k and r.get("dtype") == "bf16"]
        if kernels is None:
            bars.missing(bar, k, thr, "kernels.csv missing")
            continue
        if not ok(copy_gbps):
            bars.missing(bar, k, thr, "no copy ceiling in kernels.csv")
            continue
        miss = next((r for r in rows if (r.get("note") or "").startswith("missing launcher")), None)
        if miss is not None:
            bars.missing(bar, k, thr, miss["note"])
            continue
        measured = [r for r in rows if ok(fnum(r.get("pct_copy")))]
        unmeasured = [r for r in rows if not ok(fnum(r.get("pct_copy")))]
        if not measured:
            bars.missing(bar, k, thr, "no bf16 row" if not rows else f"{len(rows)} rows without a time")
            continue
        low = min(measured, key=lambda r: fnum(r["pct_copy"]))
        fails = [r for r in measured if fnum(r["pct_copy"]) < BW_BAR_PCT]
        below += [(k, r) for r in fails] + [(k, r) for r in unmeasured]
        passed = not fails and not unmeasured
        note = "" if not unmeasured else f"; {len(unmeasured)} shape(s) not measured"
        bars.add(bar, f"{k} ({len(measured)} shapes{note})", f"lowest {f(fnum(low['pct_copy']))}% ({low['shape']})",
                 f"copy {f(copy_gbps, 0)} GB/s", f"{len(measured) - len(fails)}/{len(rows)} shapes pass", thr,
                 verdict(passed))
    if below:
        bars.details += ["", "### bf16 kernel rows under 80% of copy (or not measured)", "",
                         "| kernel | shape | % of copy | GB/s | note |", "|---|---|---:|---:|---|"]
        bars.details += [f"| {k} | {r.get('shape')} | {f(fnum(r.get('pct_copy')))} | {f(fnum(r.get('gbps')), 0)} | "
                         f"{r.get('note') or ''} |" for k, r in below]


def f32_bars(bars, train, torch_rows):
    for prec in ("fp32", "tf32"):
        for model, batch in TRAIN_CONFIGS:
            bar = f"train step {prec} vs torch eager {prec}"
            case = f"{model} b{batch}"
            thr = f">= {EAGER_F32_BAR:.1f}x"
            ours, _, which = best_ours(train, model, batch, prec)
            t = torch_train(torch_rows, model, batch, prec, "eager")
            theirs = fnum(t.get("img_per_s")) if t else math.nan
            if not ok(ours):
                bars.missing(bar, case, thr, "train.csv missing" if train is None else f"no {prec} row in train.csv")
            elif not ok(theirs):
                bars.missing(bar, case, thr, why_not(t, f"torch eager {prec}"))
            else:
                bars.add(bar, case, f"{f(ours)} img/s ({which})", f"{f(theirs)} img/s", f"{ours / theirs:.2f}x", thr,
                         verdict(ours / theirs >= EAGER_F32_BAR))


def accuracy_bars(bars, acc, out_dir):
    runs = []
    for r in acc or []:
        run_dir = r.get("run_dir") or ""
        if run_dir and not os.path.isabs(run_dir):
            run_dir = os.path.join(out_dir, run_dir)
        top1, epochs = last_epoch(run_dir)
        runs.append(dict(r, top1=top1, epochs_done=epochs))
    if runs:
        bars.details += ["", "### accuracy runs (test top-1 of the last epoch)", "",
                         "| run | dataset | model | precision | seed | epochs done / asked | rc | s | test top-1 |",
                         "|---|---|---|---|---:|---:|---:|---:|---:|"]
        bars.details += [f"| {r.get('run')} | {r.get('dataset')} | {r.get('model')} | {r.get('precision')} | "
                         f"{r.get('seed')} | {r['epochs_done']} / {r.get('epochs')} | {r.get('rc')} | "
                         f"{r.get('seconds')} | {f(r['top1'], 2)} |" for r in runs]

    def complete(r):
        return str(r.get("rc")) == "0" and ok(r["top1"]) and str(r["epochs_done"]) == str(r.get("epochs"))

    # Fashion-MNIST, bf16, the default recipe.
    bar, thr = "accuracy: Fashion-MNIST bf16, default recipe", f">= {FMNIST_BAR:.1f}%"
    fm = [r for r in runs if r.get("run") == "fmnist"]
    if not fm:
        bars.missing(bar, "fmnist-tiny, 50 epochs", thr, "no run (see the step table)")
    else:
        r = fm[-1]
        case = f"{r.get('model')}, {r.get('epochs')} epochs"
        if r.get("rc") == "skipped":
            bars.missing(bar, case, thr, r.get("note") or "skipped")
        elif not complete(r):
            bars.missing(bar, case, thr, f"rc {r.get('rc')}, {r['epochs_done']} of {r.get('epochs')} epochs")
        else:
            bars.add(bar, case, f"{f(r['top1'], 2)}%", "-", "-", thr, verdict(r["top1"] >= FMNIST_BAR))

    # CIFAR subset: bf16 mean within a point of fp32 mean over 3 seeds.
    bar, thr = "accuracy: CIFAR subset bf16 vs fp32 (mean of 3 seeds)", f"abs(bf16 - fp32) <= {CIFAR_POINTS:.1f} point"
    case = "cifar-tiny, 20 epochs"
    cif = {p: [r for r in runs if r.get("run") == "cifar" and r.get("precision") == p] for p in ("bf16", "fp32")}
    if not cif["bf16"] and not cif["fp32"]:
        skipped = [r for r in runs if r.get("run") == "cifar"]
        bars.missing(bar, case, thr, "no runs" + (f": {skipped[0].get('note')}" if skipped else ""))
    else:
        good = {p: [r for r in rs if complete(r)] for p, rs in cif.items()}
        if any(len(good[p]) < CIFAR_SEEDS for p in good):
            notes = sorted({r.get("note") for rs in cif.values() for r in rs if r.get("note")})
            bars.missing(bar, case, thr, ", ".join(f"{p} {len(good[p])} of {CIFAR_SEEDS} seeds complete" for p in good)
                         + "".join(f"; {n}" for n in notes))
        else:
            m = {p: sum(r["top1"] for r in good[p]) / len(good[p]) for p in good}
            d = m["bf16"] - m["fp32"]
            bars.add(bar, case, f"bf16 {f(m['bf16'], 2)}%", f"fp32 {f(m['fp32'], 2)}%", f"{d:+.2f} points", thr,
                     verdict(abs(d) <= CIFAR_POINTS))


def check_bars(bars, checks):
    by = {r.get("check"): r for r in checks or []}
    r = by.get("determinism")
    bar, case = "two identical bf16 runs: bitwise-equal checkpoints", "cmp last.safetensors"
    if r is None or r.get("rc") in ("", "skipped", None):
        bars.missing(bar, case, "equal", (r or {}).get("summary") or "not run")
    else:
        bars.add(bar, case, r.get("summary") or "", "-", "-", "equal", verdict(str(r.get("rc")) == "0"))
    r = by.get("cuda_tests")
    bar = "[cuda] tests"
    if r is None or r.get("rc") in ("", "skipped", None):
        bars.missing(bar, "vit_cuda_tests", "all pass", (r or {}).get("summary") or "not run")
    else:
        failed = fnum(r.get("failed"))
        summary = r.get("summary") or "no summary line"
        passed = str(r.get("rc")) == "0" and (failed == 0 or "All tests passed" in summary)
        bars.add(bar, "vit_cuda_tests", summary, "-", "-", "all pass", verdict(passed))
    for tool in SANITIZERS:
        r = by.get(tool)
        bar = f"compute-sanitizer {tool}"
        if r is None or r.get("rc") in ("", "skipped", None):
            bars.missing(bar, "vit_cuda_tests", "0 errors", (r or {}).get("summary") or "not run")
            continue
        errors = fnum(r.get("errors"))
        if not ok(errors):
            bars.add(bar, "vit_cuda_tests", r.get("summary") or "no summary line", "-", "-", "0 errors",
                     f"FAIL (incomplete: no summary line, rc {r.get('rc')})")
        else:
            bars.add(bar, "vit_cuda_tests", r.get("summary") or f"{int(errors)} errors", "-", "-", "0 errors",
                     verdict(errors == 0))


# ---- the extras: bars of earlier issues ------------------------------------------------------------
def skipped(row):
    return row is None or row.get("rc") in ("", "skipped", None)


def trainer_stats(rows, batch):
    """(img/s, data wait %, windows) over the step rows after the first logging window (warm-up):
    images / wall time from the first row to the last; data wait weighted by each window's length."""
    steps = [r for r in rows or [] if r.get("kind") == "step"]
    if len(steps) < 2 or "data_wait" not in steps[0]:
        return None
    s0, t0 = fnum(steps[0].get("step")), fnum(steps[0].get("time_s"))
    tp, wait = t0, 0.0
    for r in steps[1:]:
        t = fnum(r.get("time_s"))
        wait += fnum(r.get("data_wait")) * (t - tp)
        tp = t
    s1 = fnum(steps[-1].get("step"))
    if not (ok(s0) and ok(s1) and ok(t0) and ok(tp) and tp > t0 and ok(wait)):
        return None
    return (s1 - s0) * batch / (tp - t0), 100.0 * wait / (tp - t0), len(steps) - 1


def bench_row(rows, model, batch, prec):
    for r in reversed(rows or []):
        if (r.get("model"), str(r.get("batch")), r.get("precision")) == (model, str(batch), prec) \
                and ok(fnum(r.get("img_per_s"))) and fnum(r.get("img_per_s")) > 0:
            return fnum(r["img_per_s"])
    return math.nan


def train_bar(bars, out_dir, train, checks, prec):
    by = {r.get("check"): r for r in checks or []}
    row = by.get("train_bar")
    rbar = "issue 14: trainer vs bare step, same run"
    wbar = "issue 14: trainer data wait"
    case = f"{BAR_MODEL} b{BAR_BATCH} {prec}"
    rthr, wthr = f">= {TRAINER_BAR_PCT:.0f}%", f"<= {DATA_WAIT_BAR_PCT:.0f}%"
    if skipped(row):
        why = (row or {}).get("summary") or "not run"
        bars.missing(rbar, case, rthr, why)
        bars.missing(wbar, case, wthr, why)
        return
    rc = str(row.get("rc"))
    stats = trainer_stats(read_rows(os.path.join(out_dir, "train_bar", "metrics.csv")), BAR_BATCH)
    bar_csv = read_rows(os.path.join(out_dir, "train_bar.csv"))
    bare, src = bench_row(train, BAR_MODEL, BAR_BATCH, prec), "train.csv"
    if not ok(bare):
        bare, src = bench_row(bar_csv, BAR_MODEL, BAR_BATCH, prec), "train_bar.csv"
    graph = bench_row(train, BAR_MODEL, BAR_BATCH, prec + "-graph")
    if not ok(graph):
        graph = bench_row(bar_csv, BAR_MODEL, BAR_BATCH, prec + "-graph")
    if stats is None:
        why = f"trainer rc {rc}: under 2 logging windows in train_bar/metrics.csv"
        bars.missing(rbar, case, rthr, why)
        bars.missing(wbar, case, wthr, why)
        return
    rate, wait, windows = stats
    fail_rc = None if rc == "0" else f"FAIL (trainer rc {rc})"
    if not ok(bare):
        bars.add(rbar, case, f"{f(rate)} img/s", "-", "-", rthr,
                 f"FAIL (not measured: no {BAR_MODEL}/{BAR_BATCH}/{prec} row in train.csv or train_bar.csv)")
    else:
        pct = 100.0 * rate / bare
        bars.add(rbar, case, f"{f(rate)} img/s", f"{f(bare)} img/s (bench_cuda_train_step, {src})", f"{pct:.1f}%",
                 rthr, fail_rc or verdict(pct >= TRAINER_BAR_PCT))
    bars.add(wbar, case, f"{wait:.3f}%", "-", "-", wthr, fail_rc or verdict(wait <= DATA_WAIT_BAR_PCT))
    steps = read_rows(os.path.join(out_dir, "train_bar", "metrics.csv"))
    steps = [r for r in steps if r.get("kind") == "step"]
    span = fnum(steps[-1].get("step")) - fnum(steps[0].get("step"))
    bars.details.append(f"- issue 14: {row.get('summary') or ''}; {windows} logging windows ({span:.0f} steps) "
                        "after the first (warm-up)" + (f"; the bare step as a CUDA graph ({prec}-graph): {f(graph)} img/s, trainer / "
                                   f"that = {100.0 * rate / graph:.1f}%" if ok(graph) else ""))


def dist_bars(bars, checks):
    by = {r.get("check"): r for r in checks or []}
    r = by.get("dist_nccl")
    bar, case = "issue 15: NCCL communicator + reducer, one rank", "vit_dist_gpu_tests"
    if skipped(r):
        bars.missing(bar, case, "all pass", (r or {}).get("summary") or "not run")
    else:
        bars.add(bar, case, r.get("summary") or "", "-", "-", "all pass", verdict(str(r.get("rc")) == "0"))
    bar = "issue 15: 2 ranks sharing the GPU (MPI staged) vs 1 process"
    case, thr = "batch 64 x 2 vs 128, 5 SGD steps", f"<= {DIST_RTOL:g} relative"
    runs = [by.get(c) for c in ("dist_one_rank", "dist_two_ranks_staged")]
    cmp_row = by.get("dist_compare")
    first_skip = next((x for x in runs + [cmp_row] if skipped(x)), "none")
    failed = [(n, x) for n, x in zip(("one process", "two ranks"), runs) if not skipped(x) and str(x.get("rc")) != "0"]
    if failed:
        n, x = failed[0]
        bars.add(bar, case, (cmp_row or {}).get("summary") or "-", "-", "-", thr, f"FAIL ({n}: rc {x.get('rc')})")
        return
    if first_skip != "none":
        bars.missing(bar, case, thr, (first_skip or {}).get("summary") or "not run")
        return
    summary = cmp_row.get("summary") or ""
    worst = math.nan
    words = summary.split()
    if "difference" in words and words.index("difference") + 1 < len(words):
        worst = fnum(words[words.index("difference") + 1])
    if not ok(worst):
        bars.add(bar, case, summary or "-", "-", "-", thr, f"FAIL (no difference printed, rc {cmp_row.get('rc')})")
        return
    bars.add(bar, case, f"{worst:.3g}", "-", "-", thr, verdict(worst <= DIST_RTOL and str(cmp_row.get("rc")) == "0"))


# ---- main ---------------------------------------------------------------------------------------------
def build(out_dir, bar_precision="fp32"):
    kernels = read_rows(os.path.join(out_dir, "kernels.csv"))
    train = read_rows(os.path.join(out_dir, "train.csv"))
    torch_rows = read_sections(os.path.join(out_dir, "torch.csv"))
    acc = read_rows(os.path.join(out_dir, "accuracy.csv"))
    checks = read_rows(os.path.join(out_dir, "checks.csv"))
    bars = Bars()
    train_bars(bars, train, torch_rows)
    attention_bars(bars, kernels, torch_rows)
    bandwidth_bars(bars, kernels)
    f32_bars(bars, train, torch_rows)
    accuracy_bars(bars, acc, out_dir)
    check_bars(bars, checks)
    extras = Bars()
    train_bar(extras, out_dir, train, checks, bar_precision)
    dist_bars(extras, checks)
    return bars, extras


def table(rows):
    return ["| bar | case | ours | reference | ratio | threshold | verdict |", "|---|---|---|---|---|---|---|"] + \
        ["| " + " | ".join(str(x).replace("|", "/") for x in r) + " |" for r in rows]


def render(bars, extras):
    c = bars.counts()
    lines = ["## Issue 18 bars (verdicts computed from this run's CSVs by bars.py)", "",
             f"**{c['PASS']} PASS, {c['FAIL']} FAIL** (a bar not measured is a FAIL); {c['measured']} rows "
             f"measured without a bar" + (f", {c['not measured']} such rows not measured" if c["not measured"] else "")
             + ". "
             "Ratios: ours / theirs for speed (> 1: ours faster; attention: their time / ours), "
             "ours / theirs for memory.", ""] + table(bars.rows) + bars.details
    e = extras.counts()
    lines += ["", "## Extras: bars of issues 14 and 15 (run only where their whole cap fit; verdicts by bars.py)", "",
              f"**{e['PASS']} PASS, {e['FAIL']} FAIL** (not measured is a FAIL: the reason says why, e.g. the "
              "budget left no room). Ratio: the trainer's images/s over the bare step's.", ""] + table(extras.rows)
    if extras.details:
        lines += [""] + extras.details
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="run_all.sh's OUT folder")
    ap.add_argument("--csv", help="also write the bar rows here (issue 18's, then the extras')")
    ap.add_argument("--bar-precision", default="fp32",
                    help="the bench_cuda_train_step precision issue 14's trainer bar compares against")
    args = ap.parse_args(argv)
    bars, extras = build(args.out, args.bar_precision)
    sys.stdout.write(render(bars, extras))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["bar", "case", "ours", "reference", "ratio", "threshold", "verdict"])
            w.writerows(bars.rows + extras.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
