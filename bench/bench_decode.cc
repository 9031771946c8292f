// Claim S4: per generated token, a Transformer with a KV cache costs O(n·d)
// time and holds O(n·d) memory, where a recurrent layer's step costs the same
// whatever the context. Rows:
//   kv_decode/seqk:     one decode step (B = 1, H = 8, dh = 64) over a cache
//                       of n positions, n = 1k .. 64k, on every thread, with
//                       an O(n) fit; counters: the cache's bytes and the rate
//                       it is read at;
//   kv_decode/vulkan<i>: the same on every Vulkan device (GPU time; lavapipe
//                       up to 4k positions only, it runs shaders on the CPU);
//   lstm_decode/seqk:   the LSTM's step (B = 1, D = H = 512, T = 1) carrying
//                       its state, at the same n: its state is 2·H floats for
//                       any n, the fit O(1).
// The step's append (2·H·dh floats copied) is left out of the kv_decode
// time: the decode reads all 2·n·H·dh cached floats, which is what grows.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "seqk/kv_cache.h"
#include "seqk/lstm.h"

#if SEQK_HAVE_VULKAN
#include <memory>

#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_kv_cache.h"
#endif

namespace seqk_bench {
namespace {

constexpr int64_t kBatch = 1, kHeads = 8, kHeadSize = 64;
constexpr int64_t kLstmHidden = 512;
constexpr int64_t kShortest = 1 << 10, kLongest = 1 << 16, kLongestOnCpuDevice = 1 << 12;
constexpr double kMinTimeSeconds = 0.2;

double cache_bytes(int64_t positions) { return 2.0 * kBatch * kHeads * positions * kHeadSize * sizeof(float); }

// "state_bytes": the cache (K and V); "GB/s": the cache read per step.
void report_cache(benchmark::State& state, int64_t positions, double seconds) {
  state.counters["state_bytes"] = cache_bytes(positions);
  state.counters["GB/s"] = cache_bytes(positions) * static_cast<double>(state.iterations()) / seconds * 1e-9;
  state.SetComplexityN(positions);
}

// A context of n random positions, appended as one prefill.
struct Context {
  explicit Context(int64_t positions)
      : n(positions),
        k(uniform_random(kBatch * kHeads * n * kHeadSize, 1.0f, 1)),
        v(uniform_random(k.size(), 1.0f, 2)),
        q(uniform_random(kBatch * kHeads * kHeadSize, 1.0f, 3)) {}
  int64_t n;
  std::vector<float> k, v, q;
};

void bench_kv_decode(benchmark::State& state) {
  const Context ctx(state.range(0));
  seqk::KvCache cache(kBatch, kHeads, ctx.n, kHeadSize);
  cache.append({ctx.k.data(), {kBatch, kHeads, ctx.n, kHeadSize}}, {ctx.v.data(), {kBatch, kHeads, ctx.n, kHeadSize}});
  std::vector<float> out(ctx.q.size());
  const seqk::ConstView q(ctx.q.data(), {kBatch, kHeads, kHeadSize});
  const seqk::View out_view(out.data(), {kBatch, kHeads, kHeadSize});
  seqk::kv_decode(cache, q, out_view);  // warm-up: first touches, pool wake-up
  const double seconds = time_loop(state, [&] { seqk::kv_decode(cache, q, out_view); });
  report_cache(state, ctx.n, seconds);
}

// One LSTM step from the last step's state: the recurrent layer's decode.
void bench_lstm_decode(benchmark::State& state) {
  constexpr int64_t H = kLstmHidden, G = 4;
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));  // PyTorch's initialisation
  const std::vector<float> w_ih = uniform_random(G * H * H, bound, 1), w_hh = uniform_random(G * H * H, bound, 2);
  const std::vector<float> b_ih = uniform_random(G * H, bound, 3), b_hh = uniform_random(G * H, bound, 4);
  const std::vector<float> x = uniform_random(H, 1.0f, 5);
  std::vector<float> y(H), h(H), c(H), h_next(H), c_next(H);
  seqk::LstmLayer layer(H, H);
  layer.set_parameters({{w_ih.data(), {G * H, H}}, {w_hh.data(), {G * H, H}}, {b_ih.data(), {G * H}}, {b_hh.data(), {G * H}}});
  seqk::LstmForwardArgs step;
  step.x = {x.data(), {1, 1, H}};
  step.y = {y.data(), {1, 1, H}};
  step.h0 = {h.data(), {1, H}};
  step.c0 = {c.data(), {1, H}};
  step.h_n = {h_next.data(), {1, H}};
  step.c_n = {c_next.data(), {1, H}};
  auto run = [&] {
    layer.forward(step);
    std::copy(h_next.begin(), h_next.end(), h.begin());  // the state the next step starts from
    std::copy(c_next.begin(), c_next.end(), c.begin());
  };
  run();
  time_loop(state, run);
  state.counters["state_bytes"] = 2.0 * H * sizeof(float);
  state.SetComplexityN(state.range(0));
}

