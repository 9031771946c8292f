// Attention (seqk/attention.h) for each SIMD target: the tiled form's
// forward and backward, and the naive form's row kernels; the argument
// checks both forms share.
//
// Tiles. A block of kQueryBlock queries meets blocks of kKeyBlock keys. Two
// small kernels do all the arithmetic, both vectorised along a contiguous
// dimension of a scratch buffer:
//   Products:   out = A · Bt, Bt stored transposed, SIMD along its columns
//               (queries or keys), for scores and dP;
//   Accumulate: out += C · In, SIMD along the head dimension, for P·V and
//               the gradients.
// Where the fixed operand of a unit's loop is the query block (forward, dq
// pass), scores are kept transposed (keys × queries), so the softmax
// statistics of the block's rows sit in vector lanes.
//
// Threads. The forward's units are (batch, head, query block); the backward
// runs two passes: (batch, head, key block) units accumulate dk and dv over
// all query blocks, then (batch, head, query block) units accumulate dq over
// all key blocks, recomputing the scores once more. That costs 7 block
// products instead of FlashAttention-2's 5, but every gradient element is
// summed by one unit in a fixed order: no atomics, no per-thread copies of
// dq, and the same bits on any number of threads. Units are handed out
// dynamically (causal blocks vary in cost); which thread runs one does not
// change what it computes.
#include "seqk/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <utility>

#include "kernels/cpu/attention_shape.h"
#include "kernels/cpu/distinct.h"
#include "seqk/aligned.h"
#include "seqk/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

// Defined once: foreach_target.h includes this file again for every target.
#ifndef SEQK_CPU_ATTENTION_ARGS_
#define SEQK_CPU_ATTENTION_ARGS_
namespace seqk::detail {

// Tensors as (heads_total, rows, head_size) arrays, rows being Lq or Lk.
struct FlashForwardArgs {
  AttentionShape shape;
  const float *q, *k, *v;
  float *out, *lse;
};

struct FlashBackwardArgs {
  AttentionShape shape;
  const float *q, *k, *v, *out, *lse, *dout;
  float *dq, *dk, *dv;
};

}  // namespace seqk::detail
#endif  // SEQK_CPU_ATTENTION_ARGS_

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace {

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// Multiples of two vectors of every target (Products' tile width). 64×64
// keeps a unit's scratch (scores, dP, a few 64-row blocks) within L2 and
// the block being multiplied within L1.
constexpr size_t kQueryBlock = 64, kKeyBlock = 64;
constexpr size_t kTileRows = 4, kTileVectors = 2;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

constexpr size_t DivCeil(size_t a, size_t b) { return (a + b - 1) / b; }

// Vectors per padded row for a compile-time head size kDh; 0 (decided at
// run time) for the generic path and where the vector length is not a
// compile-time constant.
template <size_t kDh>
constexpr size_t kHeadVectors = HWY_HAVE_SCALABLE ? 0 : DivCeil(kDh, HWY_LANES(float));

// e^x for x <= 0, and exactly 0 for masked scores (−inf). Highway's Exp
// gives 0 below −104 but converts x to an integer first, which −inf would
// overflow.
HWY_INLINE V ExpNonPositive(D d, V x) { return hn::Exp(d, hn::Max(x, hn::Set(d, -1000.0f))); }

// out[m·ldo + n] = Σ_c a[m·lda + c] · bt[c·ldb + n] for kRows rows and
// kVectors vectors of n: each bt load serves kRows FMAs.
template <size_t kRows, size_t kVectors>
HWY_INLINE void ProductTile(size_t depth, const float* HWY_RESTRICT a, size_t lda, const float* HWY_RESTRICT bt,
                            size_t ldb, float* HWY_RESTRICT out, size_t ldo) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  V acc[kRows][kVectors];
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVectors; ++v) acc[r][v] = hn::Zero(d);
  for (size_t c = 0; c < depth; ++c) {
    V b[kVectors];
    for (size_t v = 0; v < kVectors; ++v) b[v] = hn::LoadU(d, bt + c * ldb + v * lanes);
    for (size_t r = 0; r < kRows; ++r) {
      const V x = hn::Set(d, a[r * lda + c]);
      for (size_t v = 0; v < kVectors; ++v) acc[r][v] = hn::MulAdd(x, b[v], acc[r][v]);
    }
  }
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVectors; ++v) hn::StoreU(acc[r][v], d, out + r * ldo + v * lanes);
}

