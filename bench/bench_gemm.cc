// seqk::gemm at the shapes the LSTM rows run (input projection, recurrent
// step, weight gradient), specialised vs generic micro-kernels (claim H1),
// the same GEMM pinned to each SIMD target (claim H2), and seqk::vk::gemm at
// the LSTM shapes on every Vulkan GPU.
#include <benchmark/benchmark.h>

#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "bench/recurrent_shapes.h"
#include "bench/machine_context.h"
#include "seqk/gemm.h"
#include "seqk/simd.h"

#if SEQK_HAVE_VULKAN
#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#endif

namespace seqk_bench {
namespace {

constexpr double kMinTimeSeconds = 0.3;

struct GemmCase {
  int64_t m, n, k;
  bool transpose_a = false;  // A read through a transposed view, as a weight gradient does
  bool specialized = true;   // GemmArgs::specialized
  std::optional<seqk::SimdTarget> target = std::nullopt;  // pinned target; none: what dispatch picks
};

std::string gemm_shape_name(const GemmCase& c) {
  return "M:" + std::to_string(c.m) + "/N:" + std::to_string(c.n) + "/K:" + std::to_string(c.k);
}

// Times C = A·Bᵀ with B packed beforehand: packing weights is a one-off per
// parameter update, so it is not part of the kernel's time.
void bench_gemm(benchmark::State& state, GemmCase c, std::string label) {
  // A transposed A's rows (the gate gradients) are a panel longer than M, as
  // the recurrent layers keep them: at M = 1024 or 2048 they would otherwise
  // all fall in the same L1 sets, which the layers avoid.
  const int64_t a_row = c.transpose_a ? c.m + seqk::kPanelWidth : c.k;
  const std::vector<float> a = uniform_random((c.transpose_a ? c.k : c.m) * a_row, 1.0f, 1);
  const std::vector<float> b = uniform_random(c.n * c.k, 1.0f, 2);
  std::vector<float> out(c.m * c.n);
  const seqk::ConstView a_view = c.transpose_a ? seqk::ConstView(a.data(), {c.m, c.k}, {1, a_row})
                                               : seqk::ConstView(a.data(), {c.m, c.k});
  const seqk::PackedMatrix packed_b(seqk::ConstView(b.data(), {c.n, c.k}));
  const seqk::View out_view(out.data(), {c.m, c.n});
  seqk::GemmArgs args;
  args.specialized = c.specialized;

  std::optional<seqk::ScopedSimdTarget> pin;
  if (c.target) pin.emplace(c.target->bits);
  auto run = [&] { seqk::gemm(a_view, packed_b, out_view, args); };
  run();  // warm-up: first touch of C
  const double seconds = time_loop(state, run);
  // A pinned row is measured against its own target's peak (claim H2).
  const double peak = c.target ? peak_gflops_of_target(c.target->name) : machine_peaks().gflops;
  report_throughput(state, 2.0 * c.m * c.n * c.k, seconds, peak);
  state.SetLabel(label);
}

void register_gemm(const std::string& family, const GemmCase& c, const std::string& label) {
  benchmark::RegisterBenchmark((family + "/" + gemm_shape_name(c)).c_str(), skipping_errors(bench_gemm), c, label)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(kMinTimeSeconds);
}

void register_lstm_shapes() {
  for (const RecurrentShape& s : kStandardShapes) {
    const int64_t rows = s.steps * s.batch, gates = 4 * s.hidden;
    const std::string label = "lstm " + shape_name(s);
    register_gemm("gemm/input_proj", {.m = rows, .n = gates, .k = s.input}, label);
    register_gemm("gemm/recurrent_step", {.m = s.batch, .n = gates, .k = s.hidden}, label);
    // dW_ih = dGatesᵀ · X: A is the (T·B, 4H) gate gradient read transposed.
    register_gemm("gemm/weight_grad", {.m = gates, .n = s.input, .k = rows, .transpose_a = true}, label);
  }
}

// Claim H1: the same shapes through the K-specialised and the generic
// micro-kernels, both as a large projection and as a small recurrent step.
void register_specialized_vs_generic() {
  for (const int64_t k : {256, 512}) {
    for (const int64_t m : {64, 8192}) {
      for (const bool specialized : {true, false}) {
        register_gemm(specialized ? "gemm_h1/specialized" : "gemm_h1/generic",
                      {.m = m, .n = 4 * k, .k = k, .specialized = specialized}, "H1");
      }
    }
  }
}

// Claim H2: the B=64 input projection on every SIMD target. The emulated
// targets (EMU128, SCALAR) are not SIMD and would take seconds per call.
void register_per_target() {
  for (const seqk::SimdTarget& target : seqk::available_simd_targets()) {
    if (target.name == "EMU128" || target.name == "SCALAR") continue;
    register_gemm("gemm_h2/" + target.name, {.m = 64 * 128, .n = 2048, .k = 512, .target = target}, "H2");
  }
}

#if SEQK_HAVE_VULKAN
// C = A·Bᵀ on a Vulkan device, resident there; the row's time is the GPU
// time of one dispatch (timestamps).
void bench_vulkan_gemm(benchmark::State& state, int device_index, GemmCase c) {
  seqk::vk::Device& device = vulkan_device(device_index);
  seqk::vk::Buffer a(device, c.m * c.k), b(device, c.n * c.k), out(device, c.m * c.n);
  a.upload(uniform_random(c.m * c.k, 1.0f, 1));
  b.upload(uniform_random(c.n * c.k, 1.0f, 2));
  seqk::vk::Stream stream(device, /*timestamps=*/true);
  const double seconds = time_gpu_loop(state, stream, [&] {
    seqk::vk::gemm(stream, a, b, out, c.m, c.n, c.k);
  });
  state.counters["GFLOP/s"] = 2.0 * c.m * c.n * c.k * static_cast<double>(state.iterations()) / seconds * 1e-9;
}

// GPUs only: on a CPU device (lavapipe) the input projections take seconds each.
void register_vulkan() {
  for (const seqk::vk::DeviceInfo& info : vulkan_devices()) {
    if (info.type == seqk::vk::DeviceType::kCpu || !info.timestamps) continue;
    // e.g. gemm_vulkan0/input_proj/M:8192/N:2048/K:512, like the CPU rows.
    const std::string family = "gemm_vulkan" + std::to_string(info.index);
    for (const RecurrentShape& s : kStandardShapes) {
      const std::pair<const char*, GemmCase> cases[] = {
          {"input_proj", {.m = s.steps * s.batch, .n = 4 * s.hidden, .k = s.input}},
          {"recurrent_step", {.m = s.batch, .n = 4 * s.hidden, .k = s.hidden}}};
      for (const auto& [role, c] : cases) {
        benchmark::RegisterBenchmark((family + "/" + role + "/" + gemm_shape_name(c)).c_str(),
                                     skipping_errors(bench_vulkan_gemm), info.index, c)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(kMinTimeSeconds);
      }
    }
  }
}
#endif

}  // namespace

void register_benchmarks() {
  register_lstm_shapes();
  register_specialized_vs_generic();
  register_per_target();
#if SEQK_HAVE_VULKAN
  register_vulkan();
#endif
}

}  // namespace seqk_bench
