#!/usr/bin/env python3
"""Cost model of data-parallel ViT-B/16 training: gradient allreduce against compute.

Nothing here is measured. Every number is an assumption stated below or arithmetic
on them; docs/distributed.md explains the model and prints these tables. Run:

    python3 benchmarks/dist_cost_model.py            # the tables of docs/distributed.md
    python3 benchmarks/dist_cost_model.py --tflops 200 --batch 64   # other assumptions

Model
  * Gradient bytes per step S = parameters x bytes per element (fp32: 4, bf16: 2).
  * Ring allreduce of b bytes over n ranks (NCCL's formula, with its "bus bandwidth"):
        T = 2(n-1)/n * b / busbw + 2(n-1) * alpha
  * Hierarchical (multi-node, G GPUs per node, M nodes, one NIC per GPU): reduce-scatter
    inside the node over NVLink, allreduce of each GPU's 1/G shard across the M nodes
    (G rings in parallel, one per NIC), all-gather inside the node:
        T = 2 (G-1)/G * b / busbw_nvl + 2(G-1) alpha_nvl
          + 2 (M-1)/M * (b/G) / busbw_ib + 2(M-1) alpha_ib
  * DDP buckets: gradients grouped into ~25 MB buckets in reverse parameter order. Backward
    produces gradient bytes at a uniform rate (12 identical blocks hold 99% of the
    parameters), so a bucket is ready when backward has produced its last byte. Buckets are
    reduced one after another on one communication stream, each as soon as it is ready and
    the previous one is done. Exposed communication = end of the last bucket - end of
    backward. Closed form for K equal buckets of c = T/K each:
        exposed = max(c, T - T_bwd (K-1)/K)
  * Compute per GPU per step: FLOPs = 3 x forward (backward = 2 x forward), forward =
    2 x params x tokens (every weight is one multiply-add per token) + attention
    (QK^T and AV: 2 x 2 x tokens^2 x width per layer), at an assumed sustained throughput.
    Backward is 2/3 of the compute time.
  * Scaling efficiency (weak scaling, fixed batch per GPU) = T_compute / (T_compute + exposed).
"""
import argparse

# --- ViT-B/16 at 224x224, 1000 classes (timm vit_base_patch16_224) -------------------------
PARAMS = 86_567_656          # 86.6 M
TOKENS = 197                 # 14 x 14 patches + cls
WIDTH, DEPTH = 768, 12

# --- assumptions (all of them) --------------------------------------------------------------
A = dict(
    batch=128,               # images per GPU per step
    tflops=400.0,            # sustained bf16 TFLOP/s of forward+backward per GPU (H100/H200, assumed)
    bucket_mb=25.0,          # DDP bucket_cap_mb (bytes, whatever the dtype)
    nvl_busbw=450.0,         # GB/s, NCCL allreduce bus bandwidth over NVLink inside a node (assumed)
    ib_busbw=45.0,           # GB/s per GPU over its own 400 Gb/s InfiniBand NIC (50 GB/s raw, assumed 90%)
    alpha_nvl_us=3.0,        # latency per ring step over NVLink (assumed)
    alpha_ib_us=8.0,         # latency per ring step across nodes (assumed)
    gpus_per_node=8,
)


def forward_flops_per_image():
    dense = 2 * PARAMS * TOKENS                       # every weight: one multiply-add per token
    attention = DEPTH * 2 * 2 * TOKENS**2 * WIDTH     # QK^T and AV per layer
    return dense, attention


def ring(bytes_, n, busbw_gbs, alpha_us):
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * bytes_ / (busbw_gbs * 1e9) + 2 * (n - 1) * alpha_us * 1e-6


def hierarchical(bytes_, nodes, a):
    g = a["gpus_per_node"]
    # reduce-scatter + all-gather inside the node = one NVLink ring allreduce of the whole buffer
    intra = ring(bytes_, g, a["nvl_busbw"], a["alpha_nvl_us"])
    inter = ring(bytes_ / g, nodes, a["ib_busbw"], a["alpha_ib_us"])
    return intra + inter


def buckets(total_bytes, cap_bytes):
    sizes, left = [], total_bytes
    while left > 0:
        sizes.append(min(cap_bytes, left))
        left -= sizes[-1]
    return sizes  # in the order backward fills them: the last one holds the first parameters


def exposed_comm(sizes, allreduce_of, t_bwd):
    """Simulates the bucket pipeline: bucket i ready when backward produced its bytes."""
    total, done, free_at = sum(sizes), 0.0, 0.0
    comm = 0.0
    for s in sizes:
        done += s
        ready = t_bwd * done / total
        t = allreduce_of(s)
        comm += t
        free_at = max(free_at, ready) + t
    return comm, max(0.0, free_at - t_bwd)


