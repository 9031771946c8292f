// Recurrent layers (LSTM, GRU, vanilla RNN with tanh) forward (inference)
// and forward+backward (training) at the standard shapes: seqk on the CPU
// beside oneDNN's RNN primitives when it is built in, and the LSTM on every
// Vulkan device found.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "bench/recurrent_shapes.h"
#include "bench/machine_context.h"
#include "seqk/recurrent_layer.h"
#include "seqk/min_rnn.h"
#include "seqk/recurrent_stack.h"
#include "seqk/sequence_batch.h"
#include "seqk/thread_pool.h"

#if SEQK_HAVE_VULKAN
#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_recurrent.h"
#endif

#if SEQK_HAVE_ONEDNN
#include <cstdlib>

#include "bench/child_process.h"
#include "bench/onednn_recurrent.h"
#endif

namespace seqk_bench {
namespace {

// Long enough to average over scheduler noise on a shared 2-vCPU machine,
// short enough that the suite with 3 repetitions stays within minutes.
constexpr double kMinTimeSeconds = 0.5;

// The cells every CPU row is measured for (kRnnRelu costs what kRnnTanh does).
constexpr seqk::CellKind kCells[] = {seqk::CellKind::kLstm, seqk::CellKind::kGru, seqk::CellKind::kRnnTanh};

// A pass's input and output, (T, B, D) and (T, B, out), with their
// gradients, and the arguments that name them (zero initial states, final
// states not wanted).
struct PassData {
  PassData(RecurrentShape shape, int64_t out) {
    const int64_t T = shape.steps, B = shape.batch, D = shape.input;
    x = uniform_random(T * B * D, 1.0f, 5);
    dy = uniform_random(T * B * out, 1.0f, 6);
    y.resize(T * B * out);
    dx.resize(T * B * D);
    forward.x = {x.data(), {T, B, D}};
    forward.y = {y.data(), {T, B, out}};
    backward.x = forward.x;
    backward.y = forward.y;
    backward.dy = {dy.data(), {T, B, out}};
    backward.dx = {dx.data(), {T, B, D}};
  }
  PassData(const PassData&) = delete;  // the arguments point into this object's vectors
  std::vector<float> x, dy, y, dx;
  seqk::RecurrentForwardArgs forward;
  seqk::RecurrentBackwardArgs backward;
};

// One layer's pass (forward, or forward and backward) at a row's shape.
struct LayerPass {
  LayerPass(seqk::CellKind cell, RecurrentShape shape, Pass pass)
      : pass(pass), layer(cell, shape.input, shape.hidden), data(shape, shape.hidden) {
    const int64_t D = shape.input, H = shape.hidden, G = seqk::gates_per_unit(cell);
    const float weight_bound = 1.0f / std::sqrt(static_cast<float>(H));  // PyTorch's initialisation
    w_ih = uniform_random(G * H * D, weight_bound, 1);
    w_hh = uniform_random(G * H * H, weight_bound, 2);
    b_ih = uniform_random(G * H, weight_bound, 3);
    b_hh = uniform_random(G * H, weight_bound, 4);
    for (auto [grad, value] : {std::pair{&dw_ih, &w_ih}, {&dw_hh, &w_hh}, {&db_ih, &b_ih}, {&db_hh, &b_hh}})
      grad->resize(value->size());
    layer.set_parameters(
        {{w_ih.data(), {G * H, D}}, {w_hh.data(), {G * H, H}}, {b_ih.data(), {G * H}}, {b_hh.data(), {G * H}}});
    grads = {{dw_ih.data(), {G * H, D}}, {dw_hh.data(), {G * H, H}}, {db_ih.data(), {G * H}}, {db_hh.data(), {G * H}}};
  }
  void operator()() {
    if (pass == Pass::kForward) {
      layer.forward(data.forward);
    } else {
      layer.forward(data.forward, saved);
      layer.backward(data.backward, saved, grads);
    }
  }

