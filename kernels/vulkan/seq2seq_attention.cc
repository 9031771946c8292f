// Seq2seq attention on Vulkan (shaders/seq2seq_attention_forward.comp,
// seq2seq_attention_backward_rows.comp, seq2seq_attention_sums.comp, and
// the GEMM shader for the weight products): the argument checks, the
// device's loop budget, and the dispatches recorded in order on one stream,
// their grids split to fit the device.
#include "seqk/vulkan_seq2seq_attention.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "kernels/seq2seq_attention_args.h"
#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {

using detail::BufferArg;
using detail::check_buffers;
using detail::fits_u32;
namespace {

using Shape = seqk::detail::Seq2SeqShape;

const char* kWho = "vulkan seq2seq attention: ";

// Invocations per workgroup: a power of two (the shaders' tree reductions).
constexpr uint32_t kGroup = 64;
constexpr uint32_t kLog2Group = 6;
constexpr uint32_t kBindings = 10;  // the most any of the three shaders binds

// Push-constant flags and modes (shaders/seq2seq_attention.glsl).
constexpr uint32_t kAdditive = 1, kDot = 2, kAccumulate = 4;
constexpr uint32_t kSumDh = 0, kSumDkeys = 1, kSumDv = 2;

struct Push {
  uint32_t batch, queries, source, key_size, value_size, first, flags, mode;
};

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

// Null exactly where the score has no such tensor.
void require_absent(const void* buffer, const char* name, Seq2SeqScore score) {
  require(buffer == nullptr, kWho, name, " must be null for ", to_string(score), " scoring");
}

int64_t div_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The checked shape: sizes and lengths, 32-bit indexing, every pass's loops
// within the device's budget, and null where the score has no such input.
Shape check_inputs(const Device::Impl& d, const Seq2SeqAttentionBuffers& in) {
  const Shape s = seqk::detail::check_seq2seq_sizes(in.score, in.batch, in.queries, in.source,
                                                             in.query_size, in.value_size, in.attention_size,
                                                             in.lengths);
  const int64_t B = in.batch, Tq = in.queries, S = in.source, Ds = in.query_size, Dh = in.value_size;
  const auto K = static_cast<int64_t>(s.key_size);
  require(fits_u32({B, Tq, std::max({S, Ds, Dh, K})}) && fits_u32({B, S, std::max(Dh, K)}), kWho, "B = ", B,
          ", Tq = ", Tq, ", S = ", S, ", Ds = ", Ds, ", Dh = ", Dh, ", K = ", K, " exceed 32-bit indexing");
  // Lengths travel as floats: whole numbers are exact up to 2^24.
  require(S <= (int64_t{1} << 24), kWho, "S = ", S, " exceeds 2^24");
  const uint64_t forward = div_ceil(S, kGroup) * (K + 3) + 2 * kLog2Group + div_ceil(Dh, kGroup) * (S + 1) + 4;
  const uint64_t rows = div_ceil(S, kGroup) * (Dh + 2) + kLog2Group + div_ceil(K, kGroup) * (S + 1) + 4;
  const uint64_t sums = static_cast<uint64_t>(B * Tq) + 1;
  require(std::max({forward, rows, sums}) < detail::loop_budget(d), kWho, "B = ", B, ", Tq = ", Tq, ", S = ", S,
          ", Dh = ", Dh, ", K = ", K, " need ", std::max({forward, rows, sums}),
          " loop iterations per invocation; the device allows ", detail::loop_budget(d));
  require(d.limits.maxPerStageDescriptorStorageBuffers >= kBindings, kWho, "binds ", kBindings,
          " storage buffers; the device allows ", d.limits.maxPerStageDescriptorStorageBuffers);

  if (s.score == Seq2SeqScore::kDot) require_absent(in.keys, "keys", s.score);
  if (!s.additive()) {
    require_absent(in.w_query, "w_query", s.score);
    require_absent(in.v, "v", s.score);
  }
  return s;
}

// The buffers of `in` that the score reads, with their sizes.
std::vector<BufferArg> input_args(const Seq2SeqAttentionBuffers& in, const Shape& s) {
  const int64_t B = in.batch, S = in.source, Dh = in.value_size, K = static_cast<int64_t>(s.key_size);
  std::vector<BufferArg> args = {{"s", in.s, B * in.queries * in.query_size, false, false},
                                 {"h", in.h, B * S * Dh, false, false}};
  if (s.score != Seq2SeqScore::kDot) args.push_back({"keys", in.keys, B * S * K, false, false});
  if (s.additive()) {
    args.push_back({"w_query", in.w_query, K * in.query_size, false, false});
    args.push_back({"v", in.v, K, false, false});
  }
  return args;
}

std::shared_ptr<Buffer> scratch(Stream& stream, int64_t size) {
  auto buffer = std::make_shared<Buffer>(stream.device(), size);
  detail::retain(stream, buffer);  // alive until the recorded work has run
  return buffer;
}

// The lengths (all S when none are given) as floats on the device.
std::shared_ptr<Buffer> upload_lengths(Stream& stream, const Shape& s) {
  std::vector<float> lengths(s.batch);
  for (size_t b = 0; b < s.batch; ++b) lengths[b] = static_cast<float>(s.valid(b));
  auto buffer = scratch(stream, static_cast<int64_t>(s.batch));
  buffer->upload(lengths);
  return buffer;
}

// The queries the scores compare: W_1·s (B·Tq, A) recorded into a scratch
// buffer for additive scoring, else s itself.
const Buffer* record_queries(Stream& stream, const Seq2SeqAttentionBuffers& in, const Shape& s,
                             std::shared_ptr<Buffer>& projected) {
  if (!s.additive()) return in.s;
  const int64_t rows = in.batch * in.queries, A = in.attention_size, Ds = in.query_size;
  projected = scratch(stream, rows * A);
  detail::gemm_strided(stream, {in.s, 0, Ds, 1}, {in.w_query, 0, Ds, 1}, *projected, 0, A, rows, A, Ds, nullptr,
                       false);
  return projected.get();
}

Push push_of(const Shape& s, uint32_t flags, uint32_t mode) {
  return {u32(s.batch), u32(s.queries), u32(s.source), u32(s.key_size), u32(s.value_size), 0,
          flags | (s.additive() ? kAdditive : 0) | (s.score == Seq2SeqScore::kDot ? kDot : 0), mode};
}

// `groups` workgroups along x in grids the device allows; push.first is the
// first workgroup (rows) or invocation (elements) of each.
void dispatch_split(Stream& stream, detail::Kernel& kernel, std::span<const Buffer* const> buffers, Push push,
                    int64_t groups, int64_t first_per_group) {
  const uint32_t spec[] = {kGroup};
  const int64_t max_x = stream.device().impl().limits.maxComputeWorkGroupCount[0];
  for (int64_t first = 0; first < groups; first += max_x) {
    push.first = u32(first * first_per_group);
    detail::dispatch(stream, kernel, spec, buffers, &push, u32(std::min(max_x, groups - first)), 1, 1);
  }
}

void check_projection(int64_t batch, int64_t source, int64_t value_size, int64_t key_size) {
  require(batch > 0 && source > 0 && value_size > 0 && key_size > 0, kWho,
          "B, S, Dh, K must be > 0, got B = ", batch, ", S = ", source, ", Dh = ", value_size, ", K = ", key_size);
  require(fits_u32({batch, source, std::max(value_size, key_size)}), kWho, "B = ", batch, ", S = ", source,
          ", Dh = ", value_size, ", K = ", key_size, " exceed 32-bit indexing");
}

}  // namespace

