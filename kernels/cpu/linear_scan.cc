// The diagonal linear recurrence (seqk/scan.h) for each SIMD target. One
// scan routine serves both directions: the backward is the same recurrence
// run from the last step to the first, with a_{t+1} as its coefficient.
#include "seqk/scan.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "seqk/aligned.h"
#include "seqk/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/linear_scan.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

// Defined once: foreach_target.h includes this file again for every target.
#ifndef SEQK_CPU_LINEAR_SCAN_ROWS_
#define SEQK_CPU_LINEAR_SCAN_ROWS_
namespace seqk::detail {

// The rows of a scan: row r combines coefficient row r and input row r; the
// rows may run backwards in memory (a negative stride).
struct ScanRows {
  const float* coef;  // row 0's coefficient is never read when the scan starts from zero
  const float* x;
  float* out;
  ptrdiff_t stride;  // between rows of all three, in floats
  size_t rows, channels;
  const float* init;  // (channels) state before row 0, or null for zero
};

}  // namespace seqk::detail
#endif  // SEQK_CPU_LINEAR_SCAN_ROWS_

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace {

// Channel vectors a scan keeps in flight: a row's block is contiguous, so
// the rows stream through memory in order (a column at a time would stride
// through it), and the block's independent FMA chains hide their latency.
constexpr size_t kBlockVectors = 8;

// Rows [r0, r1) of channels [c0, c1): out = coef ⊙ state + x, the state
// starting at `state` (null: zero) and left in `state_out` (null: dropped);
// `product` (null: not wanted) gets Π coef over the rows.
void ScanBlock(const detail::ScanRows& s, size_t r0, size_t r1, size_t c0, size_t c1, const float* state,
               float* state_out, float* product) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  size_t c = c0;
  for (; c + lanes <= c1;) {
    const size_t vectors = std::min(kBlockVectors, (c1 - c) / lanes);
    V h[kBlockVectors], p[kBlockVectors];
    for (size_t v = 0; v < vectors; ++v) {
      h[v] = state ? hn::LoadU(d, state + c - c0 + v * lanes) : hn::Zero(d);
      p[v] = hn::Set(d, 1.0f);
    }
    for (size_t r = r0; r < r1; ++r) {
      const ptrdiff_t at = static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c);
      const bool from_zero = r == 0 && !state;  // row 0's coefficient does not matter (and may not exist)
      for (size_t v = 0; v < vectors; ++v) {
        const auto x = hn::LoadU(d, s.x + at + v * lanes);
        if (from_zero) {
          h[v] = x;
        } else {
          const auto a = hn::LoadU(d, s.coef + at + v * lanes);
          h[v] = hn::MulAdd(a, h[v], x);
          if (product) p[v] = hn::Mul(p[v], a);
        }
        hn::StoreU(h[v], d, s.out + at + v * lanes);
      }
    }
    for (size_t v = 0; v < vectors; ++v) {
      if (state_out) hn::StoreU(h[v], d, state_out + c - c0 + v * lanes);
      if (product) hn::StoreU(p[v], d, product + c - c0 + v * lanes);
    }
    c += vectors * lanes;
  }
  for (; c < c1; ++c) {
    float h = state ? state[c - c0] : 0.0f, p = 1.0f;
    for (size_t r = r0; r < r1; ++r) {
      const ptrdiff_t at = static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c);
      if (r == 0 && !state) {
        h = s.x[at];
      } else {
        h = s.coef[at] * h + s.x[at];
        if (product) p *= s.coef[at];
      }
      s.out[at] = h;
    }
    if (state_out) state_out[c - c0] = h;
    if (product) product[c - c0] = p;
  }
}

// Rows [r0, r1): out += (Π coef up to the row) ⊙ carry.
void FixUpBlock(const detail::ScanRows& s, size_t r0, size_t r1, const float* carry) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  size_t c = 0;
  for (; c + lanes <= s.channels; c += lanes) {
    auto p = hn::LoadU(d, carry + c);
    for (size_t r = r0; r < r1; ++r) {
      const ptrdiff_t at = static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c);
      p = hn::Mul(p, hn::LoadU(d, s.coef + at));
      hn::StoreU(hn::Add(hn::LoadU(d, s.out + at), p), d, s.out + at);
    }
  }
  for (; c < s.channels; ++c) {
    float p = carry[c];
    for (size_t r = r0; r < r1; ++r) {
      const ptrdiff_t at = static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c);
      p *= s.coef[at];
      s.out[at] += p;
    }
  }
}

}  // namespace