  Pass pass;
  seqk::RecurrentLayer layer;
  PassData data;
  std::vector<float> w_ih, w_hh, b_ih, b_hh, dw_ih, dw_hh, db_ih, db_hh;
  seqk::RecurrentGrads grads;
  seqk::RecurrentSaved saved;
};

// Parameters for every (layer, direction) of a stack, PyTorch-initialised.
struct StackParameters {
  std::vector<std::vector<float>> values;  // w_ih, w_hh, b_ih, b_hh per (layer, direction)
  std::vector<seqk::RecurrentParams> views;
  std::vector<std::vector<float>> grad_values;
  std::vector<seqk::RecurrentGrads> grads;
};

StackParameters stack_parameters(const seqk::RecurrentStack& stack, seqk::CellKind cell) {
  const int64_t G = seqk::gates_per_unit(cell), H = stack.hidden_size();
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));
  StackParameters p;
  for (int64_t l = 0; l < stack.num_layers(); ++l) {
    for (int64_t dir = 0; dir < stack.directions(); ++dir) {
      const int64_t D = stack.layer_input_size(l);
      const uint32_t seed = static_cast<uint32_t>(10 * (l * 2 + dir));
      for (const auto& [size, offset] : {std::pair{G * H * D, 1}, {G * H * H, 2}, {G * H, 3}, {G * H, 4}}) {
        p.values.push_back(uniform_random(size, bound, seed + offset));
        p.grad_values.emplace_back(size);
      }
    }
  }
  for (std::size_t i = 0; i < p.values.size(); i += 4) {
    const int64_t D = static_cast<int64_t>(p.values[i].size()) / (G * H);
    p.views.push_back({{p.values[i].data(), {G * H, D}}, {p.values[i + 1].data(), {G * H, H}},
                       {p.values[i + 2].data(), {G * H}}, {p.values[i + 3].data(), {G * H}}});
    p.grads.push_back({{p.grad_values[i].data(), {G * H, D}}, {p.grad_values[i + 1].data(), {G * H, H}},
                       {p.grad_values[i + 2].data(), {G * H}}, {p.grad_values[i + 3].data(), {G * H}}});
  }
  return p;
}

// A stack's pass (two layers, or one bidirectional layer), as LayerPass.
struct StackPass {
  StackPass(seqk::CellKind cell, RecurrentShape shape, Stacking stacking, Pass pass)
      : pass(pass),
        stack(cell, shape.input, shape.hidden, stacking.layers, stacking.bidirectional),
        data(shape, stack.output_size()),
        params(stack_parameters(stack, cell)) {
    stack.set_parameters(params.views);
  }
  void operator()() {
    if (pass == Pass::kForward) {
      stack.forward(data.forward);
    } else {
      stack.forward(data.forward, saved);
      stack.backward(data.backward, saved, params.grads);
    }
  }

  Pass pass;
  seqk::RecurrentStack stack;
  PassData data;
  StackParameters params;
  seqk::RecurrentStackSaved saved;
};

// seqk's pass for a row, ready to run (its first run sizes the saved state
// and first-touches the outputs: run it once before timing).
std::function<void()> seqk_pass(seqk::CellKind cell, RecurrentShape shape, Stacking stacking, Pass pass) {
  if (stacking.layers == 1 && !stacking.bidirectional) {
    return [run = std::make_shared<LayerPass>(cell, shape, pass)] { (*run)(); };
  }
  return [run = std::make_shared<StackPass>(cell, shape, stacking, pass)] { (*run)(); };
}

void bench_seqk(benchmark::State& state, seqk::CellKind cell, RecurrentShape shape, Stacking stacking, Pass pass) {
  const std::function<void()> run = seqk_pass(cell, shape, stacking, pass);
  run();
  const double seconds = time_loop(state, run);
  report_throughput(state, recurrent_flops(cell, shape, pass, stacking), seconds, machine_peaks().gflops);
}

// Claim S8: B sequences with long-tailed lengths between 1 and T (log-normal,
// a fixed draw), through an LSTM forward three ways. Padded: one batch of T
// steps with the lengths as a mask, every step computed for every sequence.
// Packed: each step computes only the sequences still running (packing the
// input is part of the time). Bucketed: batches of kBucket sequences of
// similar length, each padded to its own longest. Counters: useful tokens
// per second and the share of computed tokens that were padding.
constexpr RecurrentShape kS8Shape = {64, 256, 256, 128};
constexpr int64_t kBucket = 16;
enum class S8Mode { kPadded, kPacked, kBucketed };