template <size_t kRows>
HWY_INLINE void ProductRows(size_t depth, const float* a, size_t lda, const float* bt, size_t ldb, size_t vectors,
                            float* out, size_t ldo) {
  const size_t lanes = hn::Lanes(D());
  size_t v = 0;
  for (; v + kTileVectors <= vectors; v += kTileVectors)
    ProductTile<kRows, kTileVectors>(depth, a, lda, bt + v * lanes, ldb, out + v * lanes, ldo);
  for (; v < vectors; ++v) ProductTile<kRows, 1>(depth, a, lda, bt + v * lanes, ldb, out + v * lanes, ldo);
}

// out (rows, vectors·lanes) = a (rows, depth) · bt (depth, vectors·lanes).
// kDepth > 0 fixes the trip count of the innermost loop at compile time.
template <size_t kDepth>
void Products(size_t depth, const float* a, size_t lda, size_t rows, const float* bt, size_t ldb, size_t vectors,
              float* out, size_t ldo) {
  depth = kDepth ? kDepth : depth;
  size_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    ProductRows<kTileRows>(depth, a + r * lda, lda, bt, ldb, vectors, out + r * ldo, ldo);
  for (; r < rows; ++r) ProductRows<1>(depth, a + r * lda, lda, bt, ldb, vectors, out + r * ldo, ldo);
}

// out[m·ldo + ·] += Σ_n coef[m·cm + n·cn] · in[n·ldi + ·] for kRows rows and
// kVectors vectors of the head dimension: each `in` load serves kRows FMAs.
template <size_t kRows, size_t kVectors>
HWY_INLINE void AccumulateTile(size_t terms, const float* HWY_RESTRICT coef, size_t cm, size_t cn,
                               const float* HWY_RESTRICT in, size_t ldi, float* HWY_RESTRICT out, size_t ldo) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  V acc[kRows][kVectors];
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVectors; ++v) acc[r][v] = hn::LoadU(d, out + r * ldo + v * lanes);
  for (size_t n = 0; n < terms; ++n) {
    V x[kVectors];
    for (size_t v = 0; v < kVectors; ++v) x[v] = hn::LoadU(d, in + n * ldi + v * lanes);
    for (size_t r = 0; r < kRows; ++r) {
      const V c = hn::Set(d, coef[r * cm + n * cn]);
      for (size_t v = 0; v < kVectors; ++v) acc[r][v] = hn::MulAdd(c, x[v], acc[r][v]);
    }
  }
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVectors; ++v) hn::StoreU(acc[r][v], d, out + r * ldo + v * lanes);
}

template <size_t kRows>
HWY_INLINE void AccumulateRows(size_t terms, const float* coef, size_t cm, size_t cn, const float* in, size_t ldi,
                               size_t vectors, float* out, size_t ldo) {
  const size_t lanes = hn::Lanes(D());
  size_t v = 0;
  for (; v + kTileVectors <= vectors; v += kTileVectors)
    AccumulateTile<kRows, kTileVectors>(terms, coef, cm, cn, in + v * lanes, ldi, out + v * lanes, ldo);
  for (; v < vectors; ++v) AccumulateTile<kRows, 1>(terms, coef, cm, cn, in + v * lanes, ldi, out + v * lanes, ldo);
}

// out (rows, vectors·lanes) += coef (rows, terms; strides cm, cn) · in
// (terms, vectors·lanes). kVectors > 0 fixes the head dimension's vector
// count at compile time.
template <size_t kVectors>
void Accumulate(size_t rows, size_t terms, const float* coef, size_t cm, size_t cn, const float* in, size_t ldi,
                size_t vectors, float* out, size_t ldo) {
  vectors = kVectors ? kVectors : vectors;
  size_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    AccumulateRows<kTileRows>(terms, coef + r * cm, cm, cn, in, ldi, vectors, out + r * ldo, ldo);
  for (; r < rows; ++r) AccumulateRows<1>(terms, coef + r * cm, cm, cn, in, ldi, vectors, out + r * ldo, ldo);
}

// dst[c·ld + r] = factor · src[r·cols + c]; columns [rows, ld) are zeroed so
// the vectors that run past the last row multiply zeros, not stale data.
void TransposeScaled(const float* src, size_t rows, size_t cols, float factor, float* dst, size_t ld) {
  for (size_t c = 0; c < cols; ++c) {
    for (size_t r = 0; r < rows; ++r) dst[c * ld + r] = factor * src[r * cols + c];
    for (size_t r = rows; r < ld; ++r) dst[c * ld + r] = 0.0f;
  }
}

// Rows of `cols` floats into rows of `padded` floats, zero beyond `cols`,
// so whole vectors can run along them.
void CopyPadded(const float* src, size_t rows, size_t cols, float factor, float* dst, size_t padded) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) dst[r * padded + c] = factor * src[r * cols + c];
    for (size_t c = cols; c < padded; ++c) dst[r * padded + c] = 0.0f;
  }
}

