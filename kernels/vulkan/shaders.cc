// The SPIR-V of shaders/*.comp, compiled by glslc at build time (-mfmt=num:
// comma-separated words) and embedded here, looked up by shader name.
#include <string>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk::detail {
namespace {

const uint32_t kGemm[] = {
#include "gemm.spv.h"
};

}  // namespace

std::span<const uint32_t> shader_spirv(const std::string& name) {
  if (name == "gemm") return kGemm;
  seqk::detail::fail("vulkan: no embedded shader named '", name, "'");
}

}  // namespace seqk::vk::detail
