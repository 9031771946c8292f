// Small helpers shared by the benchmark binaries: random data, loop timing
// and the throughput counters every row reports.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <random>
#include <vector>

namespace seqk_bench {

// Uniform values in [-bound, bound], reproducible from `seed`.
inline std::vector<float> uniform_random(size_t count, float bound, uint32_t seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> distribution(-bound, bound);
  std::vector<float> values(count);
  for (float& v : values) v = distribution(generator);
  return values;
}

// Runs `body` once per benchmark iteration; returns the loop's wall seconds.
template <typename Body>
double time_loop(benchmark::State& state, Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// "GFLOP/s" and "pct_peak" (of `peak_gflops`). Computed here from the
// measured seconds rather than with benchmark's rate counters, so the
// number is wall-clock based whichever time mode a row uses.
inline void report_throughput(benchmark::State& state, double flops_per_iteration, double seconds,
                              double peak_gflops) {
  const double gflops = flops_per_iteration * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["pct_peak"] = 100 * gflops / peak_gflops;
}

// Wraps a benchmark function so an exception (say seqk::Error rejecting a
// shape) skips that row with its message instead of ending the whole run.
template <typename Bench>
auto skipping_errors(Bench bench) {
  return [bench](benchmark::State& state, auto... args) {
    try {
      bench(state, args...);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  };
}

}  // namespace seqk_bench