// The first `cols` of each padded row, times factor.
void StoreRows(const float* src, size_t padded, size_t rows, size_t cols, const float* factors, float* dst) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) dst[r * cols + c] = factors[r] * src[r * padded + c];
}

// Head sizes that get the compile-time specialised loops; others take the
// generic path.
template <class Fn>
void WithHeadSize(size_t head_size, Fn&& fn) {
  switch (head_size) {
    case 64:
      return fn(std::integral_constant<size_t, 64>());
    case 128:
      return fn(std::integral_constant<size_t, 128>());
    default:
      return fn(std::integral_constant<size_t, 0>());
  }
}

// body(unit, scratch) for units [0, count), each thread taking the next
// free unit and keeping one Scratch for all of its units.
template <class Scratch, class Body>
void ForEachUnit(ThreadPool* pool, size_t count, const detail::AttentionShape& s, Body&& body) {
  std::atomic<size_t> next{0};
  pool->run([&](int, int) {
    Scratch scratch(s.head_size);
    for (size_t unit = next.fetch_add(1, std::memory_order_relaxed); unit < count;
         unit = next.fetch_add(1, std::memory_order_relaxed))
      body(unit, scratch);
  });
}

size_t PaddedHeadSize(size_t head_size) { return DivCeil(head_size, hn::Lanes(D())) * hn::Lanes(D()); }

// ---------------------------------------------------------------------------
// Forward.

struct ForwardScratch {
  explicit ForwardScratch(size_t head_size)
      : qt(head_size * kQueryBlock),
        values(kKeyBlock * PaddedHeadSize(head_size)),
        probs(kKeyBlock * kQueryBlock),
        acc(kQueryBlock * PaddedHeadSize(head_size)) {}
  AlignedVector qt;      // (dh, kQueryBlock): the block's queries, scaled, transposed
  AlignedVector values;  // (kKeyBlock, dhp): a key block's values, rows padded
  AlignedVector probs;   // (kKeyBlock, kQueryBlock): scores, then e^(score − running max)
  AlignedVector acc;     // (kQueryBlock, dhp): Σ e^(score − running max) · v
  // Per query of the block: running max, running sum, how many keys it sees
  // (as a float, to compare in vector lanes), and this key block's rescale.
  alignas(64) float max[kQueryBlock], sum[kQueryBlock], visible[kQueryBlock], rescale[kQueryBlock];
};

// One key block [j0, j0 + keys) into the running max, sum and rescale
// factor of the block's query vectors; probs goes from scores to their
// exponentials against the new max.
void OnlineSoftmaxBlock(ForwardScratch& w, size_t j0, size_t keys, size_t query_vectors, bool masked) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  for (size_t r = 0; r < query_vectors * lanes; r += lanes) {
    const V visible = hn::LoadU(d, w.visible + r), old_max = hn::LoadU(d, w.max + r);
    V max = old_max;
    for (size_t j = 0; j < keys; ++j) {
      float* s = w.probs.data() + j * kQueryBlock + r;
      V score = hn::LoadU(d, s);
      if (masked) {
        score = hn::IfThenElse(hn::Lt(hn::Set(d, static_cast<float>(j0 + j)), visible), score, hn::Set(d, kNegInf));
        hn::StoreU(score, d, s);
      }
      max = hn::Max(max, score);
    }
    // A query that has seen no key yet keeps a max of −inf; subtracting 0
    // instead keeps its exponentials at 0 rather than NaN (−inf + inf).
    const V shift = hn::IfThenZeroElse(hn::Eq(max, hn::Set(d, kNegInf)), max);
    const V rescale = ExpNonPositive(d, hn::Sub(old_max, shift));
    V sum = hn::Mul(hn::LoadU(d, w.sum + r), rescale);
    for (size_t j = 0; j < keys; ++j) {
      float* s = w.probs.data() + j * kQueryBlock + r;
      const V p = ExpNonPositive(d, hn::Sub(hn::LoadU(d, s), shift));
      hn::StoreU(p, d, s);
      sum = hn::Add(sum, p);
    }
    hn::StoreU(max, d, w.max + r);
    hn::StoreU(sum, d, w.sum + r);
    hn::StoreU(rescale, d, w.rescale + r);
  }
}