std::vector<int64_t> long_tailed_lengths(int64_t count, int64_t max_length) {
  std::mt19937 rng(8);
  std::lognormal_distribution<double> tail(std::log(max_length / 8.0), 1.0);
  std::vector<int64_t> lengths(static_cast<std::size_t>(count));
  for (int64_t& len : lengths) len = std::clamp<int64_t>(static_cast<int64_t>(tail(rng)), 1, max_length);
  lengths[0] = max_length;  // the padded batch spans all T steps
  return lengths;
}

void bench_s8(benchmark::State& state, S8Mode mode) {
  const RecurrentShape shape = kS8Shape;
  const int64_t T = shape.steps, B = shape.batch, D = shape.input, H = shape.hidden;
  const std::vector<int64_t> lengths = long_tailed_lengths(B, T);
  const float bound = 1.0f / std::sqrt(static_cast<float>(H));
  const std::vector<float> w_ih = uniform_random(4 * H * D, bound, 1), w_hh = uniform_random(4 * H * H, bound, 2),
                           b_ih = uniform_random(4 * H, bound, 3), b_hh = uniform_random(4 * H, bound, 4);
  seqk::RecurrentLayer layer(seqk::CellKind::kLstm, D, H);
  layer.set_parameters({{w_ih.data(), {4 * H, D}}, {w_hh.data(), {4 * H, H}}, {b_ih.data(), {4 * H}}, {b_hh.data(), {4 * H}}});
  const std::vector<float> x = uniform_random(T * B * D, 1.0f, 5);
  const int64_t useful = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});

  int64_t computed = 0;  // tokens (sequence steps) computed per pass
  std::function<void()> run;
  std::vector<float> y(T * B * H), packed_x, packed_y;
  const seqk::PackedLayout layout = seqk::packed_layout(lengths);
  const auto buckets = seqk::bucket_by_length(lengths, kBucket);
  std::vector<std::vector<float>> bucket_x, bucket_y;
  std::vector<std::vector<int64_t>> bucket_lengths;
  switch (mode) {
    case S8Mode::kPadded:
      computed = T * B;
      run = [&] { layer.forward({{x.data(), {T, B, D}}, {y.data(), {T, B, H}}, {}, {}, {}, {}, lengths, {}}); };
      break;
    case S8Mode::kPacked:
      computed = useful;
      packed_x.resize(useful * D);
      packed_y.resize(useful * H);
      run = [&] {
        seqk::pack(layout, {x.data(), {T, B, D}}, {packed_x.data(), {useful, D}});
        layer.forward({{packed_x.data(), {useful, D}}, {packed_y.data(), {useful, H}}, {}, {}, {}, {}, {},
                       layout.batch_sizes});
      };
      break;
    case S8Mode::kBucketed:
      for (const auto& bucket : buckets) {
        bucket_lengths.emplace_back();
        for (int64_t i : bucket) bucket_lengths.back().push_back(lengths[i]);
        const int64_t steps = bucket_lengths.back()[0];  // longest first
        computed += steps * static_cast<int64_t>(bucket.size());
        bucket_x.emplace_back(steps * bucket.size() * D);
        bucket_y.emplace_back(steps * bucket.size() * H);
      }
      run = [&] {
        for (std::size_t k = 0; k < buckets.size(); ++k) {
          const int64_t n = static_cast<int64_t>(buckets[k].size()), steps = bucket_lengths[k][0];
          for (int64_t t = 0; t < steps; ++t)  // gather the bucket's sequences, padded to its longest
            for (int64_t j = 0; j < n; ++j)
              std::copy_n(x.begin() + (t * B + buckets[k][j]) * D, D, bucket_x[k].begin() + (t * n + j) * D);
          layer.forward({{bucket_x[k].data(), {steps, n, D}}, {bucket_y[k].data(), {steps, n, H}}, {}, {}, {}, {},
                         bucket_lengths[k], {}});
        }
      };
      break;
  }
  run();
  const double seconds = time_loop(state, run);
  const double iterations = static_cast<double>(state.iterations());
  state.counters["useful_tokens/s"] = useful * iterations / seconds;
  state.counters["padding_pct"] = 100.0 * (computed - useful) / computed;
  state.counters["useful_GFLOP/s"] =
      recurrent_flops(seqk::CellKind::kLstm, {1, D, H, 1}, Pass::kForward) * useful * iterations / seconds * 1e-9;
}

