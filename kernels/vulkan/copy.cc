// Copy, fill and row gathers on the device (shaders/copy.comp,
// shaders/gather_rows.comp), recorded like any other dispatch so the
// stream's barriers order them with the kernels around them.
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

void gather_rows(Stream& stream, const Buffer& src, int64_t src_stride, int64_t src_col, Buffer& dst,
                 int64_t dst_stride, int64_t dst_col, int64_t rows, int64_t width, const Buffer* indices,
                 bool accumulate) {
  require(rows > 0 && width > 0 && src_col >= 0 && dst_col >= 0 && src_col + width <= src_stride &&
              dst_col + width <= dst_stride,
          "vulkan gather_rows: bad shape (", rows, " rows of ", width, ", columns ", src_col, " / ", dst_col,
          ", strides ", src_stride, " / ", dst_stride, ")");
  require(rows * src_stride <= static_cast<int64_t>(src.size()) && rows * dst_stride <= static_cast<int64_t>(dst.size()),
          "vulkan gather_rows: ", rows, " rows do not fit the buffers");
  require(indices == nullptr || static_cast<int64_t>(indices->size()) >= rows,
          "vulkan gather_rows: fewer indices than rows");
  require(&src != &dst, "vulkan gather_rows: source and destination are the same buffer");
  Device::Impl& d = stream.device().impl();
  struct Push {
    uint32_t rows, width, first_row;
    uint32_t src_stride, src_col, dst_stride, dst_col;
    uint32_t flags;
  };
  const Buffer* buffers[] = {&src, &dst, indices ? indices : &src};
  const uint32_t spec[] = {64};
  Kernel& kernel = d.kernel("gather_rows", 3, 0b10, sizeof(Push));
  const int64_t per_dispatch = d.limits.maxComputeWorkGroupCount[1];
  for (int64_t first = 0; first < rows; first += per_dispatch) {
    const Push push{static_cast<uint32_t>(rows),       static_cast<uint32_t>(width),
                    static_cast<uint32_t>(first),      static_cast<uint32_t>(src_stride),
                    static_cast<uint32_t>(src_col),    static_cast<uint32_t>(dst_stride),
                    static_cast<uint32_t>(dst_col),    (indices ? 1u : 0u) | (accumulate ? 2u : 0u)};
    dispatch(stream, kernel, spec, buffers, &push, static_cast<uint32_t>((width + 63) / 64),
             static_cast<uint32_t>(std::min(per_dispatch, rows - first)), 1);
  }
}

}  // namespace seqk::vk::detail