template <size_t kDh>
void ForwardBlock(const detail::FlashForwardArgs& f, size_t head, size_t q0, ForwardScratch& w) {
  const detail::AttentionShape& s = f.shape;
  const size_t lanes = hn::Lanes(D()), dh = kDh ? kDh : s.head_size, dhp = PaddedHeadSize(dh);
  const size_t b = head / s.heads, rows = HWY_MIN(kQueryBlock, s.queries - q0);
  const size_t query_vectors = DivCeil(rows, lanes);
  const float* k = f.k + head * s.keys * dh;
  const float* v = f.v + head * s.keys * dh;

  TransposeScaled(f.q + (head * s.queries + q0) * dh, rows, dh, s.scale, w.qt.data(), kQueryBlock);
  size_t fewest_keys = s.keys, most_keys = 0;
  for (size_t r = 0; r < query_vectors * lanes; ++r) {
    const size_t visible = r < rows ? s.visible_keys(b, q0 + r) : 0;
    if (r < rows) fewest_keys = HWY_MIN(fewest_keys, visible);
    most_keys = HWY_MAX(most_keys, visible);
    w.visible[r] = static_cast<float>(visible);
    w.max[r] = kNegInf;
    w.sum[r] = 0.0f;
  }
  std::fill(w.acc.begin(), w.acc.begin() + rows * dhp, 0.0f);

  for (size_t j0 = 0; j0 < most_keys; j0 += kKeyBlock) {
    const size_t keys = HWY_MIN(kKeyBlock, most_keys - j0);
    Products<kDh>(dh, k + j0 * dh, dh, keys, w.qt.data(), kQueryBlock, query_vectors, w.probs.data(), kQueryBlock);
    OnlineSoftmaxBlock(w, j0, keys, query_vectors, j0 + keys > fewest_keys);
    // The earlier blocks' sums were taken against a smaller max.
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < dhp; ++c) w.acc[r * dhp + c] *= w.rescale[r];
    CopyPadded(v + j0 * dh, keys, dh, 1.0f, w.values.data(), dhp);
    Accumulate<kHeadVectors<kDh>>(rows, keys, w.probs.data(), 1, kQueryBlock, w.values.data(), dhp, dhp / lanes,
                           w.acc.data(), dhp);
  }

  // out = acc / sum; lse = max + log(sum); a query that saw no key: 0, −inf.
  float* lse = f.lse + head * s.queries + q0;
  for (size_t r = 0; r < rows; ++r) {
    const bool seen = w.sum[r] > 0.0f;
    lse[r] = seen ? w.max[r] + std::log(w.sum[r]) : kNegInf;
    w.rescale[r] = seen ? 1.0f / w.sum[r] : 0.0f;
  }
  StoreRows(w.acc.data(), dhp, rows, dh, w.rescale, f.out + (head * s.queries + q0) * dh);
}

// ---------------------------------------------------------------------------
// Backward.

struct BackwardScratch {
  explicit BackwardScratch(size_t head_size)
      : transposed_a(head_size * kQueryBlock),
        transposed_b(head_size * kQueryBlock),
        rows_a(kQueryBlock * PaddedHeadSize(head_size)),
        rows_b(kQueryBlock * PaddedHeadSize(head_size)),
        probs(kQueryBlock * kKeyBlock),
        dprobs(kQueryBlock * kKeyBlock),
        grad_a(kQueryBlock * PaddedHeadSize(head_size)),
        grad_b(kQueryBlock * PaddedHeadSize(head_size)) {}
  static_assert(kQueryBlock == kKeyBlock, "the passes share buffers sized for either block");
  // Key pass: transposed k and v of the key block, padded rows of scaled q
  // and of dout of a query block, P and dP → dS (queries × keys), dk and dv.
  // Query pass: transposed scaled q and dout of the query block, padded
  // rows of a key block's k, Pᵀ and dPᵀ → dSᵀ (keys × queries), dq.
  AlignedVector transposed_a, transposed_b, rows_a, rows_b, probs, dprobs, grad_a, grad_b;
  // Query pass, per query: keys seen (as float), log-sum-exp, rowsum(dO ⊙
  // O); both passes: the factor each gradient row is stored with.
  alignas(64) float visible[kQueryBlock], lse[kQueryBlock], delta[kQueryBlock], factors[kQueryBlock];
};

