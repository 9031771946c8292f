// Claim S2's attention half: multi-head scaled dot-product attention (one
// sequence, 8 heads of 64) over n from 128 to 16384, causal and not, in the
// tiled (flash) form and in the naive form that materialises the n×n
// probabilities. Each row reports GFLOP/s counting only the unmasked work and
// its percentage of the FMA peak measured in the same run, a Complexity fit
// over n, and the memory the call needed beyond its inputs and outputs,
// measured as the growth of the process's peak resident set. On every Vulkan
// GPU the same rows run with the data resident there, timed on the GPU.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "bench/machine_context.h"
#include "seqk/attention.h"
#include "seqk/thread_pool.h"

#if SEQK_HAVE_VULKAN
#include <memory>

#include "bench/vulkan_devices.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_attention.h"
#endif

namespace seqk_bench {
namespace {

constexpr int64_t kHeads = 8, kHeadSize = 64;
constexpr double kMinTimeSeconds = 0.2;
// The naive form's probabilities take heads·n² floats: 2 GiB at n = 8192.
constexpr int64_t kNaiveMaxLength = 8192;

enum class Form { kTiled, kNaive };

// Query-key pairs that are not masked, per head.
double visible_pairs(int64_t n, bool causal) {
  const double length = static_cast<double>(n);
  return causal ? length * (length + 1) / 2 : length * length;
}

// Useful FLOPs per call: the forward's two products (Q·Kᵀ and P·V) cost
// 2·dh each per visible pair; the backward's five (recomputed scores, dV,
// dP, dQ, dK) 10·dh, FlashAttention's convention. Work a kernel spends on
// masked pairs or on recomputing twice does not count.
double attention_flops(int64_t n, bool causal, bool backward) {
  return (backward ? 10.0 : 4.0) * kHeadSize * kHeads * visible_pairs(n, causal);
}

// Resident-set readings from /proc: VmRSS now, and VmHWM, its peak since
// the last reset (writing "5" to clear_refs resets it, Linux ≥ 4.0).
int64_t proc_status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

bool reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

struct Problem {
  explicit Problem(int64_t length, bool causal_mask)
      : n(length),
        causal(causal_mask),
        q(uniform_random(kHeads * n * kHeadSize, 1.0f, 1)),
        k(uniform_random(q.size(), 1.0f, 2)),
        v(uniform_random(q.size(), 1.0f, 3)),
        dout(uniform_random(q.size(), 1.0f, 4)),
        out(q.size()),
        dq(q.size()),
        dk(q.size()),
        dv(q.size()) {}
  seqk::AttentionInputs inputs() const {
    return {view(q), view(k), view(v), causal, {}, {}};
  }
  seqk::View view(std::vector<float>& data) const { return {data.data(), {1, kHeads, n, kHeadSize}}; }
  seqk::ConstView view(const std::vector<float>& data) const { return {data.data(), {1, kHeads, n, kHeadSize}}; }

