// The linear-recurrence scan (claim S5's linear part): forward and backward
// over T from 256 to 1M steps, with Complexity fits, on 1 thread and on all,
// as GB/s and as a percentage of the STREAM triad bandwidth measured in the
// same run; and on every Vulkan GPU (GPU time from timestamps, GB/s).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "seqk/aligned.h"
#include "seqk/scan.h"
#include "seqk/thread_pool.h"

#if SEQK_HAVE_VULKAN
#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_scan.h"
#endif

namespace seqk_bench {
namespace {

constexpr int64_t kChannels = 64;  // B·D: one sequence of 64 channels
constexpr double kMinTimeSeconds = 0.2;

// STREAM triad a = b + s·c over 3 × 64 MiB on every thread of the global
// pool: 12 bytes moved per element (two loads, one store), best of a few
// passes. The scan rows are divided by it.
double triad_gbps() {
  static const double gbps = [] {
    const size_t n = size_t{16} << 20;
    seqk::AlignedVector a(n), b(n, 1.0f), c(n, 2.0f);
    seqk::ThreadPool& pool = seqk::ThreadPool::global();
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
      const auto start = std::chrono::steady_clock::now();
      pool.run([&](int t, int threads) {
        const size_t begin = n * t / threads, end = n * (t + 1) / threads;
        for (size_t i = begin; i < end; ++i) a[i] = b[i] + 3.0f * c[i];
      });
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best = std::max(best, 12.0 * n / seconds * 1e-9);
    }
    benchmark::DoNotOptimize(a.data());
    return best;
  }();
  return gbps;
}

// `streams` arrays of T·C floats pass through memory once per call at the
// least: the forward reads a and b and writes h (3), the backward reads a,
// h and dh and writes da and db (5).
void report_bandwidth(benchmark::State& state, int64_t steps, int streams, double seconds) {
  const double bytes = static_cast<double>(streams) * steps * kChannels * sizeof(float);
  const double gbps = bytes * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.counters["GB/s"] = gbps;
  state.counters["pct_triad"] = 100.0 * gbps / triad_gbps();
  state.SetComplexityN(steps);
}

void bench_scan(benchmark::State& state, bool backward, int threads) {
  const int64_t T = state.range(0);
  const std::vector<float> a = uniform_random(T * kChannels, 0.99f, 1), b = uniform_random(T * kChannels, 1.0f, 2);
  std::vector<float> h(T * kChannels), da(T * kChannels), db(T * kChannels);
  seqk::ThreadPool single(1);
  seqk::ThreadPool* pool = threads == 1 ? &single : &seqk::ThreadPool::global();
  const seqk::ConstView a_view(a.data(), {T, 1, kChannels});
  seqk::linear_scan({a_view, {b.data(), {T, 1, kChannels}}, {}, {h.data(), {T, 1, kChannels}}}, pool);
  auto run = [&] {
    if (backward) {
      seqk::linear_scan_backward({a_view, {}, {h.data(), {T, 1, kChannels}}, {b.data(), {T, 1, kChannels}},
                                  {da.data(), {T, 1, kChannels}}, {db.data(), {T, 1, kChannels}}, {}},
                                 pool);
    } else {
      seqk::linear_scan({a_view, {b.data(), {T, 1, kChannels}}, {}, {h.data(), {T, 1, kChannels}}}, pool);
    }
  };
  const double seconds = time_loop(state, run);
  report_bandwidth(state, T, backward ? 5 : 3, seconds);
}

#if SEQK_HAVE_VULKAN
// Forward or backward on one Vulkan device, data resident there; the row's
// time is the GPU time of the submit.
void bench_vulkan_scan(benchmark::State& state, int device_index, bool backward) {
  const int64_t T = state.range(0), n = T * kChannels;
  seqk::vk::Device& device = vulkan_device(device_index);
  seqk::vk::Buffer a(device, n), b(device, n), h(device, n), da(device, n), db(device, n);
  a.upload(uniform_random(n, 0.99f, 1));
  b.upload(uniform_random(n, 1.0f, 2));
  seqk::vk::Stream stream(device, /*timestamps=*/true);
  auto run = [&] {
    if (backward) {
      seqk::vk::linear_scan_backward(stream, a, nullptr, h, b, da, db, nullptr, T, kChannels);
    } else {
      seqk::vk::linear_scan(stream, a, b, h, T, kChannels);
    }
    stream.submit();
  };
  run();
  double seconds = 0;
  for (auto _ : state) {
    run();
    state.SetIterationTime(stream.last_gpu_ms() * 1e-3);
    seconds += stream.last_gpu_ms() * 1e-3;
  }
  const double bytes = (backward ? 5.0 : 3.0) * n * sizeof(float);
  state.counters["GB/s"] = bytes * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetComplexityN(T);
}
#endif

}  // namespace

void register_benchmarks() {
  benchmark::AddCustomContext("triad_gbps", std::to_string(triad_gbps()));
  for (const bool backward : {false, true}) {
    for (const int threads : {1, 0}) {  // 0: the global pool
      const std::string name = std::string(backward ? "scan_bwd" : "scan_fwd") + "/" +
                               (threads == 1 ? "1thread" : "threads") + "/C:" + std::to_string(kChannels);
      benchmark::RegisterBenchmark(name.c_str(), skipping_errors(bench_scan), backward, threads)
          ->ArgName("T")
          ->RangeMultiplier(4)
          ->Range(256, 1 << 20)
          ->Complexity(benchmark::oN)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
    }
  }
#if SEQK_HAVE_VULKAN
  // GPUs only: lavapipe would take minutes at 1M steps.
  for (const seqk::vk::DeviceInfo& info : vulkan_devices()) {
    if (info.type == seqk::vk::DeviceType::kCpu || !info.timestamps) continue;
    for (const bool backward : {false, true}) {
      const std::string name = std::string(backward ? "scan_bwd" : "scan_fwd") + "/vulkan" +
                               std::to_string(info.index) + "/C:" + std::to_string(kChannels);
      benchmark::RegisterBenchmark(name.c_str(), skipping_errors(bench_vulkan_scan), info.index, backward)
          ->ArgName("T")
          ->RangeMultiplier(4)
          ->Range(256, 1 << 20)
          ->Complexity(benchmark::oN)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
    }
  }
#endif
}

}  // namespace seqk_bench