// rowsum(dout ⊙ out) for every query of every head (FlashAttention-2's D).
void RowDots(const detail::FlashBackwardArgs& f, float* delta, ThreadPool* pool) {
  const size_t rows = f.shape.heads_total() * f.shape.queries, dh = f.shape.head_size;
  pool->run([&](int thread, int threads) {
    const D d;
    const size_t lanes = hn::Lanes(d), t = static_cast<size_t>(thread), n = static_cast<size_t>(threads);
    for (size_t r = rows * t / n; r < rows * (t + 1) / n; ++r) {
      const float *o = f.out + r * dh, *g = f.dout + r * dh;
      V acc = hn::Zero(d);
      size_t c = 0;
      for (; c + lanes <= dh; c += lanes) acc = hn::MulAdd(hn::LoadU(d, o + c), hn::LoadU(d, g + c), acc);
      float sum = hn::GetLane(hn::SumOfLanes(d, acc));
      for (; c < dh; ++c) sum += o[c] * g[c];
      delta[r] = sum;
    }
  });
}

// dk and dv of keys [k0, k0 + keys) of one head, from every query that sees
// any of them.
template <size_t kDh>
void KeyBlockGrads(const detail::FlashBackwardArgs& f, const float* delta, size_t head, size_t k0,
                   BackwardScratch& w) {
  const D d;
  const detail::AttentionShape& s = f.shape;
  const size_t lanes = hn::Lanes(d), dh = kDh ? kDh : s.head_size, dhp = PaddedHeadSize(dh);
  const size_t b = head / s.heads, keys = HWY_MIN(kKeyBlock, s.keys - k0), key_vectors = DivCeil(keys, lanes);
  float *dk_acc = w.grad_a.data(), *dv_acc = w.grad_b.data(), *qs = w.rows_a.data(), *dos = w.rows_b.data();
  float *probs = w.probs.data(), *dprobs = w.dprobs.data();
  TransposeScaled(f.k + (head * s.keys + k0) * dh, keys, dh, 1.0f, w.transposed_a.data(), kKeyBlock);
  TransposeScaled(f.v + (head * s.keys + k0) * dh, keys, dh, 1.0f, w.transposed_b.data(), kKeyBlock);
  std::fill(dk_acc, dk_acc + keys * dhp, 0.0f);
  std::fill(dv_acc, dv_acc + keys * dhp, 0.0f);

  // Visible keys are a prefix growing with the query index (or the same for
  // all): the first query that sees key k0 starts the loop.
  size_t first = 0;
  while (first < s.queries && s.visible_keys(b, first) <= k0) ++first;
  for (size_t i0 = first; i0 < s.queries; i0 += kQueryBlock) {
    const size_t rows = HWY_MIN(kQueryBlock, s.queries - i0);
    const size_t row0 = head * s.queries + i0;
    CopyPadded(f.q + row0 * dh, rows, dh, s.scale, qs, dhp);
    CopyPadded(f.dout + row0 * dh, rows, dh, 1.0f, dos, dhp);
    Products<kDh>(dh, qs, dhp, rows, w.transposed_a.data(), kKeyBlock, key_vectors, probs, kKeyBlock);
    Products<kDh>(dh, dos, dhp, rows, w.transposed_b.data(), kKeyBlock, key_vectors, dprobs, kKeyBlock);
    for (size_t r = 0; r < rows; ++r) {
      const size_t visible = s.visible_keys(b, i0 + r);
      const V seen = hn::Set(d, static_cast<float>(HWY_MIN(visible - HWY_MIN(visible, k0), keys)));
      const V lse = hn::Set(d, f.lse[row0 + r]), row_delta = hn::Set(d, delta[row0 + r]);
      const bool any = visible > k0;  // else lse may be −inf, and P is 0 anyway
      for (size_t j = 0; j < key_vectors * lanes; j += lanes) {
        float *p = probs + r * kKeyBlock + j, *dp = dprobs + r * kKeyBlock + j;
        const V prob = any ? hn::IfThenElseZero(hn::Lt(hn::Iota(d, static_cast<float>(j)), seen),
                                                ExpNonPositive(d, hn::Sub(hn::LoadU(d, p), lse)))
                           : hn::Zero(d);
        hn::StoreU(prob, d, p);
        hn::StoreU(hn::Mul(prob, hn::Sub(hn::LoadU(d, dp), row_delta)), d, dp);
      }
    }
    // dv += Pᵀ·dout; dk += dSᵀ·(scale·q).
    Accumulate<kHeadVectors<kDh>>(keys, rows, probs, 1, kKeyBlock, dos, dhp, dhp / lanes, dv_acc, dhp);
    Accumulate<kHeadVectors<kDh>>(keys, rows, dprobs, 1, kKeyBlock, qs, dhp, dhp / lanes, dk_acc, dhp);
  }
  std::fill(w.factors, w.factors + kKeyBlock, 1.0f);
  StoreRows(dk_acc, dhp, keys, dh, w.factors, f.dk + (head * s.keys + k0) * dh);
  StoreRows(dv_acc, dhp, keys, dh, w.factors, f.dv + (head * s.keys + k0) * dh);
}