void seq2seq_project_keys(Stream& stream, const Buffer& h, const Buffer& w_key, Buffer& keys, int64_t batch,
                          int64_t source, int64_t value_size, int64_t key_size) {
  Device::Impl& d = stream.device().impl();
  check_projection(batch, source, value_size, key_size);
  const int64_t rows = batch * source;
  const BufferArg args[] = {{"h", &h, rows * value_size, false, false},
                           {"w_key", &w_key, key_size * value_size, false, false},
                           {"keys", &keys, rows * key_size, false, true}};
  check_buffers(d, kWho, args);
  detail::gemm_strided(stream, {&h, 0, value_size, 1}, {&w_key, 0, value_size, 1}, keys, 0, key_size, rows, key_size,
                       value_size, nullptr, false);
}

void seq2seq_project_keys_backward(Stream& stream, const Buffer& h, const Buffer& w_key, const Buffer& dkeys,
                                   Buffer& dh, Buffer& dw_key, int64_t batch, int64_t source, int64_t value_size,
                                   int64_t key_size) {
  Device::Impl& d = stream.device().impl();
  check_projection(batch, source, value_size, key_size);
  const int64_t rows = batch * source, K = key_size, Dh = value_size;
  const BufferArg args[] = {{"h", &h, rows * Dh, false, false},
                           {"w_key", &w_key, K * Dh, false, false},
                           {"dkeys", &dkeys, rows * K, false, false},
                           {"dh", &dh, rows * Dh, false, true},
                           {"dw_key", &dw_key, K * Dh, false, true}};
  check_buffers(d, kWho, args);
  // dh (B·S, Dh) += dkeys (B·S, K) · w_key (K, Dh); dw_key (K, Dh) = dkeysᵀ · h.
  detail::gemm_strided(stream, {&dkeys, 0, K, 1}, {&w_key, 0, 1, Dh}, dh, 0, Dh, rows, Dh, K, nullptr, true);
  detail::gemm_strided(stream, {&dkeys, 0, 1, K}, {&h, 0, 1, Dh}, dw_key, 0, Dh, K, Dh, rows, nullptr, false);
}

