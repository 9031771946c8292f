// GPU GEMM entry points: check the operands against their buffers, then
// record dispatches of shaders/gemm.comp (one pipeline per tiling), splitting
// K into accumulating passes so that no invocation exceeds loop_budget() loop
// iterations.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace detail {
namespace {

constexpr int64_t kMaxIndex = std::numeric_limits<uint32_t>::max();

// The shader indexes with 32-bit unsigned integers: every element the
// operand can touch must lie inside its buffer and below 2^32.
void check_operand(const char* name, const Operand& op, int64_t rows, int64_t k) {
  require(op.buffer != nullptr, "vulkan gemm: ", name, " is null");
  require(op.offset >= 0 && op.row_stride >= 0 && op.k_stride >= 0, "vulkan gemm: ", name,
          " has a negative offset or stride");
  const int64_t last = op.offset + (rows - 1) * op.row_stride + (k - 1) * op.k_stride;
  require(last < static_cast<int64_t>(op.buffer->size()) && last <= kMaxIndex, "vulkan gemm: ", name, " (", rows, " x ",
          k, ", offset ", op.offset, ", strides ", op.row_stride, ", ", op.k_stride, ") reaches element ", last,
          " of a buffer of ", op.buffer->size());
}

// Loop iterations one invocation runs per K step of `depth`, and outside the
// K loop; mirrors the loops of gemm.comp.
uint64_t iterations_per_step(const GemmTiling& t) {
  const uint64_t threads = (t.tile / t.thread_tile) * (t.tile / t.thread_tile);
  const uint64_t staged = (uint64_t{t.depth} * t.tile + threads - 1) / threads;
  const uint64_t tt = t.thread_tile;
  return 1 + 2 * staged + t.depth * (1 + 2 * tt + tt * (tt + 1));
}

}  // namespace

