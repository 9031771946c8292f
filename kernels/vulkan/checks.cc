// The argument checks every Vulkan entry point runs before it records
// anything (kernels/vulkan/runtime.h).
#include <limits>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk::detail {

void check_buffers(const Device::Impl& device, const char* who, std::span<const BufferArg> args) {
  for (const BufferArg& arg : args) {
    if (arg.buffer == nullptr) {
      require(arg.optional, who, arg.name, " is null");
      continue;
    }
    require(static_cast<int64_t>(arg.buffer->size()) == arg.size, who, arg.name, " holds ", arg.buffer->size(),
            " floats, expected ", arg.size);
    require(arg.buffer->impl().device == &device, who, arg.name, " belongs to another device");
  }
  for (const BufferArg& out : args) {
    if (!out.written || out.buffer == nullptr) continue;
    for (const BufferArg& other : args) {
      require(&other == &out || other.buffer != out.buffer, who, out.name, " and ", other.name,
              " are the same buffer; outputs must not share a buffer with any other argument");
    }
  }
}

bool fits_u32(std::initializer_list<int64_t> factors) {
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  int64_t product = 1;
  for (int64_t factor : factors) {
    if (factor > kMax / product) return false;
    product *= factor;
  }
  return true;
}

}  // namespace seqk::vk::detail
