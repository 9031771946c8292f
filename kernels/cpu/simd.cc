// The SIMD target dispatch would choose, found by dispatching a function
// that returns HWY_TARGET: that is the same decision the kernels get.
#include "seqk/simd.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
int64_t CompiledTarget() { return HWY_TARGET; }
}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "seqk/error.h"

namespace seqk {

HWY_EXPORT(CompiledTarget);

namespace {
// Captured before any ScopedSimdTarget narrows what Highway reports.
const std::vector<SimdTarget>& all_targets() {
  static const std::vector<SimdTarget> targets = [] {
    std::vector<SimdTarget> list;
    for (int64_t bits : hwy::SupportedAndGeneratedTargets()) list.push_back({bits, hwy::TargetName(bits)});
    return list;
  }();
  return targets;
}
}  // namespace

std::vector<SimdTarget> available_simd_targets() { return all_targets(); }

SimdTarget active_simd_target() {
  const int64_t bits = HWY_DYNAMIC_DISPATCH(CompiledTarget)();
  return {bits, hwy::TargetName(bits)};
}

ScopedSimdTarget::ScopedSimdTarget(int64_t target_bits) {
  bool available = false;
  for (const SimdTarget& target : all_targets()) available |= target.bits == target_bits;
  require(available, "SIMD target ", hwy::TargetName(target_bits), " is not available on this CPU/build");
  hwy::SetSupportedTargetsForTest(target_bits);
}

ScopedSimdTarget::~ScopedSimdTarget() { hwy::SetSupportedTargetsForTest(0); }

}  // namespace seqk
#endif  // HWY_ONCE