void ScanParallel(const detail::ScanRows& s, ThreadPool* pool) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), threads = static_cast<size_t>(pool->num_threads());
  // Wide rows (4 KiB or more per thread): each thread scans all rows of its
  // own channels, reading and writing every element once. Narrower rows
  // split that way make the threads stream interleaved pieces of the same
  // cache lines (each core's prefetcher then fetches the other's lines), and
  // one thread streaming a long scan already gets most of the bandwidth
  // (~80% of triad here): those run on the calling thread alone.
  constexpr size_t kChannelsPerThread = 1024;
  if (threads > 1 && s.channels >= threads * kChannelsPerThread) {
    pool->run([&](int thread_index, int num_threads) {
      const size_t vectors = (s.channels + lanes - 1) / lanes, n = static_cast<size_t>(num_threads);
      const size_t t = static_cast<size_t>(thread_index);
      const size_t c0 = std::min(s.channels, vectors * t / n * lanes);
      const size_t c1 = std::min(s.channels, vectors * (t + 1) / n * lanes);
      if (c0 < c1) ScanBlock(s, 0, s.rows, c0, c1, s.init ? s.init + c0 : nullptr, nullptr, nullptr);
    });
    return;
  }
  if (threads == 1 || s.channels >= threads * lanes || s.rows < 4 * threads) {
    ScanBlock(s, 0, s.rows, 0, s.channels, s.init, nullptr, nullptr);
    return;
  }
  // Fewer channels than a vector per thread: chunks of rows. Chunk 0 starts from the true state and is
  // final after one pass; the others are scanned from zero, then fixed up
  // (a second pass), so chunk 0 gets twice their share of rows.
  std::vector<size_t> bounds(threads + 1);
  for (size_t k = 0; k <= threads; ++k) bounds[k] = k == 0 ? 0 : s.rows * (k + 1) / (threads + 1);
  AlignedVector ends(threads * s.channels), products(threads * s.channels), carries(threads * s.channels);
  pool->run([&](int thread_index, int) {
    const size_t k = static_cast<size_t>(thread_index);
    float* end = &ends[k * s.channels];
    ScanBlock(s, bounds[k], bounds[k + 1], 0, s.channels, k == 0 ? s.init : nullptr, end,
              k == 0 ? nullptr : &products[k * s.channels]);
    pool->barrier();
    if (k == 0) {
      // The state entering chunk k: chunk 0's end, then carried through each chunk.
      std::memcpy(&carries[1 * s.channels], &ends[0], s.channels * sizeof(float));
      for (size_t j = 1; j + 1 < threads; ++j)
        for (size_t c = 0; c < s.channels; ++c)
          carries[(j + 1) * s.channels + c] =
              products[j * s.channels + c] * carries[j * s.channels + c] + ends[j * s.channels + c];
    }
    pool->barrier();
    if (k > 0) FixUpBlock(s, bounds[k], bounds[k + 1], &carries[k * s.channels]);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(ScanParallel);

namespace {

void require_sequence(const ConstView& v, const char* name, int64_t steps, int64_t batch, int64_t width) {
  require_shape(v, name, {steps, batch, width});
}

}  // namespace

void linear_scan(const LinearScanArgs& args, ThreadPool* pool) {
  require(args.a.data() != nullptr && args.a.rank() == 3, "a must be (T, B, D), got ", args.a.shape_string());
  const int64_t T = args.a.dim(0), B = args.a.dim(1), D = args.a.dim(2);
  require(T > 0 && B > 0 && D > 0, "a has an empty dimension: ", args.a.shape_string());
  require_sequence(args.a, "a", T, B, D);
  require_sequence(args.b, "b", T, B, D);
  require_shape(args.h, "h", {T, B, D});
  if (!args.h0.empty()) require_shape(args.h0, "h0", {B, D});
  const size_t channels = static_cast<size_t>(B * D);
  const detail::ScanRows rows{args.a.data(), args.b.data(), args.h.data(), static_cast<ptrdiff_t>(channels),
                              static_cast<size_t>(T), channels, args.h0.empty() ? nullptr : args.h0.data()};
  HWY_DYNAMIC_DISPATCH(ScanParallel)(rows, pool ? pool : &ThreadPool::global());
}

void linear_scan_backward(const LinearScanBackwardArgs& args, ThreadPool* pool) {
  require(args.a.data() != nullptr && args.a.rank() == 3, "a must be (T, B, D), got ", args.a.shape_string());
  const int64_t T = args.a.dim(0), B = args.a.dim(1), D = args.a.dim(2);
  require(T > 0 && B > 0 && D > 0, "a has an empty dimension: ", args.a.shape_string());
  require_sequence(args.a, "a", T, B, D);
  require_sequence(args.h, "h", T, B, D);
  require_sequence(args.dh, "dh", T, B, D);
  require_shape(args.da, "da", {T, B, D});
  require_shape(args.db, "db", {T, B, D});
  if (!args.h0.empty()) require_shape(args.h0, "h0", {B, D});
  if (!args.dh0.empty()) require_shape(args.dh0, "dh0", {B, D});
  pool = pool ? pool : &ThreadPool::global();
  const int64_t C = B * D;
  // g_t = dh_t + a_{t+1} ⊙ g_{t+1}: the forward scan over the rows taken
  // from the last to the first, coefficient row r being a at step T - r
  // (row 0's, one past the end, is never read). g is db.
  const detail::ScanRows rows{args.a.data() + T * C, args.dh.data() + (T - 1) * C, args.db.data() + (T - 1) * C,
                              -static_cast<ptrdiff_t>(C), static_cast<size_t>(T), static_cast<size_t>(C), nullptr};
  HWY_DYNAMIC_DISPATCH(ScanParallel)(rows, pool);
  // da_t = g_t ⊙ h_{t-1}, h_0 being h0 (or zero); dh0 = a_1 ⊙ g_1.
  const float* g = args.db.data();
  pool->run([&](int thread_index, int num_threads) {
    const int64_t begin = T * C * thread_index / num_threads, end = T * C * (thread_index + 1) / num_threads;
    for (int64_t i = begin; i < end; ++i) {
      const float h_prev = i >= C ? args.h.data()[i - C] : args.h0.empty() ? 0.0f : args.h0.data()[i];
      args.da.data()[i] = g[i] * h_prev;
    }
  });
  if (!args.dh0.empty())
    for (int64_t c = 0; c < C; ++c) args.dh0.data()[c] = args.a.data()[c] * g[c];
}

}  // namespace seqk
#endif  // HWY_ONCE