  int64_t n;
  bool causal;
  std::vector<float> q, k, v, dout, out, dq, dk, dv;
};

// The form's own state between forward and backward: the log-sum-exp rows
// (tiled) or the probabilities (naive).
struct FormState {
  FormState(Form form, int64_t n) : saved(form == Form::kTiled ? kHeads * n : kHeads * n * n) {}
  std::vector<float> saved;
};

void run_forward(Problem& p, Form form, FormState& state, seqk::ThreadPool* pool) {
  const int64_t n = p.n;
  if (form == Form::kTiled) {
    seqk::attention_forward(p.inputs(), p.view(p.out), {state.saved.data(), {1, kHeads, n}}, pool);
  } else {
    seqk::attention_naive_forward(p.inputs(), p.view(p.out), {state.saved.data(), {1, kHeads, n, n}}, pool);
  }
}

void run_backward(Problem& p, Form form, const FormState& state, seqk::ThreadPool* pool) {
  const int64_t n = p.n;
  const seqk::AttentionGrads grads{p.view(p.dq), p.view(p.dk), p.view(p.dv)};
  if (form == Form::kTiled) {
    seqk::attention_backward(p.inputs(), p.view(p.out), {state.saved.data(), {1, kHeads, n}}, p.view(p.dout), grads,
                             pool);
  } else {
    seqk::attention_naive_backward(p.inputs(), {state.saved.data(), {1, kHeads, n, n}}, p.view(p.dout), grads, pool);
  }
}

void bench_attention(benchmark::State& state, Form form, bool causal, bool backward) {
  Problem p(state.range(0), causal);
  seqk::ThreadPool* pool = &seqk::ThreadPool::global();

  // The memory a training step's calls need beyond the inputs and outputs:
  // the growth of the peak resident set from here to the end of the timed
  // loop. Allocations the heap serves from memory it already holds do not
  // show, so the small buffers of the tiled form read as 0; the naive form's
  // n² probabilities always do.
  const bool peak_reset = reset_peak_rss();
  const int64_t before_kib = proc_status_kib("VmRSS");
  FormState form_state(form, p.n);
  if (backward) run_forward(p, form, form_state, pool);
  const double seconds = time_loop(state, [&] {
    if (backward) {
      run_backward(p, form, form_state, pool);
    } else {
      run_forward(p, form, form_state, pool);
    }
  });
  if (peak_reset && before_kib >= 0)
    state.counters["extra_MiB"] = static_cast<double>(proc_status_kib("VmHWM") - before_kib) / 1024.0;
  benchmark::DoNotOptimize(p.out.data());
  benchmark::DoNotOptimize(p.dq.data());
  report_throughput(state, attention_flops(p.n, causal, backward), seconds, machine_peaks().gflops);
  state.SetComplexityN(p.n);
}


#if SEQK_HAVE_VULKAN
// The same problem on one Vulkan device, resident there; the row's time is
// the GPU time of the submit (timestamps). The backward row times the
// backward alone, from one forward kept for it, as on the CPU.
void bench_vulkan_attention(benchmark::State& state, int device_index, Form form, bool causal, bool backward) {
  const int64_t n = state.range(0), size = kHeads * n * kHeadSize;
  seqk::vk::Device& device = vulkan_device(device_index);
  auto buffer = [&](uint64_t seed) {
    auto b = std::make_unique<seqk::vk::Buffer>(device, size);
    b->upload(uniform_random(size, 1.0f, seed));
    return b;
  };
  const auto q = buffer(1), k = buffer(2), v = buffer(3), dout = buffer(4);
  seqk::vk::Buffer out(device, size), dq(device, size), dk(device, size), dv(device, size),
      saved(device, form == Form::kTiled ? kHeads * n : kHeads * n * n);  // lse, or the probabilities
  const seqk::vk::AttentionBuffers in{1, kHeads, n, n, kHeadSize, q.get(), k.get(), v.get(), causal};
  const seqk::vk::AttentionGradBuffers grads{&dq, &dk, &dv};
  seqk::vk::Stream stream(device, /*timestamps=*/true);
  auto forward = [&] {
    if (form == Form::kTiled) {
      seqk::vk::attention_forward(stream, in, out, saved);
    } else {
      seqk::vk::attention_naive_forward(stream, in, out, saved);
    }
  };
  forward();  // what the backward reads
  stream.submit();
  const double seconds = time_gpu_loop(state, stream, [&] {
    if (!backward) return forward();
    if (form == Form::kTiled) {
      seqk::vk::attention_backward(stream, in, out, saved, *dout, grads);
    } else {
      seqk::vk::attention_naive_backward(stream, in, saved, *dout, grads);
    }
  });
  state.counters["GFLOP/s"] = attention_flops(n, causal, backward) * static_cast<double>(state.iterations()) /
                              seconds * 1e-9;
  state.SetComplexityN(n);
}
#endif

}  // namespace

void register_benchmarks() {
  for (const Form form : {Form::kTiled, Form::kNaive}) {
    for (const bool backward : {false, true}) {
      for (const bool causal : {false, true}) {
        const std::string name = std::string(backward ? "attn_bwd/" : "attn_fwd/") +
                                 (form == Form::kTiled ? "tiled" : "naive") + "/H:" + std::to_string(kHeads) +
                                 "/dh:" + std::to_string(kHeadSize) + "/causal:" + (causal ? "1" : "0");
        benchmark::RegisterBenchmark(name.c_str(), skipping_errors(bench_attention), form, causal, backward)
            ->ArgName("n")
            ->RangeMultiplier(2)
            ->Range(128, form == Form::kTiled ? 16384 : kNaiveMaxLength)
            ->Complexity(benchmark::oNSquared)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(kMinTimeSeconds);
      }
    }
  }
#if SEQK_HAVE_VULKAN
  // GPUs only: lavapipe would take minutes per row. Named like the CPU rows,
  // e.g. attn_fwd/vulkan0-tiled/H:8/dh:64/causal:1/n:4096.
  for (const seqk::vk::DeviceInfo& info : vulkan_devices()) {
    if (info.type == seqk::vk::DeviceType::kCpu || !info.timestamps) continue;
    for (const Form form : {Form::kTiled, Form::kNaive}) {
      for (const bool backward : {false, true}) {
        for (const bool causal : {false, true}) {
          const std::string name = std::string(backward ? "attn_bwd/" : "attn_fwd/") + "vulkan" +
                                   std::to_string(info.index) + (form == Form::kTiled ? "-tiled" : "-naive") +
                                   "/H:" + std::to_string(kHeads) + "/dh:" + std::to_string(kHeadSize) +
                                   "/causal:" + (causal ? "1" : "0");
          benchmark::RegisterBenchmark(name.c_str(), skipping_errors(bench_vulkan_attention), info.index, form,
                                       causal, backward)
              ->ArgName("n")
              ->RangeMultiplier(2)
              ->Range(128, form == Form::kTiled ? 16384 : kNaiveMaxLength)
              ->Complexity(benchmark::oNSquared)
              ->UseManualTime()
              ->Unit(benchmark::kMillisecond)
              ->MinTime(kMinTimeSeconds);
        }
      }
    }
  }
#endif
}

}  // namespace seqk_bench