// Claim S5's minGRU/minLSTM part: one training step (forward + backward) of
// the min-RNN, whose recurrence is a linear scan, beside the GRU / LSTM it
// simplifies, at sequence length 512 (the paper reports 175x / 235x per
// step there, on a GPU, against sequential PyTorch loops).
constexpr RecurrentShape kS5Shape = {64, 256, 256, 512};

void bench_min_rnn(benchmark::State& state, seqk::MinRnnKind kind) {
  const RecurrentShape shape = kS5Shape;
  const int64_t T = shape.steps, B = shape.batch, D = shape.input, H = shape.hidden;
  seqk::MinRnnLayer layer(kind, D, H);
  const int64_t G = layer.gates();
  const float bound = 1.0f / std::sqrt(static_cast<float>(D));
  const std::vector<float> w = uniform_random(G * H * D, bound, 1), b = uniform_random(G * H, bound, 2);
  layer.set_parameters({{w.data(), {G * H, D}}, {b.data(), {G * H}}});
  const std::vector<float> x = uniform_random(T * B * D, 1.0f, 3), dy = uniform_random(T * B * H, 1.0f, 4);
  std::vector<float> y(T * B * H), dx(T * B * D), dw(w.size()), db(b.size());
  seqk::MinRnnSaved saved;
  auto run = [&] {
    layer.forward({x.data(), {T, B, D}}, {}, {y.data(), {T, B, H}}, &saved);
    layer.backward({x.data(), {T, B, D}}, {}, {y.data(), {T, B, H}}, {dy.data(), {T, B, H}}, saved,
                   {dx.data(), {T, B, D}}, {}, {{dw.data(), {G * H, D}}, {db.data(), {G * H}}});
  };
  run();
  const double seconds = time_loop(state, run);
  const double iterations = static_cast<double>(state.iterations());
  state.counters["tokens/s"] = static_cast<double>(T * B) * iterations / seconds;
}

#if SEQK_HAVE_ONEDNN
// oneDNN 2.6.3 segfaults on some RNN configurations on some CPUs, and a hang
// is possible too: SEQK_PEER_TIMEOUT_S bounds one child's run.
double peer_timeout_seconds() {
  const char* env = std::getenv("SEQK_PEER_TIMEOUT_S");
  return env != nullptr && std::atof(env) > 0 ? std::atof(env) : 300.0;
}

// The peer's row. The machine's speed drifts by several percent over
// minutes, more than the two libraries differ, so seqk's pass is timed again
// for as many iterations just before and just after the peer's: the row's
// "paired_ratio" (peer time / seqk time) compares runs seconds apart, and
// "seqk_before_ms" and "seqk_after_ms" show whether the machine changed
// speed in between. Each seqk burst follows an untimed pass: after the
// fork, seqk's first writes to its buffers fault page by page (copy-on-write
// protection).
void bench_onednn(benchmark::State& state, seqk::CellKind cell, RecurrentShape shape, Stacking stacking, Pass pass) {
  const int threads = seqk::ThreadPool::global().num_threads();  // the same cores seqk gets
  const int64_t iterations = state.max_iterations;
  const std::function<void()> seqk_run = seqk_pass(cell, shape, stacking, pass);
  auto time_seqk = [&] {
    seqk_run();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iterations; ++i) seqk_run();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double seqk_before = time_seqk();
  const ChildTiming timing = time_in_child(
      [&] { return onednn_iteration_seconds(cell, shape, stacking, pass, iterations, threads); },
      peer_timeout_seconds());
  std::string error = timing.error;
  if (error.empty() && timing.seconds.size() != static_cast<size_t>(iterations)) {
    error = "returned " + std::to_string(timing.seconds.size()) + " timings for " + std::to_string(iterations) +
            " iterations";
  }
  if (!error.empty()) {
    state.SkipWithError(("oneDNN " + error).c_str());
    return;
  }
  const double seqk_after = time_seqk();
  double total_seconds = 0;
  size_t i = 0;
  for (auto _ : state) {
    state.SetIterationTime(timing.seconds[i]);
    total_seconds += timing.seconds[i++];
  }
  report_throughput(state, recurrent_flops(cell, shape, pass, stacking), total_seconds, machine_peaks().gflops);
  state.counters["paired_ratio"] = total_seconds / ((seqk_before + seqk_after) / 2);
  state.counters["seqk_before_ms"] = 1e3 * seqk_before / iterations;
  state.counters["seqk_after_ms"] = 1e3 * seqk_after / iterations;
}
#endif

