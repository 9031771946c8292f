// What every benchmark JSON records about the machine and build it ran on
// (the "context" block), so results from several machines can be merged and
// each "% of peak" can be traced to the peak it was divided by.
#pragma once

#include <string>
#include <vector>

namespace seqk_bench {

struct TargetPeak {
  std::string target;  // Highway target name: "AVX3", "AVX2", ...
  double gflops;
};

struct MachinePeaks {
  double gflops;                       // on the target dispatch picks by default
  std::vector<TargetPeak> per_target;  // each available target, pinned in turn
};

// Measured on the first call (keep that call before any benchmark runs, so
// nothing else competes for the cores), then cached.
const MachinePeaks& machine_peaks();

// The measured peak of the named target, or the default peak when that
// target was not measured.
double peak_gflops_of_target(const std::string& target);

// Measures the peaks and adds them, the SIMD target, thread count, CPU model
// and commit to the benchmark context.
void add_machine_context();

}  // namespace seqk_bench
