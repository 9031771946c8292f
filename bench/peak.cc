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
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999f);
  const auto a = hn::Set(d, 0.001f);
  auto acc0 = hn::Set(d, 0.0f), acc1 = hn::Set(d, 0.1f), acc2 = hn::Set(d, 0.2f), acc3 = hn::Set(d, 0.3f);
  auto acc4 = hn::Set(d, 0.4f), acc5 = hn::Set(d, 0.5f), acc6 = hn::Set(d, 0.6f), acc7 = hn::Set(d, 0.7f);
  auto acc8 = hn::Set(d, 0.8f), acc9 = hn::Set(d, 0.9f), acc10 = hn::Set(d, 1.0f), acc11 = hn::Set(d, 1.1f);
  for (int64_t i = 0; i < iterations; ++i) {
    acc0 = hn::MulAdd(acc0, m, a);
    acc1 = hn::MulAdd(acc1, m, a);
    acc2 = hn::MulAdd(acc2, m, a);
    acc3 = hn::MulAdd(acc3, m, a);
    acc4 = hn::MulAdd(acc4, m, a);
    acc5 = hn::MulAdd(acc5, m, a);
    acc6 = hn::MulAdd(acc6, m, a);
    acc7 = hn::MulAdd(acc7, m, a);
    acc8 = hn::MulAdd(acc8, m, a);
    acc9 = hn::MulAdd(acc9, m, a);
    acc10 = hn::MulAdd(acc10, m, a);
    acc11 = hn::MulAdd(acc11, m, a);
  }
  const auto sum = hn::Add(hn::Add(hn::Add(hn::Add(acc0, acc1), hn::Add(acc2, acc3)),
                                   hn::Add(hn::Add(acc4, acc5), hn::Add(acc6, acc7))),
                           hn::Add(hn::Add(acc8, acc9), hn::Add(acc10, acc11)));
  *sink = hn::GetLane(hn::SumOfLanes(d, sum));
  return iterations * 12 * static_cast<int64_t>(hn::Lanes(d)) * 2;
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
