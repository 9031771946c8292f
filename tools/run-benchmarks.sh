#!/usr/bin/env bash
# Quick start #1: build seqk with its benchmarks, run them, and summarise.
#
#   tools/run-benchmarks.sh [extra Google Benchmark flags]
#   e.g. tools/run-benchmarks.sh --benchmark_filter=lstm --benchmark_repetitions=1
#
# Results go to results/<host>-<timestamp>/: one JSON file per benchmark
# binary (and torch_recurrent.json where PyTorch with CUDA is there) and summary.md. Extra flags come after the defaults, so they win.
# Environment: SEQK_BUILD_DIR (default build), SEQK_RESULTS_DIR (default
# results), SEQK_NUM_THREADS (threads for seqk and the oneDNN peer).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build_dir="${SEQK_BUILD_DIR:-build}"

if [[ -x tools/setup.sh ]]; then
  tools/setup.sh
fi

if [[ -f "$build_dir/build.ninja" ]]; then
  meson configure "$build_dir" -Dbenchmarks=true
else
  meson setup "$build_dir" -Dbenchmarks=true
fi
ninja -C "$build_dir"

out="${SEQK_RESULTS_DIR:-results}/$(hostname)-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# 5 repetitions (3 for attention, whose longest rows take seconds each):
# the default suite takes about 18 minutes on 2 vCPUs, 70 s of it the
# lavapipe (CPU Vulkan) rows, which run once each.
# Interleaving them at random spreads a burst of load from other processes
# over several rows' repetitions instead of spoiling every repetition of one.
binaries=(bench_recurrent bench_gemm bench_scan bench_attention bench_decode)
repetitions=(5 5 5 3 5)
for i in "${!binaries[@]}"; do
  name="${binaries[$i]}"
  echo "== [$((i + 1))/${#binaries[@]}] $name -> $out/$name.json" >&2
  "$build_dir/bench/$name" \
    --benchmark_out="$out/$name.json" \
    --benchmark_out_format=json \
    --benchmark_repetitions="${repetitions[$i]}" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_report_aggregates_only=false \
    --benchmark_display_aggregates_only=true \
    "$@"
done

# The GPU peer of the Vulkan rows: PyTorch's LSTM (cuDNN), where python3 has
# torch with a CUDA device; optional, so its absence only leaves its columns empty.
if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "== PyTorch/cuDNN LSTM peer -> $out/torch_recurrent.json" >&2
  python3 bench/torch_recurrent.py "$out/torch_recurrent.json" || echo "the PyTorch peer failed: its rows are missing" >&2
else
  echo "== PyTorch/cuDNN LSTM peer skipped: python3 has no torch with a CUDA device" >&2
fi

# PyTorch's attention on the CPU (and CUDA), beside bench_attention's rows,
# where python3 has torch (Debian: python3-torch, with libopenblas0-pthread
# for its matrix products); optional like the cuDNN peer.
if python3 -c 'import torch' 2>/dev/null; then
  echo "== PyTorch attention peer -> $out/torch_attention.json" >&2
  python3 bench/torch_attention.py "$out/torch_attention.json" || echo "the PyTorch attention peer failed: its rows are missing" >&2
else
  echo "== PyTorch attention peer skipped: python3 has no torch" >&2
fi

python3 reports/summarize.py "$out"/*.json > "$out/summary.md"
echo "summary: $out/summary.md"
