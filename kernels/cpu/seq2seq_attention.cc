// Seq2seq attention (seqk/seq2seq_attention.h) for each SIMD target: the
// scoring, softmax and context of each decoder row, and the backward of a
// batch row, SIMD along the feature dimension (A, Ds or Dh), whose tails
// take one lane at a time with the same math. The weight products (W_1·s
// and its gradients) go through seqk::gemm around them.
//
// All three scores are one comparison of a query with each key: the query
// is W_1·s_t (additive, projected by a GEMM here) or s_t (dot, general);
// the keys are the projected keys (additive, general) or h (dot).
//
// Threads. The forward's units are decoder rows (b, t), independent. The
// backward's units are batch rows b: the gradients of h and of the keys are
// sums over the decoder steps t, and a unit that owns b sums them alone in a
// fixed order; dv's per-batch-row partial sums are added in batch order at
// the end. No atomics, the same bits on any number of threads.
#include "seqk/seq2seq_attention.h"

#include <atomic>
#include <cstring>

#include "kernels/cpu/distinct.h"
#include "kernels/seq2seq_attention_args.h"
#include "seqk/aligned.h"
#include "seqk/error.h"
#include "seqk/gemm.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/seq2seq_attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

// Defined once: foreach_target.h includes this file again for every target.
#ifndef SEQK_CPU_SEQ2SEQ_ATTENTION_ARGS_
#define SEQK_CPU_SEQ2SEQ_ATTENTION_ARGS_
namespace seqk::detail {

// queries (B·Tq, K): W_1·s (additive) or s; keys (B, S, K): projected or h.
struct Seq2SeqForwardArgs {
  Seq2SeqShape shape;
  const float *queries, *keys, *h, *v;
  float *context, *alpha;
};

struct Seq2SeqBackwardArgs {
  Seq2SeqShape shape;
  const float *queries, *keys, *h, *v, *alpha, *dcontext;
  float* dqueries;  // (B·Tq, K), overwritten: dW_1·s's gradient (additive) or ds
  float* dkeys;     // (B, S, K); dh itself for dot scoring
  float* dh;        // (B, S, Dh)
  float* dv_rows;   // additive: (B, A), zeros on entry: each batch row's share of dv
  bool accumulate;  // add to dkeys and dh
};

}  // namespace seqk::detail
#endif  // SEQK_CPU_SEQ2SEQ_ATTENTION_ARGS_

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace {

using D = hn::ScalableTag<float>;
using D1 = hn::CappedTag<float, 1>;  // the tails, one lane at a time
using V = hn::Vec<D>;

float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  V acc = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) acc = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc);
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += factor · x.
void AddScaled(float factor, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const V f = hn::Set(d, factor);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::MulAdd(f, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += factor * x[i];
}

// vᵀ · tanh(q + k), n = A.
float AdditiveScore(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, const float* HWY_RESTRICT v,
                    size_t n) {
  const D d;
  const D1 d1;
  const size_t lanes = hn::Lanes(d);
  V acc = hn::Zero(d);
  size_t a = 0;
  for (; a + lanes <= n; a += lanes) {
    const V u = hn::Tanh(d, hn::Add(hn::LoadU(d, q + a), hn::LoadU(d, k + a)));
    acc = hn::MulAdd(hn::LoadU(d, v + a), u, acc);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; a < n; ++a) sum += v[a] * hn::GetLane(hn::Tanh(d1, hn::Set(d1, q[a] + k[a])));
  return sum;
}

// The additive score's backward for one (query, key) pair with score
// gradient de: u = tanh(q + k), g = de · v ⊙ (1 − u²); dq += g, dk += g,
// dv += de · u.
template <class DT>
HWY_INLINE void AdditiveBackwardLanes(DT d, size_t a, const float* q, const float* k, const float* v, float de,
                                      float* dq, float* dk, float* dv) {
  using VT = hn::Vec<DT>;
  const VT u = hn::Tanh(d, hn::Add(hn::LoadU(d, q + a), hn::LoadU(d, k + a)));
  const VT de_v = hn::Set(d, de);
  const VT g = hn::Mul(hn::Mul(de_v, hn::LoadU(d, v + a)), hn::NegMulAdd(u, u, hn::Set(d, 1.0f)));
  hn::StoreU(hn::Add(hn::LoadU(d, dq + a), g), d, dq + a);
  hn::StoreU(hn::Add(hn::LoadU(d, dk + a), g), d, dk + a);
  hn::StoreU(hn::MulAdd(de_v, u, hn::LoadU(d, dv + a)), d, dv + a);
}

void AdditiveBackward(const float* q, const float* k, const float* v, float de, float* dq, float* dk, float* dv,
                      size_t n) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  size_t a = 0;
  for (; a + lanes <= n; a += lanes) AdditiveBackwardLanes(d, a, q, k, v, de, dq, dk, dv);
  for (; a < n; ++a) AdditiveBackwardLanes(D1(), a, q, k, v, de, dq, dk, dv);
}

