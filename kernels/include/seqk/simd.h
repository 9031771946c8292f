// Which SIMD target Highway's dynamic dispatch runs on, and a way to pin
// one (tests run every kernel on every target the CPU supports; benchmarks
// report the target with every result).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace seqk {

struct SimdTarget {
  int64_t bits;      // Highway's HWY_* target bit
  std::string name;  // "AVX3", "AVX2", "SSE4", ...
};

// Targets compiled into the library that this CPU supports, best first.
std::vector<SimdTarget> available_simd_targets();

// The target the kernels dispatch to now.
SimdTarget active_simd_target();

// Restricts dispatch to one target until the returned guard is destroyed.
// Throws seqk::Error if the target is not available. Not thread-safe: call
// it while no kernel is running.
class ScopedSimdTarget {
 public:
  explicit ScopedSimdTarget(int64_t target_bits);
  ~ScopedSimdTarget();
  ScopedSimdTarget(const ScopedSimdTarget&) = delete;
  ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;
};

}  // namespace seqk