void gemm_strided(Stream& stream, const Operand& a, const Operand& b, Buffer& c, int64_t c_offset,
                  int64_t c_row_stride, int64_t m, int64_t n, int64_t k, const Buffer* bias, bool accumulate,
                  GemmTiling tiling) {
  require(m > 0 && n > 0 && k > 0, "vulkan gemm: m, n, k must be > 0, got m=", m, " n=", n, " k=", k);
  check_operand("a", a, m, k);
  check_operand("b", b, n, k);
  require(c_offset >= 0 && c_row_stride >= n, "vulkan gemm: c row stride ", c_row_stride, " < n = ", n);
  const int64_t c_last = c_offset + (m - 1) * c_row_stride + n - 1;
  require(c_last < static_cast<int64_t>(c.size()) && c_last <= kMaxIndex, "vulkan gemm: c (", m, " x ", n,
          ", offset ", c_offset, ", row stride ", c_row_stride, ") reaches element ", c_last, " of a buffer of ",
          c.size());
  require(bias == nullptr || static_cast<int64_t>(bias->size()) >= n, "vulkan gemm: bias holds ",
          bias ? bias->size() : 0, " floats, expected n = ", n);
  require(&c != a.buffer && &c != b.buffer && &c != bias, "vulkan gemm: c must not be an input");

  Device::Impl& d = stream.device().impl();
  auto fits = [&](const GemmTiling& t) {
    const uint64_t threads = uint64_t{t.tile / t.thread_tile} * (t.tile / t.thread_tile);
    return threads <= d.info.max_workgroup_invocations && threads <= d.limits.maxComputeWorkGroupSize[0] &&
           2ull * t.depth * (t.tile + 1) * sizeof(float) <= d.info.max_shared_memory;
  };
  if (tiling.tile == 0) {
    // 128 x 128 blocks (8 x 8 per invocation) where C has room for enough of
    // them to fill a large GPU (on an H100, 27 TFLOP/s against 21 with 64 x 64
    // blocks at the LSTM's B = 64 input projection); else 64 x 64 blocks,
    // which keep four times as many workgroups busy; 32 x 32 on devices too
    // small for either.
    const int64_t large_blocks = (m + 127) / 128 * ((n + 127) / 128);
    const GemmTiling large{128, 8, 16}, medium{64, 4, 16}, small{32, 4, 16};
    tiling = large_blocks >= 256 && fits(large) ? large : fits(medium) ? medium : small;
  }
  const uint32_t tile = tiling.tile, thread_tile = tiling.thread_tile, depth = tiling.depth;
  require(tile >= 1 && thread_tile >= 1 && depth >= 1 && tile % thread_tile == 0 && tile <= 256 && depth <= 64,
          "vulkan gemm: bad tiling (tile ", tile, ", thread tile ", thread_tile, ", depth ", depth, ")");
  const uint32_t threads = (tile / thread_tile) * (tile / thread_tile);
  require(fits(tiling), "vulkan gemm: tile ", tile, " / thread tile ", thread_tile,
          " does not fit the device (", d.info.max_workgroup_invocations, " invocations per workgroup, ",
          d.info.max_shared_memory, " bytes of shared memory)");
  // Workgroup grids beyond the device's limit: the rows go in several dispatches.
  const int64_t groups_x = (n + tile - 1) / tile;
  require(groups_x <= d.limits.maxComputeWorkGroupCount[0], "vulkan gemm: n = ", n, " needs ", groups_x,
          " workgroups across, more than the device allows");
  const int64_t rows_per_dispatch = int64_t{d.limits.maxComputeWorkGroupCount[1]} * tile;
  const uint64_t per_step = iterations_per_step(tiling);
  const uint64_t fixed = uint64_t{thread_tile} * (2 * thread_tile + 1);
  const uint64_t budget = loop_budget(d);
  require(per_step + fixed < budget, "vulkan gemm: tiling too large for the loop budget");
  const int64_t k_pass = static_cast<int64_t>(std::min<uint64_t>((budget - fixed) / per_step, kMaxIndex)) * depth;

  struct Push {
    uint32_t m, n, k;
    uint32_t a_offset, a_row_stride, a_k_stride;
    uint32_t b_offset, b_row_stride, b_k_stride;
    uint32_t c_offset, c_row_stride;
    uint32_t flags;
  };
  // Without a bias, binding 3 gets `a`: it must hold a valid buffer but is never read.
  const Buffer* buffers[] = {a.buffer, b.buffer, &c, bias ? bias : a.buffer};
  const uint32_t spec[] = {threads, tile, thread_tile, depth};
  Kernel& kernel = d.kernel("gemm", 4, 0b100, sizeof(Push));
  for (int64_t m0 = 0; m0 < m; m0 += rows_per_dispatch) {
    const int64_t rows = std::min(rows_per_dispatch, m - m0);
    for (int64_t k0 = 0; k0 < k; k0 += k_pass) {
      const bool first = k0 == 0;
      const Push push{static_cast<uint32_t>(rows),
                      static_cast<uint32_t>(n),
                      static_cast<uint32_t>(std::min(k_pass, k - k0)),
                      static_cast<uint32_t>(a.offset + m0 * a.row_stride + k0 * a.k_stride),
                      static_cast<uint32_t>(a.row_stride),
                      static_cast<uint32_t>(a.k_stride),
                      static_cast<uint32_t>(b.offset + k0 * b.k_stride),
                      static_cast<uint32_t>(b.row_stride),
                      static_cast<uint32_t>(b.k_stride),
                      static_cast<uint32_t>(c_offset + m0 * c_row_stride),
                      static_cast<uint32_t>(c_row_stride),
                      (first && bias ? 1u : 0u) | (!first || accumulate ? 2u : 0u)};
      dispatch(stream, kernel, spec, buffers, &push, static_cast<uint32_t>(groups_x),
               static_cast<uint32_t>((rows + tile - 1) / tile), 1);
    }
  }
}

}  // namespace detail

void gemm(Stream& stream, const Buffer& a, const Buffer& b, Buffer& c, int64_t m, int64_t n, int64_t k,
          const Buffer* bias, uint32_t tile) {
  require(m > 0 && n > 0 && k > 0, "vulkan gemm: m, n, k must be > 0, got m=", m, " n=", n, " k=", k);
  require(static_cast<int64_t>(a.size()) == m * k, "vulkan gemm: a holds ", a.size(), " floats, expected m*k = ", m,
          "*", k, " = ", m * k);
  require(static_cast<int64_t>(b.size()) == n * k, "vulkan gemm: b holds ", b.size(), " floats, expected n*k = ", n,
          "*", k, " = ", n * k);
  require(static_cast<int64_t>(c.size()) == m * n, "vulkan gemm: c holds ", c.size(), " floats, expected m*n = ", m,
          "*", n, " = ", m * n);
  require(bias == nullptr || static_cast<int64_t>(bias->size()) == n, "vulkan gemm: bias holds ",
          bias ? bias->size() : 0, " floats, expected n = ", n);
  // Up to 16 x 16 invocations, each with a register tile of tile / 16 (tile 0: chosen by shape).
  const detail::GemmTiling tiling{tile, std::max(1u, tile / 16), 16};
  detail::gemm_strided(stream, {&a, 0, k, 1}, {&b, 0, k, 1}, c, 0, n, m, n, k, bias, false, tiling);
}

}  // namespace seqk::vk
