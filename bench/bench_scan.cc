// Claim S5's scans. The linear recurrence: forward and backward over T from
// 256 to 1M steps, with Complexity fits, on 1 thread and on all, beside a
// plain sequential loop, as GB/s and as a percentage of the STREAM triad
// bandwidth measured in the same run; and on every Vulkan GPU (GPU time from
// timestamps, GB/s). The selective scan (S6): forward and backward over L
// (256 to 16k: its cost per step is fixed, as the fits show) with Complexity
// fits, beside a plain scalar loop; and its decode step
// after contexts of growing length, whose cost should not grow.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "seqk/aligned.h"
#include "seqk/scan.h"
#include "seqk/selective_scan.h"
#include "seqk/thread_pool.h"

#if SEQK_HAVE_VULKAN
#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_scan.h"
#include "seqk/vulkan_selective_scan.h"
#endif

namespace seqk_bench {
namespace {

constexpr int64_t kChannels = 64;  // B·D: one sequence of 64 channels
constexpr double kMinTimeSeconds = 0.2;

// STREAM's triad out = x + s·y over n elements, shared among the pool's threads.
void triad(seqk::ThreadPool& pool, float* out, const float* x, const float* y, size_t n) {
  pool.run([&](int t, int threads) {
    const size_t begin = n * t / threads, end = n * (t + 1) / threads;
    for (size_t i = begin; i < end; ++i) out[i] = x[i] + 3.0f * y[i];
  });
  benchmark::DoNotOptimize(out);
}

// The triad over 3 × 64 MiB on every thread of the global pool: 12 bytes
// moved per element (two loads, one store), best of a few passes. The scan
// rows are divided by it.
double triad_gbps() {
  static const double gbps = [] {
    const size_t n = size_t{16} << 20;
    seqk::AlignedVector a(n), b(n, 1.0f), c(n, 2.0f);
    seqk::ThreadPool& pool = seqk::ThreadPool::global();
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
      const auto start = std::chrono::steady_clock::now();
      triad(pool, a.data(), b.data(), c.data(), n);
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

// The bar's row: the forward on the global pool at the largest T, each
// iteration paired with a triad pass over the very same arrays (h = b + s·a:
// the same two streams read, the same one written, the same pages, the same
// threads), timed apart. The ratio of the two sums is immune to the load
// of other processes drifting between rows, which a triad measured once at
// start-up is not. The row's time is the scan's.
void bench_scan_paired_triad(benchmark::State& state) {
  const int64_t T = state.range(0);
  const size_t n = static_cast<size_t>(T * kChannels);
  const std::vector<float> a = uniform_random(n, 0.99f, 1), b = uniform_random(n, 1.0f, 2);
  std::vector<float> h(n);
  seqk::ThreadPool& pool = seqk::ThreadPool::global();
  const seqk::LinearScanArgs args{{a.data(), {T, 1, kChannels}}, {b.data(), {T, 1, kChannels}}, {},
                                  {h.data(), {T, 1, kChannels}}};
  auto triad_pass = [&] { triad(pool, h.data(), b.data(), a.data(), n); };
  auto seconds_of = [](auto&& body) {
    const auto start = std::chrono::steady_clock::now();
    body();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  triad_pass();
  seqk::linear_scan(args, &pool);  // both touch every page before timing
  double scan_seconds = 0, triad_seconds = 0;
  for (auto _ : state) {
    triad_seconds += seconds_of(triad_pass);
    const double seconds = seconds_of([&] { seqk::linear_scan(args, &pool); });
    scan_seconds += seconds;
    state.SetIterationTime(seconds);
  }
  const double bytes = 3.0 * static_cast<double>(n * sizeof(float)) * static_cast<double>(state.iterations());
  state.counters["GB/s"] = bytes / scan_seconds * 1e-9;
  state.counters["triad_GB/s"] = bytes / triad_seconds * 1e-9;
  state.counters["pct_triad"] = 100.0 * triad_seconds / scan_seconds;
}

// The sequential loop a scan replaces, as anyone would first write it: step
// after step over the channels (which the compiler vectorises).
void bench_scan_loop(benchmark::State& state) {
  const int64_t T = state.range(0);
  const std::vector<float> a = uniform_random(T * kChannels, 0.99f, 1), b = uniform_random(T * kChannels, 1.0f, 2);
  std::vector<float> h(T * kChannels);
  const double seconds = time_loop(state, [&] {
    for (int64_t c = 0; c < kChannels; ++c) h[c] = b[c];
    for (int64_t t = 1; t < T; ++t)
      for (int64_t c = 0; c < kChannels; ++c)
        h[t * kChannels + c] = a[t * kChannels + c] * h[(t - 1) * kChannels + c] + b[t * kChannels + c];
    benchmark::DoNotOptimize(h.data());
  });
  report_bandwidth(state, T, 3, seconds);
}

// The selective scan at a Mamba-like width: one sequence, D channels of N
// state values each.
constexpr int64_t kS6Channels = 256, kS6State = 16;

struct S6Problem {
  explicit S6Problem(int64_t steps)
      : L(steps),
        u(uniform_random(kS6Channels * L, 1.0f, 11)),
        delta(uniform_random(kS6Channels * L, 1.0f, 12)),
        A(uniform_random(kS6Channels * kS6State, 1.0f, 13)),
        B(uniform_random(kS6State * L, 1.0f, 14)),
        C(uniform_random(kS6State * L, 1.0f, 15)),
        D(uniform_random(kS6Channels, 1.0f, 16)),
        z(uniform_random(kS6Channels * L, 1.0f, 17)),
        bias(uniform_random(kS6Channels, 1.0f, 18)) {
    for (float& a : A) a = -std::exp(a);  // Mamba's A = -exp(A_log)
  }
  seqk::SelectiveScanInputs inputs() const {
    return {{u.data(), {1, kS6Channels, L}}, {delta.data(), {1, kS6Channels, L}}, {A.data(), {kS6Channels, kS6State}},
            {B.data(), {1, kS6State, L}},    {C.data(), {1, kS6State, L}},         {D.data(), {kS6Channels}},
            {z.data(), {1, kS6Channels, L}}, {bias.data(), {kS6Channels}},         true};
  }
  int64_t L;
  std::vector<float> u, delta, A, B, C, D, z, bias;
};

// "Gupdates/s": state values updated per second (B·D·N·L per pass).
void report_updates(benchmark::State& state, int64_t steps, double seconds) {
  state.counters["Gupdates/s"] =
      static_cast<double>(kS6Channels * kS6State * steps) * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetComplexityN(steps);
}

void bench_selective_scan(benchmark::State& state, bool backward, int threads) {
  const S6Problem p(state.range(0));
  const int64_t L = p.L;
  std::vector<float> y(kS6Channels * L), du(y.size()), ddelta(y.size()), dz(y.size()), dA(kS6Channels * kS6State),
      dB(kS6State * L), dC(dB.size()), dD(kS6Channels), dbias(kS6Channels);
  const std::vector<float> dy = uniform_random(y.size(), 1.0f, 19);
  seqk::ThreadPool single(1);
  seqk::ThreadPool* pool = threads == 1 ? &single : &seqk::ThreadPool::global();
  seqk::SelectiveScanSaved saved;
  const seqk::View y_view(y.data(), {1, kS6Channels, L});
  seqk::selective_scan(p.inputs(), y_view, {}, &saved, pool);
  const seqk::SelectiveScanGrads grads{{du.data(), {1, kS6Channels, L}}, {ddelta.data(), {1, kS6Channels, L}},
                                       {dA.data(), {kS6Channels, kS6State}}, {dB.data(), {1, kS6State, L}},
                                       {dC.data(), {1, kS6State, L}},        {dD.data(), {kS6Channels}},
                                       {dz.data(), {1, kS6Channels, L}},     {dbias.data(), {kS6Channels}}};
  const double seconds = time_loop(state, [&] {
    if (backward) {
      seqk::selective_scan_backward(p.inputs(), saved, {dy.data(), {1, kS6Channels, L}}, {}, grads, pool);
    } else {
      seqk::selective_scan(p.inputs(), y_view, {}, nullptr, pool);
    }
  });
  report_updates(state, L, seconds);
}

// The forward as a plain scalar loop (Mamba's selective_scan_ref, fused by
// hand): what the kernel is measured against.
void bench_selective_scan_loop(benchmark::State& state) {
  const S6Problem p(state.range(0));
  const int64_t L = p.L;
  std::vector<float> y(kS6Channels * L), h(kS6State);
  const double seconds = time_loop(state, [&] {
    for (int64_t d = 0; d < kS6Channels; ++d) {
      std::fill(h.begin(), h.end(), 0.0f);
      for (int64_t t = 0; t < L; ++t) {
        const int64_t i = d * L + t;
        const float delta = std::log1p(std::exp(p.delta[i] + p.bias[d]));
        float out = 0;
        for (int64_t n = 0; n < kS6State; ++n) {
          h[n] = std::exp(delta * p.A[d * kS6State + n]) * h[n] + delta * p.u[i] * p.B[n * L + t];
          out += p.C[n * L + t] * h[n];
        }
        out += p.D[d] * p.u[i];
        y[i] = out * p.z[i] / (1.0f + std::exp(-p.z[i]));
      }
    }
    benchmark::DoNotOptimize(y.data());
  });
  report_updates(state, L, seconds);
}

// One decoding step at a Mamba-130M width (D = 1536, N = 16) after a context
// of T steps run through the forward: the state it carries is (D, N)
// whatever T is.
void bench_selective_decode(benchmark::State& state) {
  constexpr int64_t D = 1536, N = kS6State;
  const int64_t T = state.range(0);
  const std::vector<float> u = uniform_random(D * T, 1.0f, 21), delta = uniform_random(D * T, 1.0f, 22);
  const std::vector<float> B = uniform_random(N * T, 1.0f, 23), C = uniform_random(N * T, 1.0f, 24);
  std::vector<float> A = uniform_random(D * N, 1.0f, 25), y(D * T), h(D * N);
  for (float& a : A) a = -std::exp(a);
  const seqk::ConstView A_view(A.data(), {D, N});
  seqk::selective_scan({{u.data(), {1, D, T}}, {delta.data(), {1, D, T}}, A_view, {B.data(), {1, N, T}},
                        {C.data(), {1, N, T}}, {}, {}, {}, true},
                       {y.data(), {1, D, T}}, {h.data(), {1, D, N}});
  const std::vector<float> u_t = uniform_random(D, 1.0f, 26), delta_t = uniform_random(D, 1.0f, 27);
  const std::vector<float> B_t = uniform_random(N, 1.0f, 28), C_t = uniform_random(N, 1.0f, 29);
  std::vector<float> y_t(D);
  const seqk::SelectiveScanStepInputs step{{u_t.data(), {1, D}}, {delta_t.data(), {1, D}}, A_view,
                                           {B_t.data(), {1, N}}, {C_t.data(), {1, N}}, {}, {}, {}, true};
  time_loop(state, [&] { seqk::selective_scan_step(step, {h.data(), {1, D, N}}, {y_t.data(), {1, D}}); });
  state.counters["state_bytes"] = static_cast<double>(D * N * sizeof(float));
  state.SetComplexityN(T);
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
  const double seconds = time_gpu_loop(state, stream, [&] {
    if (backward) {
      seqk::vk::linear_scan_backward(stream, a, nullptr, h, b, da, db, nullptr, T, kChannels);
    } else {
      seqk::vk::linear_scan(stream, a, b, h, T, kChannels);
    }
  });
  const double bytes = (backward ? 5.0 : 3.0) * n * sizeof(float);
  state.counters["GB/s"] = bytes * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetComplexityN(T);
}

// The selective scan's rows on one Vulkan device, the same problem as on
// the CPU, data resident there; GPU time.
void bench_vulkan_selective_scan(benchmark::State& state, int device_index, bool backward) {
  const S6Problem p(state.range(0));
  const int64_t L = p.L, BDL = kS6Channels * L, BNL = kS6State * L;
  seqk::vk::Device& device = vulkan_device(device_index);
  auto buffer = [&](const std::vector<float>& values) {
    auto b = std::make_unique<seqk::vk::Buffer>(device, values.size());
    b->upload(values);
    return b;
  };
  const auto u = buffer(p.u), delta = buffer(p.delta), A = buffer(p.A), B = buffer(p.B), C = buffer(p.C);
  const auto D = buffer(p.D), z = buffer(p.z), bias = buffer(p.bias), dy = buffer(uniform_random(BDL, 1.0f, 19));
  seqk::vk::Buffer y(device, BDL), du(device, BDL), ddelta(device, BDL), dz(device, BDL), dA(device, kS6Channels * kS6State),
      dB(device, BNL), dC(device, BNL), dD(device, kS6Channels), dbias(device, kS6Channels);
  seqk::vk::SelectiveScanBuffers in{1, kS6Channels, L, kS6State, u.get(), delta.get(), A.get(), B.get(), C.get(),
                                    D.get(), z.get(), bias.get(), true};
  const seqk::vk::SelectiveScanGradBuffers grads{&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias};
  seqk::vk::Stream stream(device, /*timestamps=*/true);
  seqk::vk::SelectiveScanSaved saved;
  seqk::vk::selective_scan(stream, in, y, nullptr, &saved);
  stream.submit();
  const double seconds = time_gpu_loop(state, stream, [&] {
    if (backward) {
      seqk::vk::selective_scan_backward(stream, in, saved, *dy, nullptr, grads);
    } else {
      seqk::vk::selective_scan(stream, in, y);
    }
  });
  report_updates(state, L, seconds);
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
  benchmark::RegisterBenchmark(("scan_fwd/paired_triad/C:" + std::to_string(kChannels)).c_str(),
                               skipping_errors(bench_scan_paired_triad))
      ->ArgName("T")
      ->Arg(1 << 20)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(1.0);
  benchmark::RegisterBenchmark(("scan_fwd/loop/C:" + std::to_string(kChannels)).c_str(), bench_scan_loop)
      ->ArgName("T")
      ->RangeMultiplier(4)
      ->Range(256, 1 << 20)
      ->Complexity(benchmark::oN)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(kMinTimeSeconds);
  const std::string s6_shape = "/B:1/D:" + std::to_string(kS6Channels) + "/N:" + std::to_string(kS6State);
  for (const bool backward : {false, true}) {
    for (const int threads : {1, 0}) {
      const std::string name =
          std::string(backward ? "s6_bwd/" : "s6_fwd/") + (threads == 1 ? "1thread" : "threads") + s6_shape;
      benchmark::RegisterBenchmark(name.c_str(), skipping_errors(bench_selective_scan), backward, threads)
          ->ArgName("L")
          ->RangeMultiplier(4)
          ->Range(256, 1 << 14)
          ->Complexity(benchmark::oN)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
    }
  }
  benchmark::RegisterBenchmark(("s6_fwd/loop" + s6_shape).c_str(), bench_selective_scan_loop)
      ->ArgName("L")
      ->RangeMultiplier(4)
      ->Range(256, 1 << 14)
      ->Complexity(benchmark::oN)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(kMinTimeSeconds);
  benchmark::RegisterBenchmark("s6_decode/seqk/B:1/D:1536/N:16", skipping_errors(bench_selective_decode))
      ->ArgName("T")
      ->RangeMultiplier(8)
      ->Range(1 << 10, 1 << 16)
      ->Complexity(benchmark::o1)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(kMinTimeSeconds);
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
      benchmark::RegisterBenchmark(
          (std::string(backward ? "s6_bwd/vulkan" : "s6_fwd/vulkan") + std::to_string(info.index) + s6_shape).c_str(),
          skipping_errors(bench_vulkan_selective_scan), info.index, backward)
          ->ArgName("L")
          ->RangeMultiplier(4)
          ->Range(256, 1 << 14)
          ->Complexity(benchmark::oN)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
    }
  }
#endif
}

}  // namespace seqk_bench
