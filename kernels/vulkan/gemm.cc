// GPU GEMM entry point: checks shapes against the buffers, then records one
// dispatch of shaders/gemm.comp (specialized on the tile size).
#include <cstdint>
#include <limits>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {

void gemm(Stream& stream, const Buffer& a, const Buffer& b, Buffer& c, int64_t m, int64_t n, int64_t k,
          const Buffer* bias, uint32_t tile) {
  require(m > 0 && n > 0 && k > 0, "vulkan gemm: m, n, k must be > 0, got m=", m, " n=", n, " k=", k);
  // The shader indexes with 32-bit unsigned integers.
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  require(m <= kMax / k && n <= kMax / k && m <= kMax / n, "vulkan gemm: m=", m, " n=", n, " k=", k,
          " overflow 32-bit indexing");
  require(static_cast<int64_t>(a.size()) == m * k, "vulkan gemm: a holds ", a.size(), " floats, expected m*k = ", m,
          "*", k, " = ", m * k);
  require(static_cast<int64_t>(b.size()) == n * k, "vulkan gemm: b holds ", b.size(), " floats, expected n*k = ", n,
          "*", k, " = ", n * k);
  require(static_cast<int64_t>(c.size()) == m * n, "vulkan gemm: c holds ", c.size(), " floats, expected m*n = ", m,
          "*", n, " = ", m * n);
  require(bias == nullptr || static_cast<int64_t>(bias->size()) == n, "vulkan gemm: bias holds ",
          bias ? bias->size() : 0, " floats, expected n = ", n);
  require(&c != &a && &c != &b && &c != bias, "vulkan gemm: c must not be an input");

  Device::Impl& d = stream.device().impl();
  require(tile >= 1 && tile <= 64 && static_cast<uint64_t>(tile) * tile <= d.info.max_workgroup_invocations &&
              2ull * tile * tile * sizeof(float) <= d.info.max_shared_memory,
          "vulkan gemm: tile=", tile, " does not fit the device (", d.info.max_workgroup_invocations,
          " invocations per workgroup, ", d.info.max_shared_memory, " bytes of shared memory)");
  require(tile <= d.limits.maxComputeWorkGroupSize[0] && tile <= d.limits.maxComputeWorkGroupSize[1],
          "vulkan gemm: tile=", tile, " exceeds maxComputeWorkGroupSize");

  struct Push {
    uint32_t m, n, k, has_bias;
  } push{static_cast<uint32_t>(m), static_cast<uint32_t>(n), static_cast<uint32_t>(k), bias ? 1u : 0u};
  // Without a bias, binding 3 gets `a`: it must hold a valid buffer but is never read.
  const Buffer* buffers[] = {&a, &b, &c, bias ? bias : &a};
  const uint32_t spec[] = {tile, tile, tile};  // local_size_x, local_size_y, TILE
  detail::Kernel& kernel = d.kernel("gemm", 4, sizeof(Push));
  detail::dispatch(stream, kernel, spec, buffers, &push, static_cast<uint32_t>((n + tile - 1) / tile),
                   static_cast<uint32_t>((m + tile - 1) / tile), 1);
}

}  // namespace seqk::vk
