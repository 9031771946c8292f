// The diagonal linear recurrence (seqk/scan.h) for each SIMD target. One
// scan routine serves both directions: the backward is the same recurrence
// run from the last step to the first, with a_{t+1} as its coefficient.
#include "seqk/scan.h"

#include <algorithm>
#include <atomic>
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

// What a pass over rows computes: the outputs, written out; or only the
// end state and Π coef (a chunk's aggregate), writing nothing.
enum class Pass { kWrite, kAggregate };

// Rows [r0, r1) of kVectors channel vectors from channel c (relative to c0
// in state, state_out and product): out = coef ⊙ state + x, the state
// starting at `state` (null: zero) and left in `state_out` (null: dropped).
// kVectors is a constant so that the states live in registers: the rows
// stream through memory in order, and the vectors' independent FMA chains
// hide their latency.
template <Pass kPass, size_t kVectors>
void ScanVectors(const detail::ScanRows& s, size_t r0, size_t r1, size_t c, size_t c0, const float* state,
                 float* state_out, float* product) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t lanes = hn::Lanes(d);
  V h[kVectors], p[kVectors];
  for (size_t v = 0; v < kVectors; ++v) {
    h[v] = state ? hn::LoadU(d, state + c - c0 + v * lanes) : hn::Zero(d);
    if constexpr (kPass == Pass::kAggregate) p[v] = hn::LoadU(d, product + c - c0 + v * lanes);
  }
  auto at = [&](size_t r) { return static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c); };
  if (r0 == 0 && !state && r0 < r1) {  // row 0's coefficient does not matter (and may not exist)
    for (size_t v = 0; v < kVectors; ++v) {
      h[v] = hn::LoadU(d, s.x + at(0) + v * lanes);
      if constexpr (kPass == Pass::kWrite) hn::StoreU(h[v], d, s.out + at(0) + v * lanes);
    }
    ++r0;
  }
  for (size_t r = r0; r < r1; ++r) {
    const ptrdiff_t row = at(r);
    for (size_t v = 0; v < kVectors; ++v) {
      const auto a = hn::LoadU(d, s.coef + row + v * lanes);
      h[v] = hn::MulAdd(a, h[v], hn::LoadU(d, s.x + row + v * lanes));
      if constexpr (kPass == Pass::kAggregate) p[v] = hn::Mul(p[v], a);
      if constexpr (kPass == Pass::kWrite) hn::StoreU(h[v], d, s.out + row + v * lanes);
    }
  }
  for (size_t v = 0; v < kVectors; ++v) {
    if (state_out) hn::StoreU(h[v], d, state_out + c - c0 + v * lanes);
    if constexpr (kPass == Pass::kAggregate) hn::StoreU(p[v], d, product + c - c0 + v * lanes);
  }
}

// Rows [r0, r1) of channels [c0, c1), as ScanVectors; kAggregate multiplies
// `product` by Π coef over the rows.
template <Pass kPass>
void ScanRowsOf(const detail::ScanRows& s, size_t r0, size_t r1, size_t c0, size_t c1, const float* state,
                float* state_out, float* product) {
  const size_t lanes = hn::Lanes(hn::ScalableTag<float>());
  size_t c = c0;
  // Blocks of 8 vectors, then at most one each of 4, 2 and 1.
  auto blocks = [&]<size_t kVectors>() {
    for (; c + kVectors * lanes <= c1; c += kVectors * lanes)
      ScanVectors<kPass, kVectors>(s, r0, r1, c, c0, state, state_out, product);
  };
  blocks.template operator()<8>();
  blocks.template operator()<4>();
  blocks.template operator()<2>();
  blocks.template operator()<1>();
  for (; c < c1; ++c) {
    float h = state ? state[c - c0] : 0.0f, p = 1.0f;
    for (size_t r = r0; r < r1; ++r) {
      const ptrdiff_t at = static_cast<ptrdiff_t>(r) * s.stride + static_cast<ptrdiff_t>(c);
      if (r == 0 && !state) {
        h = s.x[at];
      } else {
        h = s.coef[at] * h + s.x[at];
        p *= s.coef[at];
      }
      if constexpr (kPass == Pass::kWrite) s.out[at] = h;
    }
    if (state_out) state_out[c - c0] = h;
    if constexpr (kPass == Pass::kAggregate) product[c - c0] *= p;
  }
}

void ScanBlock(const detail::ScanRows& s, size_t r0, size_t r1, const float* state) {
  ScanRowsOf<Pass::kWrite>(s, r0, r1, 0, s.channels, state, nullptr, nullptr);
}

