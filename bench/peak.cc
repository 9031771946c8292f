// FMA-throughput loop compiled for every Highway target, dispatched at run
// time like the kernels, so each target's peak is measured with its own
// vector width.
#include "bench/peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "bench/peak.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace seqk_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 12 independent accumulator chains cover FMA latency x issue width on
// current x86 and Arm cores (4 cycles x 2 pipes = 8 needed) while leaving
// room for the two operands in 16-register files (SSE4, AVX2), so nothing
// spills. acc = acc * m + a converges to a / (1 - m): no overflow, no
// denormals. Returns the flops done (2 per lane per FMA); the accumulators'
// sum goes to `sink` so the loop cannot be optimised away.
int64_t FmaLoop(int64_t iterations, float* sink) {
  constexpr int kChains = 12;
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const V m = hn::Set(d, 0.999f);
  const V a = hn::Set(d, 0.001f);
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = hn::Set(d, 0.1f * static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = hn::MulAdd(acc[c], m, a);
  V sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = hn::Add(sum, acc[c]);
  *sink = hn::GetLane(hn::SumOfLanes(d, sum));
  return iterations * kChains * static_cast<int64_t>(hn::Lanes(d)) * 2;
}

int64_t FmaLoopTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace seqk_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk_bench {

HWY_EXPORT(FmaLoop);
HWY_EXPORT(FmaLoopTarget);

namespace {

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

struct FmaRun {
  double wall_seconds;
  double gflops;
};

// One run of `iterations` loop rounds on every pool thread. The rate is the
// sum of each thread's flops over its own CPU time, not over wall time: on a
// shared machine another process can hold a core for seconds, which would
// halve a wall-clock peak, while a thread's CPU-time rate is what its core
// does when it runs. (If two pool threads were SMT siblings that the OS
// never ran at the same time, this would overstate the peak.)
FmaRun run_fma(seqk::ThreadPool& pool, int64_t iterations) {
  std::vector<double> thread_gflops(static_cast<size_t>(pool.num_threads()));
  std::vector<float> sinks(thread_gflops.size());
  const auto start = std::chrono::steady_clock::now();
  pool.run([&](int thread, int) {
    const double cpu_start = thread_cpu_seconds();
    const int64_t flops = HWY_DYNAMIC_DISPATCH(FmaLoop)(iterations, &sinks[thread]);
    thread_gflops[thread] = static_cast<double>(flops) / (thread_cpu_seconds() - cpu_start) * 1e-9;
  });
  const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
  double gflops = 0;
  for (double g : thread_gflops) gflops += g;
  return {wall.count(), gflops};
}

}  // namespace

FmaPeak measure_fma_peak(seqk::ThreadPool& pool, double seconds) {
  // Grow the round count until one run is long enough to time, then scale
  // it to the requested duration.
  int64_t iterations = 1 << 14;
  double wall_seconds = run_fma(pool, iterations).wall_seconds;
  while (wall_seconds < seconds / 10) {
    iterations *= 4;
    wall_seconds = run_fma(pool, iterations).wall_seconds;
  }
  iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * seconds / wall_seconds));
  return {run_fma(pool, iterations).gflops, hwy::TargetName(HWY_DYNAMIC_DISPATCH(FmaLoopTarget)())};
}

}  // namespace seqk_bench
#endif  // HWY_ONCE
