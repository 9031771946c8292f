// Copy and fill on the device (shaders/copy.comp), recorded like any other
// dispatch so the stream's barriers order them with the kernels around them.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk::detail {
namespace {

constexpr uint32_t kGroupSize = 256;

struct Push {
  uint32_t count, src_offset, dst_offset, fill;
  float value;
};

// One invocation per element over a 2-D grid (x is limited to 65,535 groups
// on many devices).
void record(Stream& stream, const Buffer& src, Buffer& dst, const Push& push) {
  Device::Impl& d = stream.device().impl();
  const uint64_t groups = (uint64_t{push.count} + kGroupSize - 1) / kGroupSize;
  const auto groups_x = static_cast<uint32_t>(std::min<uint64_t>(groups, d.limits.maxComputeWorkGroupCount[0]));
  const auto groups_y = static_cast<uint32_t>((groups + groups_x - 1) / groups_x);
  const Buffer* buffers[] = {&src, &dst};
  const uint32_t spec[] = {kGroupSize};
  dispatch(stream, d.kernel("copy", 2, 0b10, sizeof(Push)), spec, buffers, &push, groups_x, groups_y, 1);
}

}  // namespace

void copy(Stream& stream, const Buffer& src, int64_t src_offset, Buffer& dst, int64_t dst_offset, int64_t count) {
  require(count > 0 && src_offset >= 0 && dst_offset >= 0, "vulkan copy: count ", count, ", offsets ", src_offset,
          ", ", dst_offset);
  require(src_offset + count <= static_cast<int64_t>(src.size()) &&
              dst_offset + count <= static_cast<int64_t>(dst.size()),
          "vulkan copy: ", count, " floats from offset ", src_offset, " of ", src.size(), " to offset ", dst_offset,
          " of ", dst.size(), " is out of range");
  require(&src != &dst, "vulkan copy: source and destination are the same buffer");
  record(stream, src, dst,
         {static_cast<uint32_t>(count), static_cast<uint32_t>(src_offset), static_cast<uint32_t>(dst_offset), 0, 0.0f});
}

void fill(Stream& stream, Buffer& dst, float value) {
  // The source binding must hold a valid buffer; the shader does not read it.
  record(stream, dst, dst, {static_cast<uint32_t>(dst.size()), 0, 0, 1, value});
}

}  // namespace seqk::vk::detail
