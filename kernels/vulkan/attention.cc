// Attention on Vulkan (seqk/vulkan_attention.h): the argument checks, the
// walks split to fit the device's loop budget, and the dispatches of
// shaders/attention_*.comp (tiled form) or of the GEMM and the softmax
// shaders (naive form), recorded in order on one stream.
#include "seqk/vulkan_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/attention.h"
#include "seqk/error.h"

namespace seqk::vk {

using detail::BufferArg;
using detail::check_buffers;
namespace {

// Push-constant flags (shaders/attention.glsl).
constexpr uint32_t kCausal = 1, kHasLengths = 2, kFirst = 4;

// Forward and dq: query rows per workgroup (one invocation each), keys staged
// per step. dk/dv: keys per workgroup, queries staged per step. Blocks of 16
// staged rows keep the shared tiles of dh = 128 at 16 KiB.
constexpr uint32_t kRowsPerGroup = 64, kStagedRows = 16;
// Invocations sharing one row of the naive form's softmax (a power of two).
constexpr uint32_t kRowThreads = 64;

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// What every entry point checks before recording anything.
struct Problem {
  int64_t B, H, Lq, Lk, dh;
  float scale;
  uint32_t flags;  // kCausal, kHasLengths

  // Floats of each tensor; formed only once the sizes are checked.
  int64_t q_size() const { return B * H * Lq * dh; }
  int64_t k_size() const { return B * H * Lk * dh; }
  int64_t lse_size() const { return B * H * Lq; }
  int64_t probs_size() const { return B * H * Lq * Lk; }
};

// materialises_probs: the naive form, which indexes (B, H, Lq, Lk) probabilities.
Problem check_problem(const Device::Impl& d, const AttentionBuffers& in, bool materialises_probs) {
  const int64_t B = in.batch, H = in.heads, Lq = in.queries, Lk = in.keys, dh = in.head_size;
  require(B > 0 && H > 0 && Lq > 0 && Lk > 0 && dh > 0, "vulkan attention: B, H, Lq, Lk and dh must be > 0, got B = ",
          B, ", H = ", H, ", Lq = ", Lq, ", Lk = ", Lk, ", dh = ", dh);
  require(dh <= kAttentionMaxHeadSize, "vulkan attention: dh = ", dh, " exceeds ", kAttentionMaxHeadSize);
  // The CPU's limit, with or without key lengths, so both backends take the
  // same problems; here the shaders read key lengths as floats (exact up to
  // 2^24) and form the causal mask's ends as signed 32-bit ints.
  require(Lk <= kAttentionMaxKeys, "vulkan attention: Lk = ", Lk, " exceeds 2^24 = ", kAttentionMaxKeys,
          " (the CPU's limit; key lengths reach the shaders as floats, exact only up to 2^24)");
  // i + Lk − Lq + 1 in signed 32-bit (shaders/attention.glsl) is exact for
  // i < Lq only while Lq fits an int.
  require(Lq <= std::numeric_limits<int32_t>::max(), "vulkan attention: Lq = ", Lq,
          " exceeds 2^31 - 1 (the shaders form the causal mask's ends as signed 32-bit ints)");
  // 32-bit indexing in the shaders: of q, k, v and, in the naive form, of
  // the probabilities.
  constexpr int64_t kMaxIndex = std::numeric_limits<uint32_t>::max();
  const int64_t row_size = materialises_probs ? std::max(dh, Lk) : dh;
  // H against kMaxIndex / B first, so that B·H is formed only when it fits.
  require(H <= kMaxIndex / B && B * H <= kMaxIndex / std::max(Lq, Lk) &&
              B * H * std::max(Lq, Lk) <= kMaxIndex / row_size,
          "vulkan attention: B = ", B, ", H = ", H, ", Lq = ", Lq, ", Lk = ", Lk, ", dh = ", dh,
          " exceed 32-bit indexing", materialises_probs ? " of the probabilities" : "");
  require(B * H <= d.limits.maxComputeWorkGroupCount[1] &&
              static_cast<int64_t>(ceil_div(std::max(Lq, Lk), kRowsPerGroup)) <= d.limits.maxComputeWorkGroupCount[0],
          "vulkan attention: B·H = ", B * H, " heads of up to ", std::max(Lq, Lk),
          " rows need more workgroups than the device allows");
  const float scale = in.scale.value_or(1.0f / std::sqrt(static_cast<float>(dh)));
  require(std::isfinite(scale), "vulkan attention: scale must be finite, got ", scale);
  if (!in.key_lengths.empty()) {
    require(static_cast<int64_t>(in.key_lengths.size()) == B, "vulkan attention: key_lengths has ",
            in.key_lengths.size(), " entries, expected one per batch row (", B, ")");
    for (int64_t b = 0; b < B; ++b) {
      require(in.key_lengths[b] >= 0 && in.key_lengths[b] <= Lk, "vulkan attention: key_lengths[", b, "] = ",
              in.key_lengths[b], " is outside [0, Lk = ", Lk, "]");
    }
  }
  return {B, H, Lq, Lk, dh, scale, (in.causal ? kCausal : 0) | (in.key_lengths.empty() ? 0 : kHasLengths)};
}

// The key lengths as floats on the device, alive until the stream has run;
// without them, `q` is bound in their place (never read).
const Buffer* key_lengths_buffer(Stream& stream, const AttentionBuffers& in) {
  if (in.key_lengths.empty()) return in.q;
  auto lengths = std::make_shared<Buffer>(stream.device(), in.key_lengths.size());
  std::vector<float> values(in.key_lengths.begin(), in.key_lengths.end());
  lengths->upload(values);
  detail::retain(stream, lengths);
  return lengths.get();
}

// q, k, v and the entry point's other buffers, sized from the checked problem.
void check_attention_buffers(const Device::Impl& d, const AttentionBuffers& in, const Problem& s,
                             std::vector<BufferArg> args) {
  args.insert(args.begin(), {{"q", in.q, s.q_size(), false, false},
                             {"k", in.k, s.k_size(), false, false},
                             {"v", in.v, s.k_size(), false, false}});
  check_buffers(d, "vulkan attention: ", args);
}

std::shared_ptr<Buffer> scratch(Stream& stream, int64_t size) {
  auto buffer = std::make_shared<Buffer>(stream.device(), size);
  detail::retain(stream, buffer);
  return buffer;
}

// A walk over `total` rows (keys or queries) in blocks of `block`, each
// costing `per_block` loop iterations on top of `fixed`: the rows one
// dispatch takes, all of them unless the device's loop budget needs more
// dispatches (as counted in each shader's header).
int64_t rows_per_dispatch(const Device::Impl& d, int64_t total, uint64_t block, uint64_t per_block, uint64_t fixed) {
  const uint64_t budget = detail::loop_budget(d);
  require(fixed + per_block < budget, "vulkan attention: one block does not fit the device's loop budget");
  const uint64_t blocks = (budget - fixed - 1) / per_block;
  return static_cast<int64_t>(std::min<uint64_t>(blocks, ceil_div(total, block)) * block);
}

void require_shared(const Device::Impl& d, uint64_t floats) {
  require(floats * sizeof(float) <= d.info.max_shared_memory, "vulkan attention: the tiles need ",
          floats * sizeof(float), " bytes of shared memory; the device has ", d.info.max_shared_memory);
}

struct FlashPush {
  uint32_t heads, queries, keys;
  float scale;
  uint32_t begin, end, flags;
};

// Records `kernel` over the workgroup grid (x, B·H), walking [0, total) in
// dispatches of `span` rows: the first writes, the later ones merge or add.
void record_walk(Stream& stream, detail::Kernel& kernel, std::span<const uint32_t> spec,
                 std::span<const Buffer* const> buffers, const Problem& s, int64_t total, int64_t span,
                 int64_t groups_x) {
  for (int64_t begin = 0; begin < total; begin += span) {
    const FlashPush push{u32(s.H), u32(s.Lq), u32(s.Lk), s.scale, u32(begin), u32(std::min(total, begin + span)),
                         s.flags | (begin == 0 ? kFirst : 0)};
    detail::dispatch(stream, kernel, spec, buffers, &push, u32(groups_x), u32(s.B * s.H), 1);
  }
}

// Loop iterations per key block (forward, dq) or query block (dk/dv), from
// the shaders' headers.
uint64_t forward_block_loops(uint64_t dh) {
  return 1 + ceil_div(kStagedRows * dh, kRowsPerGroup) + kStagedRows * (dh + 1) + 2 * kStagedRows +
         dh * (kStagedRows + 1);
}
uint64_t gradient_block_loops(uint64_t dh) {
  return 1 + ceil_div(kStagedRows * dh, kRowsPerGroup) + kStagedRows * (2 * dh + 1);
}

// log2 of kRowThreads: the reduction tree's depth.
constexpr uint64_t kRowTreeDepth = 6;
static_assert(uint64_t{1} << kRowTreeDepth == kRowThreads);

// The naive form's softmax shaders run `passes` loops over a row of Lk, and
// the reduction trees.
void require_rows_fit(const Device::Impl& d, int64_t keys, uint64_t passes, uint64_t trees) {
  require(passes * ceil_div(keys, kRowThreads) + trees * kRowTreeDepth < detail::loop_budget(d),
          "vulkan attention: Lk = ", keys, " is too long for the device's loop budget");
}

// Records the naive form's softmax shaders over `rows` rows, one workgroup
// each, in grids the device allows; push.first is each grid's first row.
template <typename Push>
void record_rows(Stream& stream, detail::Kernel& kernel, std::span<const Buffer* const> buffers, Push push,
                 int64_t rows) {
  Device::Impl& d = stream.device().impl();
  const uint32_t spec[] = {kRowThreads};
  const int64_t max_x = d.limits.maxComputeWorkGroupCount[0];
  for (int64_t first = 0; first < rows; first += max_x) {
    push.first = u32(first);
    detail::dispatch(stream, kernel, spec, buffers, &push, u32(std::min(max_x, rows - first)), 1, 1);
  }
}

}  // namespace

void attention_forward(Stream& stream, const AttentionBuffers& in, Buffer& out, Buffer& lse) {
  Device::Impl& d = stream.device().impl();
  const Problem s = check_problem(d, in, false);
  check_attention_buffers(d, in, s, {{"out", &out, s.q_size(), false, true}, {"lse", &lse, s.lse_size(), false, true}});
  require_shared(d, 2 * kStagedRows * s.dh);
  const uint64_t dh = s.dh;
  const int64_t span = rows_per_dispatch(d, s.Lk, kStagedRows, forward_block_loops(dh), 2 * dh);
  detail::Kernel& kernel = d.kernel("attention_forward", 6, 0b11'0000, sizeof(FlashPush));
  const uint32_t spec[] = {kRowsPerGroup, kStagedRows, u32(s.dh)};
  const Buffer* buffers[] = {in.q, in.k, in.v, key_lengths_buffer(stream, in), &out, &lse};
  record_walk(stream, kernel, spec, buffers, s, s.Lk, span, ceil_div(s.Lq, kRowsPerGroup));
}

void attention_backward(Stream& stream, const AttentionBuffers& in, const Buffer& out, const Buffer& lse,
                        const Buffer& dout, const AttentionGradBuffers& grads) {
  Device::Impl& d = stream.device().impl();
  const Problem s = check_problem(d, in, false);
  check_attention_buffers(d, in, s,
                          {{"out", &out, s.q_size(), false, false},
                           {"lse", &lse, s.lse_size(), false, false},
                           {"dout", &dout, s.q_size(), false, false},
                           {"dq", grads.dq, s.q_size(), false, true},
                           {"dk", grads.dk, s.k_size(), false, true},
                           {"dv", grads.dv, s.k_size(), false, true}});
  require_shared(d, 2 * kStagedRows * (s.dh + 1));
  const uint64_t dh = s.dh;
  const int64_t key_span = rows_per_dispatch(d, s.Lk, kStagedRows, gradient_block_loops(dh), 2 * dh);
  const int64_t query_span = rows_per_dispatch(d, s.Lq, kStagedRows, gradient_block_loops(dh), 2 * dh);

  const auto delta = scratch(stream, s.B * s.H * s.Lq);
  const Buffer* lengths = key_lengths_buffer(stream, in);
  detail::Kernel& delta_kernel = d.kernel("attention_backward_delta", 3, 0b100, sizeof(FlashPush));
  detail::Kernel& dq_kernel = d.kernel("attention_backward_dq", 8, 0b1000'0000, sizeof(FlashPush));
  detail::Kernel& dkdv_kernel = d.kernel("attention_backward_dkdv", 9, 0b1'1000'0000, sizeof(FlashPush));
  const uint32_t delta_spec[] = {kRowsPerGroup, u32(s.dh)};
  const Buffer* delta_buffers[] = {&out, &dout, delta.get()};
  const FlashPush delta_push{u32(s.H), u32(s.Lq), u32(s.Lk), s.scale, 0, 0, s.flags};
  detail::dispatch(stream, delta_kernel, delta_spec, delta_buffers, &delta_push, u32(ceil_div(s.Lq, kRowsPerGroup)),
                   u32(s.B * s.H), 1);

  const uint32_t gradient_spec[] = {kRowsPerGroup, kStagedRows, u32(s.dh)};
  const Buffer* dq_buffers[] = {in.q, in.k, in.v, lengths, &lse, &dout, delta.get(), grads.dq};
  record_walk(stream, dq_kernel, gradient_spec, dq_buffers, s, s.Lk, key_span, ceil_div(s.Lq, kRowsPerGroup));
  const Buffer* dkdv_buffers[] = {in.q, in.k, in.v, lengths, &lse, &dout, delta.get(), grads.dk, grads.dv};
  record_walk(stream, dkdv_kernel, gradient_spec, dkdv_buffers, s, s.Lq, query_span, ceil_div(s.Lk, kRowsPerGroup));
}

void attention_naive_forward(Stream& stream, const AttentionBuffers& in, Buffer& out, Buffer& probs) {
  Device::Impl& d = stream.device().impl();
  const Problem s = check_problem(d, in, true);
  check_attention_buffers(d, in, s,
                          {{"out", &out, s.q_size(), false, true}, {"probs", &probs, s.probs_size(), false, true}});
  const int64_t heads = s.B * s.H, Lq = s.Lq, Lk = s.Lk, dh = s.dh;
  require_rows_fit(d, Lk, 3, 2);
  // The scores Q_h·K_hᵀ straight into probs, head by head.
  for (int64_t h = 0; h < heads; ++h) {
    detail::gemm_strided(stream, {in.q, h * Lq * dh, dh, 1}, {in.k, h * Lk * dh, dh, 1}, probs, h * Lq * Lk, Lk, Lq,
                         Lk, dh, nullptr, false);
  }
  struct SoftmaxPush {
    uint32_t heads, queries, keys;
    float scale;
    uint32_t first, flags;
  };
  detail::Kernel& softmax = d.kernel("attention_softmax", 2, 0b10, sizeof(SoftmaxPush));
  const Buffer* softmax_buffers[] = {key_lengths_buffer(stream, in), &probs};
  record_rows(stream, softmax, softmax_buffers, SoftmaxPush{u32(s.H), u32(Lq), u32(Lk), s.scale, 0, s.flags},
              heads * Lq);
  // out_h = P_h·V_h, V_h read as its transpose (dh, Lk).
  for (int64_t h = 0; h < heads; ++h) {
    detail::gemm_strided(stream, {&probs, h * Lq * Lk, Lk, 1}, {in.v, h * Lk * dh, 1, dh}, out, h * Lq * dh, dh, Lq,
                         dh, Lk, nullptr, false);
  }
}

void attention_naive_backward(Stream& stream, const AttentionBuffers& in, const Buffer& probs, const Buffer& dout,
                              const AttentionGradBuffers& grads) {
  Device::Impl& d = stream.device().impl();
  const Problem s = check_problem(d, in, true);
  check_attention_buffers(d, in, s,
                          {{"probs", &probs, s.probs_size(), false, false},
                           {"dout", &dout, s.q_size(), false, false},
                           {"dq", grads.dq, s.q_size(), false, true},
                           {"dk", grads.dk, s.k_size(), false, true},
                           {"dv", grads.dv, s.k_size(), false, true}});
  const int64_t heads = s.B * s.H, Lq = s.Lq, Lk = s.Lk, dh = s.dh;
  require_rows_fit(d, Lk, 2, 1);
  struct SoftmaxBackwardPush {
    uint32_t keys;
    float scale;
    uint32_t probs_row, first;
  };
  detail::Kernel& softmax_backward = d.kernel("attention_softmax_backward", 2, 0b10, sizeof(SoftmaxBackwardPush));
  // One head's dP, then dS, in place: the heads go one after another anyway,
  // each GEMM a dispatch of its own.
  const auto dscores = scratch(stream, Lq * Lk);
  const Buffer* softmax_buffers[] = {&probs, dscores.get()};
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t q_at = h * Lq * dh, k_at = h * Lk * dh, p_at = h * Lq * Lk;
    // dP = dO_h·V_hᵀ; dV_h = P_hᵀ·dO_h.
    detail::gemm_strided(stream, {&dout, q_at, dh, 1}, {in.v, k_at, dh, 1}, *dscores, 0, Lk, Lq, Lk, dh, nullptr,
                         false);
    detail::gemm_strided(stream, {&probs, p_at, 1, Lk}, {&dout, q_at, 1, dh}, *grads.dv, k_at, dh, Lk, dh, Lq,
                         nullptr, false);
    record_rows(stream, softmax_backward, softmax_buffers, SoftmaxBackwardPush{u32(Lk), s.scale, u32(h * Lq), 0}, Lq);
    // dQ_h = dS·K_h; dK_h = dSᵀ·Q_h.
    detail::gemm_strided(stream, {dscores.get(), 0, Lk, 1}, {in.k, k_at, 1, dh}, *grads.dq, q_at, dh, Lq, dh, Lk,
                         nullptr, false);
    detail::gemm_strided(stream, {dscores.get(), 0, 1, Lk}, {in.q, q_at, 1, dh}, *grads.dk, k_at, dh, Lk, dh, Lq,
                         nullptr, false);
  }
}

}  // namespace seqk::vk