// row[0, n) from scores to their softmax; row[n, size) = 0. n = 0 leaves
// an all-zero row.
void SoftmaxPrefix(float* row, size_t n, size_t size) {
  const D d;
  const D1 d1;
  const size_t lanes = hn::Lanes(d);
  float max = -hwy::HighestValue<float>();
  for (size_t i = 0; i < n; ++i) max = HWY_MAX(max, row[i]);
  const V max_v = hn::Set(d, max);
  V sum_v = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V p = hn::Exp(d, hn::Sub(hn::LoadU(d, row + i), max_v));
    hn::StoreU(p, d, row + i);
    sum_v = hn::Add(sum_v, p);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, sum_v));
  for (; i < n; ++i) {
    row[i] = hn::GetLane(hn::Exp(d1, hn::Set(d1, row[i] - max)));
    sum += row[i];
  }
  // The max itself contributes e^0 = 1, so sum >= 1 whenever n > 0.
  const float inverse = n > 0 ? 1.0f / sum : 0.0f;
  for (i = 0; i < n; ++i) row[i] *= inverse;
  for (; i < size; ++i) row[i] = 0.0f;
}

// body(unit, scratch) for units [0, count), each thread taking the next
// free unit and keeping one scratch buffer of scratch_size floats.
template <class Body>
void ForEachUnit(ThreadPool* pool, size_t count, size_t scratch_size, Body&& body) {
  std::atomic<size_t> next{0};
  pool->run([&](int, int) {
    AlignedVector scratch(scratch_size);
    for (size_t unit = next.fetch_add(1, std::memory_order_relaxed); unit < count;
         unit = next.fetch_add(1, std::memory_order_relaxed))
      body(unit, scratch.data());
  });
}

void ForwardRow(const detail::Seq2SeqForwardArgs& f, size_t row) {
  const detail::Seq2SeqShape& s = f.shape;
  const size_t b = row / s.queries, n = s.valid(b), K = s.key_size, Dh = s.value_size;
  const float* query = f.queries + row * K;
  const float* keys = f.keys + b * s.source * K;
  float* alpha = f.alpha + row * s.source;
  for (size_t i = 0; i < n; ++i)
    alpha[i] = s.additive() ? AdditiveScore(query, keys + i * K, f.v, K) : Dot(query, keys + i * K, K);
  SoftmaxPrefix(alpha, n, s.source);
  float* context = f.context + row * Dh;
  std::memset(context, 0, Dh * sizeof(float));
  for (size_t i = 0; i < n; ++i) AddScaled(alpha[i], f.h + (b * s.source + i) * Dh, context, Dh);
}

// Batch row b, all its decoder steps. de: S floats of scratch.
void BackwardBatchRow(const detail::Seq2SeqBackwardArgs& g, size_t b, float* de) {
  const detail::Seq2SeqShape& s = g.shape;
  const size_t n = s.valid(b), K = s.key_size, Dh = s.value_size, S = s.source;
  const bool dot = s.score == Seq2SeqScore::kDot;
  float* dh = g.dh + b * S * Dh;
  float* dkeys = g.dkeys + b * S * K;
  float* dv = s.additive() ? g.dv_rows + b * K : nullptr;
  if (!g.accumulate) {
    std::memset(dh, 0, S * Dh * sizeof(float));
    if (!dot) std::memset(dkeys, 0, S * K * sizeof(float));
  }
  for (size_t t = 0; t < s.queries; ++t) {
    const size_t row = b * s.queries + t;
    const float *alpha = g.alpha + row * S, *dcontext = g.dcontext + row * Dh;
    const float* query = g.queries + row * K;
    float* dquery = g.dqueries + row * K;
    std::memset(dquery, 0, K * sizeof(float));
    // Softmax backward: de_i = α_i (dα_i − Σ_j α_j dα_j), dα_i = dcontext · h_i.
    float weighted = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      de[i] = Dot(dcontext, g.h + (b * S + i) * Dh, Dh);
      weighted += alpha[i] * de[i];
    }
    for (size_t i = 0; i < n; ++i) {
      const float de_i = alpha[i] * (de[i] - weighted);
      const float* key = g.keys + (b * S + i) * K;
      AddScaled(alpha[i], dcontext, dh + i * Dh, Dh);
      if (s.additive()) {
        AdditiveBackward(query, key, g.v, de_i, dquery, dkeys + i * K, dv, K);
      } else {
        AddScaled(de_i, key, dquery, K);
        AddScaled(de_i, query, dkeys + i * K, K);
      }
    }
  }
}

}  // namespace