#if SEQK_HAVE_VULKAN
// The decode on one Vulkan device, the cache resident there; GPU time.
void bench_vulkan_kv_decode(benchmark::State& state, int device_index) {
  const Context ctx(state.range(0));
  seqk::vk::Device& device = vulkan_device(device_index);
  auto buffer = [&](const std::vector<float>& values) {
    auto b = std::make_unique<seqk::vk::Buffer>(device, values.size());
    b->upload(values);
    return b;
  };
  const auto k = buffer(ctx.k), v = buffer(ctx.v), q = buffer(ctx.q);
  seqk::vk::Buffer out(device, ctx.q.size());
  seqk::vk::KvCache cache(device, kBatch, kHeads, ctx.n, kHeadSize);
  seqk::vk::Stream stream(device, /*timestamps=*/true);
  cache.append(stream, *k, *v, ctx.n);
  stream.submit();
  const double seconds = time_gpu_loop(state, stream, [&] {
    seqk::vk::kv_decode(stream, cache, *q, out);
  });
  report_cache(state, ctx.n, seconds);
}
#endif

}  // namespace

void register_benchmarks() {
  const std::string shape = "/B:" + std::to_string(kBatch) + "/H:" + std::to_string(kHeads) +
                            "/dh:" + std::to_string(kHeadSize);
  benchmark::RegisterBenchmark(("kv_decode/seqk" + shape).c_str(), skipping_errors(bench_kv_decode))
      ->ArgName("n")
      ->RangeMultiplier(2)
      ->Range(kShortest, kLongest)
      ->Complexity(benchmark::oN)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(kMinTimeSeconds);
  benchmark::RegisterBenchmark(("lstm_decode/seqk/B:1/H:" + std::to_string(kLstmHidden)).c_str(),
                               skipping_errors(bench_lstm_decode))
      ->ArgName("n")
      ->RangeMultiplier(4)
      ->Range(kShortest, kLongest)
      ->Complexity(benchmark::o1)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->MinTime(kMinTimeSeconds);
#if SEQK_HAVE_VULKAN
  for (const seqk::vk::DeviceInfo& info : vulkan_devices()) {
    if (!info.timestamps) continue;
    const bool cpu_device = info.type == seqk::vk::DeviceType::kCpu;
    benchmark::RegisterBenchmark(("kv_decode/vulkan" + std::to_string(info.index) + shape).c_str(),
                                 skipping_errors(bench_vulkan_kv_decode), info.index)
        ->ArgName("n")
        ->RangeMultiplier(2)
        ->Range(kShortest, cpu_device ? kLongestOnCpuDevice : kLongest)
        ->Complexity(benchmark::oN)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(kMinTimeSeconds);
  }
#endif
}

}  // namespace seqk_bench