// dq of queries [q0, q0 + rows) of one head, from every key they see.
template <size_t kDh>
void QueryBlockGrads(const detail::FlashBackwardArgs& f, const float* delta, size_t head, size_t q0,
                     BackwardScratch& w) {
  const D d;
  const detail::AttentionShape& s = f.shape;
  const size_t lanes = hn::Lanes(d), dh = kDh ? kDh : s.head_size, dhp = PaddedHeadSize(dh);
  const size_t b = head / s.heads, rows = HWY_MIN(kQueryBlock, s.queries - q0);
  const size_t query_vectors = DivCeil(rows, lanes), row0 = head * s.queries + q0;
  const float* k = f.k + head * s.keys * dh;
  const float* v = f.v + head * s.keys * dh;
  float *dq_acc = w.grad_a.data(), *keys_padded = w.rows_a.data();
  float *probs = w.probs.data(), *dprobs = w.dprobs.data();
  TransposeScaled(f.q + row0 * dh, rows, dh, s.scale, w.transposed_a.data(), kQueryBlock);
  TransposeScaled(f.dout + row0 * dh, rows, dh, 1.0f, w.transposed_b.data(), kQueryBlock);
  size_t most_keys = 0;
  for (size_t r = 0; r < query_vectors * lanes; ++r) {
    const size_t visible = r < rows ? s.visible_keys(b, q0 + r) : 0;
    most_keys = HWY_MAX(most_keys, visible);
    w.visible[r] = static_cast<float>(visible);
    // A query that sees no key has lse −inf; its P is masked to 0 anyway.
    w.lse[r] = visible ? f.lse[row0 + r] : 0.0f;
    w.delta[r] = r < rows ? delta[row0 + r] : 0.0f;
  }
  std::fill(dq_acc, dq_acc + rows * dhp, 0.0f);

  for (size_t j0 = 0; j0 < most_keys; j0 += kKeyBlock) {
    const size_t keys = HWY_MIN(kKeyBlock, most_keys - j0);
    Products<kDh>(dh, k + j0 * dh, dh, keys, w.transposed_a.data(), kQueryBlock, query_vectors, probs, kQueryBlock);
    Products<kDh>(dh, v + j0 * dh, dh, keys, w.transposed_b.data(), kQueryBlock, query_vectors, dprobs, kQueryBlock);
    for (size_t r = 0; r < query_vectors * lanes; r += lanes) {
      const V visible = hn::LoadU(d, w.visible + r), lse = hn::LoadU(d, w.lse + r);
      const V row_delta = hn::LoadU(d, w.delta + r);
      for (size_t j = 0; j < keys; ++j) {
        float *p = probs + j * kQueryBlock + r, *dp = dprobs + j * kQueryBlock + r;
        const V prob = hn::IfThenElseZero(hn::Lt(hn::Set(d, static_cast<float>(j0 + j)), visible),
                                          ExpNonPositive(d, hn::Sub(hn::LoadU(d, p), lse)));
        hn::StoreU(hn::Mul(prob, hn::Sub(hn::LoadU(d, dp), row_delta)), d, dp);
      }
    }
    // dq += dS·k (the scale is applied once at the end).
    CopyPadded(k + j0 * dh, keys, dh, 1.0f, keys_padded, dhp);
    Accumulate<kHeadVectors<kDh>>(rows, keys, dprobs, 1, kQueryBlock, keys_padded, dhp, dhp / lanes, dq_acc, dhp);
  }
  std::fill(w.factors, w.factors + kQueryBlock, s.scale);
  StoreRows(dq_acc, dhp, rows, dh, w.factors, f.dq + row0 * dh);
}

}  // namespace

void FlashForward(const detail::FlashForwardArgs& f, ThreadPool* pool) {
  const detail::AttentionShape& s = f.shape;
  const size_t blocks = DivCeil(s.queries, kQueryBlock);
  WithHeadSize(s.head_size, [&](auto head_size) {
    ForEachUnit<ForwardScratch>(pool, s.heads_total() * blocks, s, [&](size_t unit, ForwardScratch& w) {
      ForwardBlock<decltype(head_size)::value>(f, unit / blocks, unit % blocks * kQueryBlock, w);
    });
  });
}