void Seq2SeqForward(const detail::Seq2SeqForwardArgs& f, ThreadPool* pool) {
  ForEachUnit(pool, f.shape.batch * f.shape.queries, 0, [&](size_t row, float*) { ForwardRow(f, row); });
}

void Seq2SeqBackward(const detail::Seq2SeqBackwardArgs& g, ThreadPool* pool) {
  ForEachUnit(pool, g.shape.batch, g.shape.source, [&](size_t b, float* de) { BackwardBatchRow(g, b, de); });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(Seq2SeqForward);
HWY_EXPORT(Seq2SeqBackward);

namespace {

const char* kWho = "seq2seq attention: ";

// Null, rank and emptiness first, so the sizes below can be read safely.
void require_rank3(const ConstView& view, const char* name, const char* dims) {
  require(view.data() != nullptr, kWho, name, " is null");
  require(view.rank() == 3, kWho, name, " must be ", dims, ", got shape ", view.shape_string());
}

void require_empty(const ConstView& view, const char* name, Seq2SeqScore score) {
  require(view.empty(), kWho, name, " must be empty for ", to_string(score), " scoring");
}

// The checked shape of `in`; every view has the shape the score needs.
detail::Seq2SeqShape check_inputs(const Seq2SeqAttentionInputs& in) {
  require_rank3(in.s, "s", "(B, Tq, Ds)");
  require_rank3(in.h, "h", "(B, S, Dh)");
  const int64_t B = in.s.dim(0), Tq = in.s.dim(1), Ds = in.s.dim(2), S = in.h.dim(1), Dh = in.h.dim(2);
  require(in.h.dim(0) == B, kWho, "h has batch size ", in.h.dim(0), " but s has ", B);
  int64_t A = 0;
  if (in.score == Seq2SeqScore::kAdditive) {
    require(in.w_query.data() != nullptr && in.w_query.rank() == 2, kWho, "w_query must be W_1 (A, Ds), got ",
            in.w_query.empty() ? "null" : in.w_query.shape_string());
    A = in.w_query.dim(0);
  }
  const detail::Seq2SeqShape shape = detail::check_seq2seq_sizes(in.score, B, Tq, S, Ds, Dh, A, in.lengths);
  const auto K = static_cast<int64_t>(shape.key_size);
  require_shape(in.s, "s", {B, Tq, Ds});
  require_shape(in.h, "h", {B, S, Dh});
  if (in.score == Seq2SeqScore::kDot) {
    require_empty(in.keys, "keys", in.score);
  } else {
    require_shape(in.keys, "keys", {B, S, K});
  }
  if (in.score == Seq2SeqScore::kAdditive) {
    require_shape(in.w_query, "w_query", {A, Ds});
    require_shape(in.v, "v", {A});
  } else {
    require_empty(in.w_query, "w_query", in.score);
    require_empty(in.v, "v", in.score);
  }
  return shape;
}

// A 2-D view of a contiguous (d0, d1, d2) tensor as (d0·d1, d2).
template <typename T>
TensorView<T> rows_of(const TensorView<T>& t) {
  return TensorView<T>(t.data(), {t.dim(0) * t.dim(1), t.dim(2)});
}

}  // namespace

void seq2seq_attention_forward(const Seq2SeqAttentionInputs& in, View context, View alpha, ThreadPool* pool) {
  const detail::Seq2SeqShape s = check_inputs(in);
  const auto B = static_cast<int64_t>(s.batch), Tq = static_cast<int64_t>(s.queries),
             S = static_cast<int64_t>(s.source), Dh = static_cast<int64_t>(s.value_size);
  require_shape(context, "context", {B, Tq, Dh});
  require_shape(alpha, "alpha", {B, Tq, S});
  detail::require_distinct(kWho, {{"context", context}, {"alpha", alpha}}, {in.s, in.h, in.keys, in.w_query, in.v});
  pool = pool ? pool : &ThreadPool::global();
  AlignedVector projected;
  const float* queries = in.s.data();
  if (s.additive()) {
    projected.resize(s.batch * s.queries * s.key_size);
    const View q(projected.data(), {B * Tq, static_cast<int64_t>(s.key_size)});
    gemm(rows_of(in.s), PackedMatrix(in.w_query), q, {}, pool);
    queries = projected.data();
  }
  const float* keys = s.score == Seq2SeqScore::kDot ? in.h.data() : in.keys.data();
  const detail::Seq2SeqForwardArgs args{s, queries, keys, in.h.data(), in.v.data(), context.data(), alpha.data()};
  HWY_DYNAMIC_DISPATCH(Seq2SeqForward)(args, pool);
}

void seq2seq_attention_backward(const Seq2SeqAttentionInputs& in, ConstView alpha, ConstView dcontext,
                                const Seq2SeqAttentionGrads& grads, ThreadPool* pool) {
  const detail::Seq2SeqShape s = check_inputs(in);
  const auto B = static_cast<int64_t>(s.batch), Tq = static_cast<int64_t>(s.queries),
             S = static_cast<int64_t>(s.source), Ds = static_cast<int64_t>(s.query_size),
             Dh = static_cast<int64_t>(s.value_size), K = static_cast<int64_t>(s.key_size);
  require_shape(alpha, "alpha", {B, Tq, S});
  require_shape(dcontext, "dcontext", {B, Tq, Dh});
  require_shape(grads.ds, "ds", {B, Tq, Ds});
  require_shape(grads.dh, "dh", {B, S, Dh});
  const bool dot = s.score == Seq2SeqScore::kDot;
  if (dot) {
    require_empty(grads.dkeys, "dkeys", s.score);
  } else {
    require_shape(grads.dkeys, "dkeys", {B, S, K});
  }
  if (s.additive()) {
    require_shape(grads.dw_query, "dw_query", {K, Ds});
    require_shape(grads.dv, "dv", {K});
  } else {
    require_empty(grads.dw_query, "dw_query", s.score);
    require_empty(grads.dv, "dv", s.score);
  }
  detail::require_distinct(kWho,
                           {{"ds", grads.ds}, {"dh", grads.dh}, {"dkeys", grads.dkeys}, {"dw_query", grads.dw_query},
                            {"dv", grads.dv}},
                           {in.s, in.h, in.keys, in.w_query, in.v, alpha, dcontext});
  pool = pool ? pool : &ThreadPool::global();

  // Additive: the projected queries again, and their gradient and dv's
  // per-batch-row shares as scratch; otherwise the queries are s and their
  // gradient is ds itself.
  AlignedVector projected, dprojected, dv_rows;
  const float* queries = in.s.data();
  float* dqueries = grads.ds.data();
  if (s.additive()) {
    projected.resize(s.batch * s.queries * s.key_size);
    dprojected.resize(projected.size());
    dv_rows.resize(s.batch * s.key_size);  // zeros
    gemm(rows_of(in.s), PackedMatrix(in.w_query), View(projected.data(), {B * Tq, K}), {}, pool);
    queries = projected.data();
    dqueries = dprojected.data();
  }
  const detail::Seq2SeqBackwardArgs args{s,
                                         queries,
                                         dot ? in.h.data() : in.keys.data(),
                                         in.h.data(),
                                         in.v.data(),
                                         alpha.data(),
                                         dcontext.data(),
                                         dqueries,
                                         dot ? grads.dh.data() : grads.dkeys.data(),
                                         grads.dh.data(),
                                         dv_rows.data(),
                                         grads.accumulate};
  HWY_DYNAMIC_DISPATCH(Seq2SeqBackward)(args, pool);
  if (!s.additive()) return;

  // q = W_1·s: ds = dq·W_1, dW_1 (+)= dqᵀ·s; dv (+)= Σ_b dv_rows[b], in batch order.
  const ConstView dq(dprojected.data(), {B * Tq, K});
  gemm(dq, PackedMatrix(in.w_query.transposed()), rows_of(grads.ds), {}, pool);
  GemmArgs accumulate;
  accumulate.accumulate = grads.accumulate;
  gemm(dq.transposed(), PackedMatrix(rows_of(in.s).transposed()), grads.dw_query, accumulate, pool);
  float* dv = grads.dv.data();
  for (size_t a = 0; a < s.key_size; ++a) {
    float sum = grads.accumulate ? dv[a] : 0.0f;
    for (size_t b = 0; b < s.batch; ++b) sum += dv_rows[b * s.key_size + a];
    dv[a] = sum;
  }
}

}  // namespace seqk
#endif  // HWY_ONCE
