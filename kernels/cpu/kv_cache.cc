// The KV cache and its decode step (seqk/kv_cache.h) for each SIMD target.
//
// A unit is one chunk of one head's cached positions: its scores (SIMD along
// dh, four keys at a time so each load of q serves four of them), their max,
// e^(s − max) (SIMD along the chunk) and Σ e^(s − max)·v (SIMD along dh) go
// to the unit's own slot of a partials array. Units are handed out
// dynamically; then every head's chunks are combined in chunk order, so no
// result depends on which thread ran what.
#include "seqk/kv_cache.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/kv_decode_args.h"
#include "seqk/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/kv_cache.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

// Defined once: foreach_target.h includes this file again for every target.
#ifndef SEQK_CPU_KV_CACHE_ARGS_
#define SEQK_CPU_KV_CACHE_ARGS_
namespace seqk::detail {

struct KvDecodeArgs {
  size_t heads_total, length, capacity, head_size, chunk;
  float scale;
  const float *q, *keys, *values;  // q (heads_total, dh); keys, values (heads_total, capacity, dh)
  float* out;                       // (heads_total, dh)
};

}  // namespace seqk::detail
#endif  // SEQK_CPU_KV_CACHE_ARGS_

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace {

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

constexpr size_t kKeysAtOnce = 4;

size_t RoundUp(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// dots[i] = Σ_e q[e]·k[i·dh + e] for kKeys keys.
template <size_t kKeys>
HWY_INLINE void Dots(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, size_t dh, float* dots) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  V acc[kKeys];
  for (size_t i = 0; i < kKeys; ++i) acc[i] = hn::Zero(d);
  size_t e = 0;
  for (; e + lanes <= dh; e += lanes) {
    const V qv = hn::LoadU(d, q + e);
    for (size_t i = 0; i < kKeys; ++i) acc[i] = hn::MulAdd(qv, hn::LoadU(d, k + i * dh + e), acc[i]);
  }
  for (size_t i = 0; i < kKeys; ++i) {
    float dot = hn::GetLane(hn::SumOfLanes(d, acc[i]));
    for (size_t t = e; t < dh; ++t) dot += q[t] * k[i * dh + t];
    dots[i] = dot;
  }
}

// acc[e] += p·v[e] for e < dh.
HWY_INLINE void AddScaled(float p, const float* HWY_RESTRICT v, size_t dh, float* HWY_RESTRICT acc) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const V pv = hn::Set(d, p);
  size_t e = 0;
  for (; e + lanes <= dh; e += lanes) hn::StoreU(hn::MulAdd(pv, hn::LoadU(d, v + e), hn::LoadU(d, acc + e)), d, acc + e);
  for (; e < dh; ++e) acc[e] += p * v[e];
}

// Positions [first, first + count) of one head into partial = (max, sum, acc[dh]).
// q is already scaled; scores has room for count rounded up to whole vectors.
void ChunkPartial(const float* q, const float* keys, const float* values, size_t dh, size_t first, size_t count,
                  float* scores, float* partial) {
  const D d;
  const size_t lanes = hn::Lanes(d), padded = RoundUp(count, lanes);
  size_t j = 0;
  for (; j + kKeysAtOnce <= count; j += kKeysAtOnce) Dots<kKeysAtOnce>(q, keys + (first + j) * dh, dh, scores + j);
  for (; j < count; ++j) Dots<1>(q, keys + (first + j) * dh, dh, scores + j);
  // −inf past the chunk's end: no effect on the max, and e^(−inf) is 0.
  std::fill(scores + count, scores + padded, -std::numeric_limits<float>::infinity());

  V max = hn::Set(d, -std::numeric_limits<float>::infinity());
  for (j = 0; j < padded; j += lanes) max = hn::Max(max, hn::Load(d, scores + j));
  max = hn::MaxOfLanes(d, max);
  V sum = hn::Zero(d);
  for (j = 0; j < padded; j += lanes) {
    // Highway's Exp turns its argument into an integer first, which −inf
    // would overflow; below −1000 e^x is 0 in float anyway.
    const V p = hn::Exp(d, hn::Max(hn::Sub(hn::Load(d, scores + j), max), hn::Set(d, -1000.0f)));
    hn::Store(p, d, scores + j);
    sum = hn::Add(sum, p);
  }
  partial[0] = hn::GetLane(max);
  partial[1] = hn::GetLane(hn::SumOfLanes(d, sum));
  float* acc = partial + 2;
  std::fill(acc, acc + dh, 0.0f);
  for (j = 0; j < count; ++j) AddScaled(scores[j], values + (first + j) * dh, dh, acc);
}