void FlashBackward(const detail::FlashBackwardArgs& f, ThreadPool* pool) {
  const detail::AttentionShape& s = f.shape;
  AlignedVector delta(s.heads_total() * s.queries);
  RowDots(f, delta.data(), pool);
  const size_t key_blocks = DivCeil(s.keys, kKeyBlock), query_blocks = DivCeil(s.queries, kQueryBlock);
  WithHeadSize(s.head_size, [&](auto head_size) {
    ForEachUnit<BackwardScratch>(pool, s.heads_total() * key_blocks, s, [&](size_t unit, BackwardScratch& w) {
      KeyBlockGrads<decltype(head_size)::value>(f, delta.data(), unit / key_blocks, unit % key_blocks * kKeyBlock, w);
    });
    ForEachUnit<BackwardScratch>(pool, s.heads_total() * query_blocks, s, [&](size_t unit, BackwardScratch& w) {
      QueryBlockGrads<decltype(head_size)::value>(f, delta.data(), unit / query_blocks, unit % query_blocks * kQueryBlock, w);
    });
  });
}

// ---------------------------------------------------------------------------
// The naive form's rows.

// body(row) for the rows of one head, split evenly over the threads.
template <class Body>
void ForQueryRows(const detail::AttentionShape& s, ThreadPool* pool, Body&& body) {
  pool->run([&](int thread, int threads) {
    const size_t t = static_cast<size_t>(thread), n = static_cast<size_t>(threads);
    for (size_t i = s.queries * t / n; i < s.queries * (t + 1) / n; ++i) body(i);
  });
}

void SoftmaxRows(const detail::AttentionShape& s, size_t b, float* scores, ThreadPool* pool) {
  ForQueryRows(s, pool, [&](size_t i) {
    const D d;
    const hn::CappedTag<float, 1> d1;  // the row's tail, one lane at a time, with the same exp
    const size_t lanes = hn::Lanes(d), visible = s.visible_keys(b, i);
    float* row = scores + i * s.keys;
    const V scale = hn::Set(d, s.scale);
    V max = hn::Set(d, kNegInf);
    size_t j = 0;
    for (; j + lanes <= visible; j += lanes) {
      const V x = hn::Mul(hn::LoadU(d, row + j), scale);
      hn::StoreU(x, d, row + j);
      max = hn::Max(max, x);
    }
    float row_max = hn::GetLane(hn::MaxOfLanes(d, max));
    for (; j < visible; ++j) {
      row[j] *= s.scale;
      row_max = HWY_MAX(row_max, row[j]);
    }
    V sum = hn::Zero(d);
    for (j = 0; j + lanes <= visible; j += lanes) {
      const V p = ExpNonPositive(d, hn::Sub(hn::LoadU(d, row + j), hn::Set(d, row_max)));
      hn::StoreU(p, d, row + j);
      sum = hn::Add(sum, p);
    }
    float row_sum = hn::GetLane(hn::SumOfLanes(d, sum));
    for (; j < visible; ++j) {
      row[j] = hn::GetLane(hn::Exp(d1, hn::Set(d1, row[j] - row_max)));
      row_sum += row[j];
    }
    const float inverse = visible ? 1.0f / row_sum : 0.0f;
    for (j = 0; j < visible; ++j) row[j] *= inverse;
    for (; j < s.keys; ++j) row[j] = 0.0f;
  });
}