// A long scan of few channels on several threads, reading every input from
// memory once. The rows go in chunks small enough for a chunk's a and x to
// stay in cache, dealt to the threads in turn (thread t runs chunks t, t+P,
// t+2P, ...). A chunk is run twice: first from zero without writing (its
// end state and Π a: its "aggregate"), then again from the true state
// entering it, now reading from cache and writing out. The compute doubles,
// the memory traffic does not: the scan is bound by the memory, and one
// thread cannot draw all of it.
//
// The state leaving chunk k is chunk k's aggregate applied to the state
// leaving chunk k−1; each chunk's owner publishes it as soon as it has both,
// before rescanning, which is a hand-off to the next chunk's owner, not a
// barrier: the hand-offs run ahead at the speed of the aggregates, so in a
// steady state no thread waits.
//
// A chunk's a and x: about one core's L2. On the development VM (1 MiB of
// L2 per core) 1 and 2 MiB gave 86-88% of the paired triad, 512 KiB 81-83%,
// 8 MiB 71-74%.
constexpr size_t kChunkBytes = size_t{1} << 20;

void ScanChained(const detail::ScanRows& s, ThreadPool* pool) {
  const size_t threads = static_cast<size_t>(pool->num_threads()), C = s.channels;
  const size_t chunk_rows =
      std::clamp(kChunkBytes / (2 * C * sizeof(float)), size_t{1}, (s.rows + threads - 1) / threads);
  const size_t chunks = (s.rows + chunk_rows - 1) / chunk_rows;
  // The state leaving each chunk, and whether it is there yet.
  AlignedVector leaving(chunks * C);
  std::vector<std::atomic<uint32_t>> published(chunks);

  auto publish = [&](size_t chunk) {
    published[chunk].store(1, std::memory_order_release);
    published[chunk].notify_all();
  };

  pool->run([&](int thread_index, int) {
    AlignedVector end_state(C), product(C);
    for (size_t chunk = static_cast<size_t>(thread_index); chunk < chunks; chunk += threads) {
      const size_t begin = chunk * chunk_rows, end = std::min(s.rows, begin + chunk_rows);
      if (chunk == 0) {  // the state entering it is known: one pass
        ScanRowsOf<Pass::kWrite>(s, begin, end, 0, C, s.init, &leaving[0], nullptr);
        publish(0);
        continue;
      }
      std::fill(product.begin(), product.end(), 1.0f);
      ScanRowsOf<Pass::kAggregate>(s, begin, end, 0, C, nullptr, end_state.data(), product.data());
      wait_while_equal(published[chunk - 1], 0);
      const float* entering = &leaving[(chunk - 1) * C];  // written once, before it was published
      float* out = &leaving[chunk * C];
      for (size_t c = 0; c < C; ++c) out[c] = product[c] * entering[c] + end_state[c];
      publish(chunk);
      ScanRowsOf<Pass::kWrite>(s, begin, end, 0, C, entering, nullptr, nullptr);
    }
  });
}

}  // namespace

void ScanParallel(const detail::ScanRows& s, ThreadPool* pool) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), threads = static_cast<size_t>(pool->num_threads());
  // Wide rows (4 KiB or more per thread): each thread scans all rows of its
  // own channels, reading and writing every element once. Narrower rows
  // split that way make the threads stream interleaved pieces of the same
  // cache lines (each core's prefetcher then fetches the other's lines).
  constexpr size_t kChannelsPerThread = 1024;
  // Below this many elements a scan is over in microseconds, about what
  // waking the pool's threads costs: the calling thread runs it alone.
  constexpr size_t kMinParallelElements = size_t{1} << 14;
  if (threads > 1 && s.channels >= threads * kChannelsPerThread) {
    pool->run([&](int thread_index, int num_threads) {
      const size_t vectors = (s.channels + lanes - 1) / lanes, n = static_cast<size_t>(num_threads);
      const size_t t = static_cast<size_t>(thread_index);
      const size_t c0 = std::min(s.channels, vectors * t / n * lanes);
      const size_t c1 = std::min(s.channels, vectors * (t + 1) / n * lanes);
      if (c0 < c1) ScanRowsOf<Pass::kWrite>(s, 0, s.rows, c0, c1, s.init ? s.init + c0 : nullptr, nullptr, nullptr);
    });
  } else if (threads > 1 && s.rows >= threads && s.rows * s.channels >= kMinParallelElements) {
    ScanChained(s, pool);
  } else {
    ScanBlock(s, 0, s.rows, s.init);
  }
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