def row(label, n_gpus, dtype_bytes, allreduce_of, a, t_compute):
    s = PARAMS * dtype_bytes
    sizes = buckets(s, a["bucket_mb"] * 1e6)
    t_bwd = t_compute * 2 / 3
    t_ar, exposed = exposed_comm(sizes, allreduce_of, t_bwd)
    eff = t_compute / (t_compute + exposed)
    return (f"| {label} | {n_gpus} | {'fp32' if dtype_bytes == 4 else 'bf16'} | {s / 1e6:.1f} MB"
            f" ({len(sizes)}) | {t_ar * 1e3:.2f} | {t_compute * 1e3:.1f} | {t_ar / t_bwd:.2f}"
            f" | {exposed * 1e3:.2f} | {eff * 100:.1f}% |")


HEADER = ("| setup | GPUs | grads | bytes/step (buckets) | allreduce ms | compute ms"
          " | allreduce / backward | exposed ms | efficiency |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|---:|")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k, v in A.items():
        p.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    a = vars(p.parse_args())

    dense, attn = forward_flops_per_image()
    fwd = dense + attn
    step_flops = 3 * fwd * a["batch"]
    t_compute = step_flops / (a["tflops"] * 1e12)
    print("Assumptions (none measured):")
    for k, v in a.items():
        print(f"  {k} = {v}")
    print(f"\nViT-B/16: {PARAMS / 1e6:.1f} M parameters; fp32 gradients {PARAMS * 4 / 1e6:.1f} MB,"
          f" bf16 {PARAMS * 2 / 1e6:.1f} MB per step")
    print(f"Forward per image: dense 2 x {PARAMS / 1e6:.1f} M x {TOKENS} = {dense / 1e9:.2f} GFLOP,"
          f" attention {DEPTH} x 4 x {TOKENS}^2 x {WIDTH} = {attn / 1e9:.2f} GFLOP,"
          f" total {fwd / 1e9:.2f} GFLOP")
    print(f"Step per GPU: 3 x {fwd / 1e9:.2f} GFLOP x {a['batch']} = {step_flops / 1e12:.2f} TFLOP"
          f" -> {t_compute * 1e3:.1f} ms at {a['tflops']:.0f} TFLOP/s"
          f" (backward {t_compute * 2 / 3 * 1e3:.1f} ms); {a['batch'] / t_compute:.0f} img/s per GPU")

    print("\n(a) one node, NVLink, ring allreduce\n")
    print(HEADER)
    for n in (2, 4, 8):
        for d in (4, 2):
            ar = lambda b, n=n: ring(b, n, a["nvl_busbw"], a["alpha_nvl_us"])
            print(row("NVLink", n, d, ar, a, t_compute))

    print(f"\n(b) {a['gpus_per_node']} GPUs per node, one {a['ib_busbw']:.0f} GB/s NIC per GPU,"
          " hierarchical allreduce\n")
    print(HEADER)
    for nodes in (2, 4, 8, 16, 32, 64):
        for d in (4, 2):
            ar = lambda b, m=nodes: hierarchical(b, m, a)
            print(row(f"{nodes} nodes", nodes * a["gpus_per_node"], d, ar, a, t_compute))

    print("\n(b') for contrast: one flat ring whose every node crossing goes through a single"
          f" {a['ib_busbw']:.0f} GB/s link\n    (e.g. a plain MPI allreduce over one HCA per node;"
          " NCCL's rail-aware rings use all G NICs, as (b) does)\n")
    print(HEADER)
    for nodes in (2, 8, 64):
        for d in (4, 2):
            n = nodes * a["gpus_per_node"]
            ar = lambda b, n=n: ring(b, n, a["ib_busbw"], a["alpha_ib_us"])
            print(row(f"{nodes} nodes, one link", n, d, ar, a, t_compute))

    print("\nSensitivity: 64 nodes (512 GPUs), hierarchical, smaller batch per GPU"
          " (compute shrinks, bytes do not)\n")
    print(HEADER)
    for batch in (128, 64, 32):
        t_c = 3 * fwd * batch / (a["tflops"] * 1e12)
        for d in (4, 2):
            ar = lambda b: hierarchical(b, 64, a)
            print(row(f"64 nodes, batch {batch}", 64 * a["gpus_per_node"], d, ar, a, t_c))

    # The latency term alone, to show where it starts to matter.
    print("\nLatency term per fp32 step (buckets x 2(n-1) alpha), hierarchical:")
    k = len(buckets(PARAMS * 4, a["bucket_mb"] * 1e6))
    for nodes in (2, 8, 64):
        g = a["gpus_per_node"]
        lat = k * (2 * (g - 1) * a["alpha_nvl_us"] + 2 * (nodes - 1) * a["alpha_ib_us"]) * 1e-3
        print(f"  {nodes} nodes: {k} buckets -> {lat:.2f} ms")


if __name__ == "__main__":
    main()