void SoftmaxBackwardRows(const detail::AttentionShape& s, const float* probs, float* dprobs, ThreadPool* pool) {
  ForQueryRows(s, pool, [&](size_t i) {
    const D d;
    const size_t lanes = hn::Lanes(d);
    const float* p = probs + i * s.keys;
    float* dp = dprobs + i * s.keys;
    V dot = hn::Zero(d);
    size_t j = 0;
    for (; j + lanes <= s.keys; j += lanes) dot = hn::MulAdd(hn::LoadU(d, p + j), hn::LoadU(d, dp + j), dot);
    float row_dot = hn::GetLane(hn::SumOfLanes(d, dot));
    for (; j < s.keys; ++j) row_dot += p[j] * dp[j];
    const V scale = hn::Set(d, s.scale), shift = hn::Set(d, row_dot);
    for (j = 0; j + lanes <= s.keys; j += lanes)
      hn::StoreU(hn::Mul(scale, hn::Mul(hn::LoadU(d, p + j), hn::Sub(hn::LoadU(d, dp + j), shift))), d, dp + j);
    for (; j < s.keys; ++j) dp[j] = s.scale * (p[j] * (dp[j] - row_dot));
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(FlashForward);
HWY_EXPORT(FlashBackward);
HWY_EXPORT(SoftmaxRows);
HWY_EXPORT(SoftmaxBackwardRows);

namespace detail {

AttentionShape check_attention_inputs(const AttentionInputs& in) {
  const ConstView &q = in.q, &k = in.k, &v = in.v;
  for (const auto& [view, name] : {std::pair{&q, "q"}, std::pair{&k, "k"}, std::pair{&v, "v"}}) {
    require(view->data() != nullptr, name, " is null");
    require(view->rank() == 4, name, " must be (B, H, L, dh), got shape ", view->shape_string());
    for (int i = 0; i < 4; ++i) require(view->dim(i) > 0, name, " has an empty dimension: ", view->shape_string());
  }
  const int64_t B = q.dim(0), H = q.dim(1), Lq = q.dim(2), dh = q.dim(3), Lk = k.dim(2);
  require(k.dim(3) == dh, "k has head size ", k.dim(3), " but q has ", dh);
  require(v.dim(3) == dh, "v has head size ", v.dim(3), " but q has ", dh);
  require_shape(q, "q", {B, H, Lq, dh});
  require_shape(k, "k", {B, H, Lk, dh});
  require_shape(v, "v", {B, H, Lk, dh});
  // The tiled form compares key indices and visible-key counts as floats in
  // vector lanes; whole numbers are exact only up to 2^24.
  require(Lk <= kAttentionMaxKeys, "Lk = ", Lk, " exceeds 2^24 = ", kAttentionMaxKeys,
          " (key indices are compared as floats, exact only up to 2^24)");
  if (!in.key_lengths.empty()) {
    require(static_cast<int64_t>(in.key_lengths.size()) == B, "key_lengths has ", in.key_lengths.size(),
            " entries, expected one per batch row (", B, ")");
    for (int64_t b = 0; b < B; ++b)
      require(in.key_lengths[b] >= 0 && in.key_lengths[b] <= Lk, "key_lengths[", b, "] = ", in.key_lengths[b],
              " is outside [0, Lk = ", Lk, "]");
  }
  const float scale = in.scale.value_or(1.0f / std::sqrt(static_cast<float>(dh)));
  require(std::isfinite(scale), "scale must be finite, got ", scale);
  return {static_cast<size_t>(B), static_cast<size_t>(H), static_cast<size_t>(Lq), static_cast<size_t>(Lk),
          static_cast<size_t>(dh), scale, in.causal, in.key_lengths.empty() ? nullptr : in.key_lengths.data()};
}

void softmax_rows(const AttentionShape& s, size_t b, float* scores, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(SoftmaxRows)(s, b, scores, pool);
}

void softmax_backward_rows(const AttentionShape& s, const float* probs, float* dprobs, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(SoftmaxBackwardRows)(s, probs, dprobs, pool);
}

}  // namespace detail

void attention_forward(const AttentionInputs& in, View out, View lse, ThreadPool* pool) {
  const detail::AttentionShape s = detail::check_attention_inputs(in);
  const int64_t B = in.q.dim(0), H = in.q.dim(1), Lq = in.q.dim(2), dh = in.q.dim(3);
  require_shape(out, "out", {B, H, Lq, dh});
  require_shape(lse, "lse", {B, H, Lq});
  detail::require_distinct("", {{"out", out}, {"lse", lse}}, {in.q, in.k, in.v});
  const detail::FlashForwardArgs args{s, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data()};
  HWY_DYNAMIC_DISPATCH(FlashForward)(args, pool ? pool : &ThreadPool::global());
}

void attention_backward(const AttentionInputs& in, ConstView out, ConstView lse, ConstView dout,
                        const AttentionGrads& grads, ThreadPool* pool) {
  const detail::AttentionShape s = detail::check_attention_inputs(in);
  const int64_t B = in.q.dim(0), H = in.q.dim(1), Lq = in.q.dim(2), dh = in.q.dim(3), Lk = in.k.dim(2);
  require_shape(out, "out", {B, H, Lq, dh});
  require_shape(lse, "lse", {B, H, Lq});
  require_shape(dout, "dout", {B, H, Lq, dh});
  require_shape(grads.dq, "dq", {B, H, Lq, dh});
  require_shape(grads.dk, "dk", {B, H, Lk, dh});
  require_shape(grads.dv, "dv", {B, H, Lk, dh});
  detail::require_distinct("", {{"dq", grads.dq}, {"dk", grads.dk}, {"dv", grads.dv}},
                           {in.q, in.k, in.v, out, lse, dout});
  const detail::FlashBackwardArgs args{s,           in.q.data(),       in.k.data(),       in.v.data(),
                                       out.data(),  lse.data(),        dout.data(),       grads.dq.data(),
                                       grads.dk.data(), grads.dv.data()};
  HWY_DYNAMIC_DISPATCH(FlashBackward)(args, pool ? pool : &ThreadPool::global());
}

}  // namespace seqk
#endif  // HWY_ONCE