#if SEQK_HAVE_VULKAN
namespace vk = seqk::vk;

// The layer on one Vulkan device with its data resident there; each
// iteration records the pass on a stream and submits it. The row's time is
// the GPU time of the submit (timestamps); "wall_ms" adds recording,
// submission and the wait, i.e. what a caller sees per pass.
void bench_vulkan(benchmark::State& state, int device_index, seqk::CellKind cell, RecurrentShape shape, Pass pass) {
  const int64_t T = shape.steps, B = shape.batch, D = shape.input, H = shape.hidden;
  const int64_t G = seqk::gates_per_unit(cell);
  vk::Device& device = vulkan_device(device_index);
  const float weight_bound = 1.0f / std::sqrt(static_cast<float>(H));
  const std::vector<float> w_ih = uniform_random(G * H * D, weight_bound, 1);
  const std::vector<float> w_hh = uniform_random(G * H * H, weight_bound, 2);
  const std::vector<float> b_ih = uniform_random(G * H, weight_bound, 3);
  const std::vector<float> b_hh = uniform_random(G * H, weight_bound, 4);
  vk::RecurrentLayer layer(device, cell, D, H);
  layer.set_parameters(
      {{w_ih.data(), {G * H, D}}, {w_hh.data(), {G * H, H}}, {b_ih.data(), {G * H}}, {b_hh.data(), {G * H}}});
  vk::Buffer x(device, T * B * D), y(device, T * B * H), dy(device, T * B * H), dx(device, T * B * D);
  x.upload(uniform_random(T * B * D, 1.0f, 5));
  dy.upload(uniform_random(T * B * H, 1.0f, 6));
  vk::Buffer dw_ih(device, w_ih.size()), dw_hh(device, w_hh.size()), db_ih(device, b_ih.size()),
      db_hh(device, b_hh.size());
  const vk::RecurrentForwardBuffers forward{T, B, &x, &y};
  const vk::RecurrentBackwardBuffers backward{T, B, &x, &y, nullptr, nullptr, &dy, nullptr, nullptr, &dx};
  vk::RecurrentSaved saved;

  const bool timestamps = device.info().timestamps;
  vk::Stream stream(device, timestamps);
  auto run = [&] {
    if (pass == Pass::kForward) {
      layer.record_forward(stream, forward);
    } else {
      layer.record_forward(stream, forward, saved);
      layer.record_backward(stream, backward, saved, {&dw_ih, &dw_hh, &db_ih, &db_hh});
    }
    stream.submit();
  };
  // Warm-up (pipelines, scratch buffers), except on a CPU device, where one
  // pass takes seconds and the warm-up costs are lost in it.
  if (device.info().type != vk::DeviceType::kCpu) run();
  double gpu_seconds = 0, wall_seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double gpu = timestamps ? stream.last_gpu_ms() * 1e-3 : wall;
    state.SetIterationTime(gpu);
    gpu_seconds += gpu;
    wall_seconds += wall;
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = recurrent_flops(cell, shape, pass) * iterations / gpu_seconds * 1e-9;
  state.counters["wall_ms"] = wall_seconds / iterations * 1e3;
  state.counters["gpu_ms"] = gpu_seconds / iterations * 1e3;
  state.counters["gpu_timestamps"] = timestamps ? 1 : 0;
}

#endif

}  // namespace