void seq2seq_attention_forward(Stream& stream, const Seq2SeqAttentionBuffers& in, Buffer& context, Buffer& alpha) {
  Device::Impl& d = stream.device().impl();
  const Shape s = check_inputs(d, in);
  const int64_t rows = in.batch * in.queries;
  std::vector<BufferArg> args = input_args(in, s);
  args.push_back({"context", &context, rows * in.value_size, false, true});
  args.push_back({"alpha", &alpha, rows * in.source, false, true});
  check_buffers(d, kWho, args);

  const std::shared_ptr<Buffer> lengths = upload_lengths(stream, s);
  std::shared_ptr<Buffer> projected;
  const Buffer* queries = record_queries(stream, in, s, projected);
  const Buffer* keys = s.score == Seq2SeqScore::kDot ? in.h : in.keys;
  const Buffer* buffers[] = {queries, keys, in.h, in.v ? in.v : in.s, lengths.get(), &context, &alpha};
  detail::Kernel& kernel = d.kernel("seq2seq_attention_forward", 7, 0b110'0000, sizeof(Push));
  dispatch_split(stream, kernel, buffers, push_of(s, 0, 0), rows, 1);
}

void seq2seq_attention_backward(Stream& stream, const Seq2SeqAttentionBuffers& in, const Buffer& alpha,
                                const Buffer& dcontext, const Seq2SeqAttentionGradBuffers& grads) {
  Device::Impl& d = stream.device().impl();
  const Shape s = check_inputs(d, in);
  const int64_t B = in.batch, Tq = in.queries, S = in.source, Ds = in.query_size, Dh = in.value_size;
  const auto K = static_cast<int64_t>(s.key_size);
  const int64_t rows = B * Tq;
  const bool dot = s.score == Seq2SeqScore::kDot;
  std::vector<BufferArg> args = input_args(in, s);
  args.insert(args.end(), {{"alpha", &alpha, rows * S, false, false},
                           {"dcontext", &dcontext, rows * Dh, false, false},
                           {"ds", grads.ds, rows * Ds, false, true},
                           {"dh", grads.dh, B * S * Dh, false, true}});
  if (dot) {
    require_absent(grads.dkeys, "dkeys", s.score);
  } else {
    args.push_back({"dkeys", grads.dkeys, B * S * K, false, true});
  }
  if (s.additive()) {
    args.push_back({"dw_query", grads.dw_query, K * Ds, false, true});
    args.push_back({"dv", grads.dv, K, false, true});
  } else {
    require_absent(grads.dw_query, "dw_query", s.score);
    require_absent(grads.dv, "dv", s.score);
  }
  check_buffers(d, kWho, args);

  const std::shared_ptr<Buffer> lengths = upload_lengths(stream, s);
  std::shared_ptr<Buffer> projected;
  const Buffer* queries = record_queries(stream, in, s, projected);
  const Buffer* keys = dot ? in.h : in.keys;
  const Buffer* v = in.v ? in.v : in.s;  // bound where absent; never read there
  // de for the sums pass; for additive scoring the gradient of W_1·s and
  // each row's share of dv, else the query gradient is ds itself.
  const auto dscores = scratch(stream, rows * S);
  const auto dprojected = s.additive() ? scratch(stream, rows * K) : nullptr;
  const auto dv_rows = s.additive() ? scratch(stream, rows * K) : nullptr;
  Buffer& dqueries = s.additive() ? *dprojected : *grads.ds;

  const Buffer* row_buffers[] = {queries, keys, in.h, v, lengths.get(), &alpha, &dcontext, dscores.get(), &dqueries,
                                 dv_rows ? dv_rows.get() : &dqueries};
  detail::Kernel& backward_rows =
      d.kernel("seq2seq_attention_backward_rows", kBindings, 0b11'1000'0000, sizeof(Push));
  dispatch_split(stream, backward_rows, row_buffers, push_of(s, 0, 0), rows, 1);

  detail::Kernel& sums = d.kernel("seq2seq_attention_sums", kBindings, 0b10'0000'0000, sizeof(Push));
  const uint32_t accumulate = grads.accumulate ? kAccumulate : 0;
  auto sum_into = [&](Buffer& out, uint32_t mode, int64_t count) {
    const Buffer* buffers[] = {queries, keys, in.h, v, lengths.get(), &alpha, &dcontext, dscores.get(),
                               dv_rows ? dv_rows.get() : dscores.get(), &out};
    dispatch_split(stream, sums, buffers, push_of(s, accumulate, mode), div_ceil(count, kGroup), kGroup);
  };
  sum_into(*grads.dh, kSumDh, B * S * Dh);
  if (dot) return;
  sum_into(*grads.dkeys, kSumDkeys, B * S * K);
  if (!s.additive()) return;
  sum_into(*grads.dv, kSumDv, K);
  // q = W_1·s: ds (B·Tq, Ds) = dq · W_1; dw_query (A, Ds) (+)= dqᵀ · s.
  detail::gemm_strided(stream, {dprojected.get(), 0, K, 1}, {in.w_query, 0, 1, Ds}, *grads.ds, 0, Ds, rows, Ds, K,
                       nullptr, false);
  detail::gemm_strided(stream, {dprojected.get(), 0, 1, K}, {in.s, 0, 1, Ds}, *grads.dw_query, 0, Ds, K, Ds, rows,
                       nullptr, grads.accumulate);
}

}  // namespace seqk::vk
