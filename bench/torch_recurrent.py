#!/usr/bin/env python3
"""PyTorch's LSTM, GRU and tanh RNN (cuDNN on a CUDA GPU) at seqk's standard
shapes, fp32.

Usage: torch_recurrent.py OUT.json [--repetitions N] [--min-time S]

The GPU peer of bench_recurrent's Vulkan rows. Writes Google Benchmark JSON with
rows named like bench_recurrent's (lstm_fwd/cudnn/B:../D:../H:../T:.., gru_..,
rnn_tanh_..), and the
same host name and CPU model in its context, so reports/summarize.py puts
them beside seqk's rows of the same machine. The shapes are read from
bench/recurrent_shapes.h, so the two cannot drift apart.

Each repetition times enough iterations for --min-time seconds: the row's
time is the GPU time between CUDA events around the loop, per iteration
(the counterpart of seqk's timestamp queries); wall_ms adds the launch
overheads and the final synchronisation, as a caller sees them. TF32 is off:
both sides compute in plain fp32.
"""

import argparse
import json
import os
import re
import sys
import time

from peer_context import peer_context

SHAPES_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recurrent_shapes.h")


def standard_shapes():
    """(B, D, H, T) tuples of kStandardShapes in bench/recurrent_shapes.h."""
    with open(SHAPES_HEADER) as f:
        text = f.read()
    body = text[text.index("kStandardShapes[]"):]
    body = body[:body.index("};")]
    return [tuple(int(v) for v in m.groups()) for m in re.finditer(r"\{(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\}", body)]


# Cell name (as seqk names it) -> (gates per unit, module factory).
CELLS = {
    "lstm": (4, lambda torch, d, h: torch.nn.LSTM(d, h)),
    "gru": (3, lambda torch, d, h: torch.nn.GRU(d, h)),
    "rnn_tanh": (1, lambda torch, d, h: torch.nn.RNN(d, h, nonlinearity="tanh")),
}


def recurrent_flops(gates, b, d, h, t, backward):
    forward = 2.0 * t * b * gates * h * (d + h)
    return 3 * forward if backward else forward


def run(args):
    import torch

    if not torch.cuda.is_available():
        print("torch_recurrent.py: no CUDA device; nothing measured", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    context = peer_context("torch_recurrent.py", torch)
    context.update({
        "cudnn_version": str(torch.backends.cudnn.version()),
        "cuda_device": torch.cuda.get_device_name(0),
    })
    rows = []
    for cell, (gates, make) in CELLS.items():
        for b, d, h, t in standard_shapes():
            torch.manual_seed(0)
            layer = make(torch, d, h).to(device)
            x = torch.rand(t, b, d, device=device) * 2 - 1
            dy = torch.rand(t, b, h, device=device) * 2 - 1
            for backward in (False, True):
                name = f"{cell}_{'fwdbwd' if backward else 'fwd'}/cudnn/B:{b}/D:{d}/H:{h}/T:{t}"

                def step():
                    if backward:
                        layer.zero_grad(set_to_none=False)
                        xg = x.detach().requires_grad_()
                        y, _ = layer(xg)
                        y.backward(dy)
                    else:
                        with torch.no_grad():
                            layer(x)

                for _ in range(3):  # warm-up: cuDNN plans, allocator
                    step()
                torch.cuda.synchronize()
                # Iterations for about min_time seconds, from one timed step.
                start = time.perf_counter()
                step()
                torch.cuda.synchronize()
                iterations = max(1, int(args.min_time / max(time.perf_counter() - start, 1e-6)))
                for repetition in range(args.repetitions):
                    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    wall_start = time.perf_counter()
                    begin.record()
                    for _ in range(iterations):
                        step()
                    end.record()
                    torch.cuda.synchronize()
                    wall_ms = (time.perf_counter() - wall_start) * 1e3 / iterations
                    gpu_ms = begin.elapsed_time(end) / iterations
                    rows.append({
                        "name": name, "run_name": name, "run_type": "iteration",
                        "repetitions": args.repetitions, "repetition_index": repetition,
                        "iterations": iterations, "real_time": gpu_ms, "cpu_time": wall_ms, "time_unit": "ms",
                        "GFLOP/s": recurrent_flops(gates, b, d, h, t, backward) / (gpu_ms * 1e-3) * 1e-9,
                        "gpu_ms": gpu_ms, "wall_ms": wall_ms,
                    })
                print(f"{name}: {gpu_ms:.3f} ms GPU, {wall_ms:.3f} ms wall ({iterations} iterations)",
                      file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f, indent=1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.5)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