void register_benchmarks() {
#if SEQK_HAVE_ONEDNN
  benchmark::AddCustomContext("onednn_version", onednn_version());
#endif
  for (const seqk::CellKind cell : kCells) {
    for (const Pass pass : {Pass::kForward, Pass::kForwardBackward}) {
      for (const RecurrentShape& shape : kStandardShapes) {
        benchmark::RegisterBenchmark(row_name(cell, pass, "seqk", shape).c_str(), skipping_errors(bench_seqk), cell,
                                     shape, Stacking{}, pass)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(kMinTimeSeconds);
#if SEQK_HAVE_ONEDNN
        // Timed in the child; the parent reports those times.
        benchmark::RegisterBenchmark(row_name(cell, pass, "onednn", shape).c_str(), skipping_errors(bench_onednn), cell,
                                     shape, Stacking{}, pass)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(kMinTimeSeconds);
#endif
      }
    }
  }
  // Stacks (the LSTM): two layers, and one bidirectional layer.
  const seqk::CellKind lstm = seqk::CellKind::kLstm;
  for (const Stacking& stacking : kStackings) {
    for (const Pass pass : {Pass::kForward, Pass::kForwardBackward}) {
      benchmark::RegisterBenchmark(row_name(lstm, pass, "seqk", kStackShape, stacking).c_str(),
                                   skipping_errors(bench_seqk), lstm, kStackShape, stacking, pass)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
#if SEQK_HAVE_ONEDNN
      benchmark::RegisterBenchmark(row_name(lstm, pass, "onednn", kStackShape, stacking).c_str(),
                                   skipping_errors(bench_onednn), lstm, kStackShape, stacking, pass)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(kMinTimeSeconds);
#endif
    }
  }
  // Claim S5: min-RNN training steps beside the full cells at the same shape.
  for (const auto& [cell, kind, name] : {std::tuple{seqk::CellKind::kGru, seqk::MinRnnKind::kGru, "mingru"},
                                         {seqk::CellKind::kLstm, seqk::MinRnnKind::kLstm, "minlstm"}}) {
    benchmark::RegisterBenchmark(row_name(cell, Pass::kForwardBackward, "seqk", kS5Shape).c_str(),
                                 skipping_errors(bench_seqk), cell, kS5Shape, Stacking{}, Pass::kForwardBackward)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(kMinTimeSeconds);
    benchmark::RegisterBenchmark(("s5_" + std::string(name) + "_fwdbwd/seqk/" + shape_name(kS5Shape)).c_str(),
                                 skipping_errors(bench_min_rnn), kind)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(kMinTimeSeconds);
  }
  // Claim S8.
  for (const auto& [mode, name] : {std::pair{S8Mode::kPadded, "padded"}, {S8Mode::kPacked, "packed"},
                                   {S8Mode::kBucketed, "bucketed"}}) {
    benchmark::RegisterBenchmark(("s8_lstm_fwd/" + std::string(name) + "/" + shape_name(kS8Shape)).c_str(),
                                 skipping_errors(bench_s8), mode)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(kMinTimeSeconds);
  }
#if SEQK_HAVE_VULKAN
  // Every cell on a GPU. A CPU device (lavapipe) is about a thousand times
  // slower: the LSTM only there, one iteration, one repetition (about 70 s
  // for its rows on 2 vCPUs).
  for (const vk::DeviceInfo& info : vulkan_devices()) {
    const bool cpu_device = info.type == vk::DeviceType::kCpu;
    for (const seqk::CellKind cell : kCells) {
      if (cpu_device && cell != seqk::CellKind::kLstm) continue;
      for (const Pass pass : {Pass::kForward, Pass::kForwardBackward}) {
        for (const RecurrentShape& shape : kStandardShapes) {
          auto* row = benchmark::RegisterBenchmark(
              row_name(cell, pass, "seqk-vulkan" + std::to_string(info.index), shape).c_str(),
              skipping_errors(bench_vulkan), info.index, cell, shape, pass);
          row->UseManualTime()->Unit(benchmark::kMillisecond);
          if (cpu_device) {
            row->Iterations(1)->Repetitions(1);
          } else {
            row->MinTime(kMinTimeSeconds);
          }
        }
      }
    }
  }
#endif
}

}  // namespace seqk_bench
