// The machine's measured fp32 FMA throughput: the denominator of every
// "% of peak" counter. Measured, not taken from a datasheet, because clocks,
// SMT siblings and how a VM maps vCPUs to cores decide what is attainable.
#pragma once

#include <string>

#include "seqk/thread_pool.h"

namespace seqk_bench {

struct FmaPeak {
  double gflops = 0;   // summed over the pool's threads, each timed by its own CPU time
  std::string target;  // the Highway target the FMA loop actually ran on
};

// Runs the FMA loop on every thread of `pool` for about `seconds`, on
// whatever target dispatch picks now (so a seqk::ScopedSimdTarget around the
// call measures that target's peak). One sample: callers keep the best of
// several, since other load can only make a sample slower.
FmaPeak measure_fma_peak(seqk::ThreadPool& pool, double seconds);

}  // namespace seqk_bench
