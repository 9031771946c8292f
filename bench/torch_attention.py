#!/usr/bin/env python3
"""PyTorch's scaled dot-product attention at bench_attention's shapes, fp32:
the optional peer of seqk's attention rows.

Usage: torch_attention.py OUT.json [--repetitions N] [--min-time S] [--max-length N]

Writes Google Benchmark JSON with rows named like bench_attention's
(attn_fwd/torch/H:8/dh:64/causal:1/n:4096, attn_bwd/...; torch-cuda for a
CUDA device), and the same host name and CPU model in its context, so
reports/summarize.py puts them beside seqk's rows of the same machine.

With torch >= 2.0 the rows run torch.nn.functional.scaled_dot_product_attention
(its fused CPU/GPU kernels); older versions (Debian 12 has 1.13) have none,
and the rows run the textbook form, softmax(Q·Kᵀ·scale + mask)·V, which
materialises the n×n scores like seqk's naive form: the context's
torch_attention says which. The backward row times the backward alone, from
one forward kept for it, as bench_attention does. GFLOP/s counts only the
unmasked work, with bench_attention's convention (4·dh FLOPs per visible
query-key pair forward, 10·dh backward). CPU rows use SEQK_NUM_THREADS threads
(default: all); CUDA rows time with CUDA events, TF32 off.

Debian's torch does its CPU matrix products through whichever libblas.so.3
the system provides: the reference BLAS (a few GFLOP/s) unless OpenBLAS is
installed (apt-get install python3-torch libopenblas0-pthread). The
context's blas names the library the products ran on.
"""

import argparse
import json
import math
import os
import sys
import time

from peer_context import peer_context

HEADS, HEAD_SIZE = 8, 64
LENGTHS = [128 << i for i in range(8)]  # 128 .. 16384, as bench_attention
# The textbook form holds several heads·n² float tensors (scores, mask,
# probabilities, their gradients): 16384 would need tens of GiB.
TEXTBOOK_MAX_LENGTH = 4096


def loaded_blas():
    """File name of the BLAS library mapped into this process, if any."""
    try:
        with open("/proc/self/maps") as f:
            names = {line.split()[-1] for line in f if "blas" in line.rsplit("/", 1)[-1]}
    except OSError:
        return "unknown"
    return ", ".join(sorted(os.path.basename(n) for n in names)) or "none loaded"


def attention_flops(n, causal, backward):
    pairs = n * (n + 1) / 2 if causal else n * n
    return (10.0 if backward else 4.0) * HEAD_SIZE * HEADS * pairs


def make_attention(torch):
    """(name, function(q, k, v, causal)) of the form this torch has."""
    functional = torch.nn.functional
    if hasattr(functional, "scaled_dot_product_attention"):
        return "scaled_dot_product_attention", \
            lambda q, k, v, causal: functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def textbook(q, k, v, causal):
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if causal:
            n = q.shape[-2]
            hidden = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(hidden, float("-inf"))
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    return "textbook softmax(Q·Kᵀ)·V", textbook


class Timer:
    """Wall time on the CPU; CUDA events (GPU time) on a CUDA device."""

    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.type == "cuda"

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def time_ms(self, step, iterations):
        self.sync()
        if self.cuda:
            begin = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(iterations):
                step()
            end.record()
            self.sync()
            return begin.elapsed_time(end) / iterations
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        return (time.perf_counter() - start) * 1e3 / iterations


def measure(args, torch, device, impl, attention, rows):
    timer = Timer(torch, device)
    max_length = args.max_length if impl == "scaled_dot_product_attention" else min(args.max_length,
                                                                                      TEXTBOOK_MAX_LENGTH)
    for n in [n for n in LENGTHS if n <= max_length]:
        generator = torch.Generator().manual_seed(n)
        q, k, v, dout = (torch.rand(1, HEADS, n, HEAD_SIZE, generator=generator).mul_(2).sub_(1).to(device)
                         for _ in range(4))
        for backward in (False, True):
            for causal in (False, True):
                name = (f"attn_{'bwd' if backward else 'fwd'}/{impl}/H:{HEADS}/dh:{HEAD_SIZE}/"
                        f"causal:{int(causal)}/n:{n}")
                if backward:
                    q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)
                    out = attention(q, k, v, causal)

                    def step():
                        q.grad = k.grad = v.grad = None
                        out.backward(dout, retain_graph=True)
                else:
                    q.requires_grad_(False), k.requires_grad_(False), v.requires_grad_(False)

                    def step():
                        with torch.no_grad():
                            attention(q, k, v, causal)

                step()  # warm-up: kernels, allocator
                first_ms = timer.time_ms(step, 1)
                iterations = max(1, int(args.min_time * 1e3 / max(first_ms, 1e-3)))
                for repetition in range(args.repetitions):
                    ms = timer.time_ms(step, iterations)
                    rows.append({
                        "name": name, "run_name": name, "run_type": "iteration",
                        "repetitions": args.repetitions, "repetition_index": repetition,
                        "iterations": iterations, "real_time": ms, "cpu_time": ms, "time_unit": "ms",
                        "GFLOP/s": attention_flops(n, causal, backward) / (ms * 1e-3) * 1e-9,
                    })
                print(f"{name}: {ms:.3f} ms ({iterations} iterations)", file=sys.stderr)
                if backward:
                    del out


def run(args):
    import torch

    threads = int(os.environ.get("SEQK_NUM_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    impl_name, attention = make_attention(torch)
    context = peer_context("torch_attention.py", torch)
    context.update({
        "torch_attention": impl_name,
        "threads": str(threads),
    })
    rows = []
    measure(args, torch, torch.device("cpu"), "torch", attention, rows)
    context["blas"] = loaded_blas()
    if torch.cuda.is_available():
        context["cuda_device"] = torch.cuda.get_device_name(0)
        measure(args, torch, torch.device("cuda"), "torch-cuda", attention, rows)
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f, indent=1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--max-length", type=int, default=LENGTHS[-1])
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
