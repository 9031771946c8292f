#include "bench/machine_context.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "bench/build_info.h"
#include "bench/peak.h"
#include "seqk/simd.h"
#include "seqk/thread_pool.h"

namespace seqk_bench {
namespace {

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

// SEQK_COMMIT lets a run from an exported tree (no .git) name its commit.
std::string commit() {
  const char* env = std::getenv("SEQK_COMMIT");
  return env != nullptr && *env != '\0' ? env : SEQK_BENCH_COMMIT;
}

// Each target pinned in turn, in a few rounds, keeping each target's best
// sample (measure_fma_peak already discounts time other processes hold the
// cores; frequency dips remain). The default peak is the active target's,
// so plain and pinned rows divide by the same number.
MachinePeaks measure_peaks() {
  constexpr int kRounds = 3;
  seqk::ThreadPool& pool = seqk::ThreadPool::global();
  const std::string active = seqk::active_simd_target().name;
  MachinePeaks peaks{0, {}};
  for (int round = 0; round < kRounds; ++round) {
    for (const seqk::SimdTarget& target : seqk::available_simd_targets()) {
      const seqk::ScopedSimdTarget pin(target.bits);
      // Keyed by the target the loop reports it ran on, so a pin that did
      // not take effect cannot mislabel a number.
      const FmaPeak peak = measure_fma_peak(pool, 0.05);
      auto same_target = [&](const TargetPeak& p) { return p.target == peak.target; };
      auto known = std::find_if(peaks.per_target.begin(), peaks.per_target.end(), same_target);
      if (known == peaks.per_target.end()) {
        peaks.per_target.push_back({peak.target, peak.gflops});
      } else {
        known->gflops = std::max(known->gflops, peak.gflops);
      }
    }
  }
  for (const TargetPeak& peak : peaks.per_target) {
    if (peak.target == active) peaks.gflops = peak.gflops;
  }
  return peaks;
}

}  // namespace

const MachinePeaks& machine_peaks() {
  static const MachinePeaks peaks = measure_peaks();
  return peaks;
}

double peak_gflops_of_target(const std::string& target) {
  for (const TargetPeak& peak : machine_peaks().per_target) {
    if (peak.target == target) return peak.gflops;
  }
  return machine_peaks().gflops;
}

void add_machine_context() {
  const MachinePeaks& peaks = machine_peaks();
  benchmark::AddCustomContext("fma_peak_gflops", std::to_string(peaks.gflops));
  for (const TargetPeak& peak : peaks.per_target) {
    benchmark::AddCustomContext("fma_peak_gflops_" + peak.target, std::to_string(peak.gflops));
  }
  benchmark::AddCustomContext("simd_target", seqk::active_simd_target().name);
  benchmark::AddCustomContext("threads", std::to_string(seqk::ThreadPool::global().num_threads()));
  benchmark::AddCustomContext("cpu_model", cpu_model());
  benchmark::AddCustomContext("commit", commit());
}

}  // namespace seqk_bench