// out = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·sum_c over one head's chunks
// in order, M the largest m_c: the chunks' sums taken against one max.
void CombineHead(const float* partials, size_t chunks, size_t dh, float* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (size_t c = 0; c < chunks; ++c) top = std::max(top, partials[c * (dh + 2)]);
  std::fill(out, out + dh, 0.0f);
  float total = 0.0f;
  for (size_t c = 0; c < chunks; ++c) {
    const float* partial = partials + c * (dh + 2);
    const float rescale = std::exp(partial[0] - top);
    total += rescale * partial[1];
    AddScaled(rescale, partial + 2, dh, out);
  }
  // Every chunk holds at least one position, so total >= 1.
  const float inverse = 1.0f / total;
  for (size_t e = 0; e < dh; ++e) out[e] *= inverse;
}

}  // namespace

void KvDecode(const detail::KvDecodeArgs& a, ThreadPool* pool) {
  const size_t dh = a.head_size, chunks = (a.length + a.chunk - 1) / a.chunk, units = a.heads_total * chunks;
  const size_t lanes = hn::Lanes(D());
  AlignedVector partials(units * (dh + 2));
  std::atomic<size_t> next{0};
  // One region (one wake-up of the pool per step): the units, a barrier,
  // then each thread combines its share of the heads.
  pool->run([&](int thread, int threads) {
    AlignedVector scores(RoundUp(a.chunk, lanes)), q(dh);
    for (size_t unit = next.fetch_add(1, std::memory_order_relaxed); unit < units;
         unit = next.fetch_add(1, std::memory_order_relaxed)) {
      const size_t head = unit / chunks, first = unit % chunks * a.chunk;
      for (size_t e = 0; e < dh; ++e) q[e] = a.scale * a.q[head * dh + e];
      const size_t offset = head * a.capacity * dh;
      ChunkPartial(q.data(), a.keys + offset, a.values + offset, dh, first, std::min(a.chunk, a.length - first),
                   scores.data(), partials.data() + unit * (dh + 2));
    }
    pool->barrier();
    const size_t t = static_cast<size_t>(thread), n = static_cast<size_t>(threads);
    for (size_t head = a.heads_total * t / n; head < a.heads_total * (t + 1) / n; ++head)
      CombineHead(partials.data() + head * chunks * (dh + 2), chunks, dh, a.out + head * dh);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(KvDecode);

namespace {

void require_finite_values(const ConstView& view, const char* what, const char* name) {
  const float* data = view.data();
  for (int64_t i = 0; i < view.numel(); ++i)
    require(std::isfinite(data[i]), what, ": ", name, " has a non-finite value (", data[i], ") at element ", i);
}

}  // namespace

KvCache::KvCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_size)
    : batch_(batch), heads_(heads), capacity_(capacity), head_size_(head_size) {
  keys_.assign(static_cast<size_t>(detail::check_kv_cache_sizes(batch, heads, capacity, head_size)), 0.0f);
  values_.assign(keys_.size(), 0.0f);
}

void KvCache::append(ConstView k, ConstView v) {
  require(k.data() != nullptr && k.rank() == 4, "kv cache append: k must be (B, H, P, dh), got ", k.shape_string());
  const int64_t positions = k.dim(2);
  require_shape(k, "k", {batch_, heads_, positions, head_size_});
  require_shape(v, "v", {batch_, heads_, positions, head_size_});
  detail::check_kv_append("kv cache append", length_, capacity_, positions);
  require_finite_values(k, "kv cache append", "k");
  require_finite_values(v, "kv cache append", "v");
  const size_t row = static_cast<size_t>(positions * head_size_);
  for (int64_t head = 0; head < batch_ * heads_; ++head) {
    const size_t to = static_cast<size_t>((head * capacity_ + length_) * head_size_);
    std::memcpy(keys_.data() + to, k.data() + head * row, row * sizeof(float));
    std::memcpy(values_.data() + to, v.data() + head * row, row * sizeof(float));
  }
  length_ += positions;
}

void kv_decode(const KvCache& cache, ConstView q, View out, const KvDecodeOptions& options, ThreadPool* pool) {
  const int64_t B = cache.batch(), H = cache.heads(), dh = cache.head_size();
  require(cache.length() > 0, "kv_decode: the cache is empty; append the step's k and v first");
  require_shape(q, "q", {B, H, dh});
  require_shape(out, "out", {B, H, dh});
  require(q.data() != out.data(), "kv_decode: out must not be q");
  detail::check_kv_decode_chunk(options);
  const float scale = detail::kv_decode_scale(options, dh);
  require_finite_values(q, "kv_decode", "q");
  const detail::KvDecodeArgs args{static_cast<size_t>(B * H),
                                  static_cast<size_t>(cache.length()),
                                  static_cast<size_t>(cache.capacity()),
                                  static_cast<size_t>(dh),
                                  static_cast<size_t>(std::min(options.chunk, cache.length())),
                                  scale,
                                  q.data(),
                                  cache.keys().data(),
                                  cache.values().data(),
                                  out.data()};
  HWY_DYNAMIC_DISPATCH(KvDecode)(args, pool ? pool : &ThreadPool::global());
}

}  // namespace seqk
#endif  // HWY_ONCE
