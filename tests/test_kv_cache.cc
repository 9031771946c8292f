// The KV cache and its decode step on every SIMD target: against an fp64
// softmax over the cached positions at awkward sizes (1 position, head sizes
// not a multiple of a vector, contexts not a multiple of the chunk, chunks of
// 1, a 5000-position context); a decode loop against the rows of a causal
// attention_forward over the same positions; the same bits on 1, 2 and 3
// threads; bad input rejected with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kv_cache_problem.h"
#include "reference.h"
#include "seqk/attention.h"
#include "seqk/error.h"
#include "seqk/kv_cache.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;

using Case = KvCase;

void fill(seqk::KvCache& cache, const Case& c, const KvContext& ctx) {
  for_each_prefill(c, [&](int64_t first, int64_t count) {
    const std::vector<float> k = positions(c, ctx.k, first, count), v = positions(c, ctx.v, first, count);
    cache.append(ConstView(k.data(), {c.B, c.H, count, c.dh}), ConstView(v.data(), {c.B, c.H, count, c.dh}));
  });
}

std::vector<float> decode(const seqk::KvCache& cache, const Case& c, const std::vector<float>& q, int threads) {
  std::vector<float> out(c.B * c.H * c.dh, kSentinel);
  seqk::ThreadPool pool(threads);
  seqk::kv_decode(cache, ConstView(q.data(), {c.B, c.H, c.dh}), View(out.data(), {c.B, c.H, c.dh}), {.chunk = c.chunk},
                  &pool);
  return out;
}

class KvCache : public TargetTest {};

TEST_P(KvCache, DecodeMatchesFp64) {
  const Case cases[] = {
      {1, 1, 1, 1, seqk::kKvDecodeChunk},   // one position, one chunk
      {2, 3, 5, 7, 3},                      // the last chunk partial
      {1, 2, 64, 300, seqk::kKvDecodeChunk},
      {2, 1, 80, 513, 64},                  // dh not a multiple of any vector; 9 chunks, the last of 1
      {1, 1, 3, 200, 1},                    // a chunk per position
      {1, 2, 64, 100, 1000},                // a chunk longer than the context
      {1, 3, 64, 5000, seqk::kKvDecodeChunk},  // long context: 20 chunks per head
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(describe(c));
    const KvContext ctx = random_context(c, seed += 10);
    seqk::KvCache cache(c.B, c.H, c.length + 5, c.dh);
    fill(cache, c, ctx);
    ASSERT_EQ(cache.length(), c.length);
    const std::vector<double> want = reference_decode(c, ctx, default_scale(c));
    const std::vector<float> got = decode(cache, c, ctx.q, 2);
    EXPECT_TRUE(close_uniform("out", got.data(), want.data(), kKvTolerance, want.size()));
  }
}

TEST_P(KvCache, ExplicitScale) {
  const Case c{2, 2, 7, 40, 16};
  const KvContext ctx = random_context(c, 90);
  seqk::KvCache cache(c.B, c.H, c.length, c.dh);
  fill(cache, c, ctx);
  std::vector<float> out(c.B * c.H * c.dh);
  seqk::kv_decode(cache, ConstView(ctx.q.data(), {c.B, c.H, c.dh}), View(out.data(), {c.B, c.H, c.dh}),
                  {.scale = -0.8f, .chunk = c.chunk});
  const std::vector<double> want = reference_decode(c, ctx, -0.8);
  EXPECT_TRUE(close_uniform("out", out.data(), want.data(), kKvTolerance, want.size()));
}

// Step t of a decode loop (append position t, then decode its query) gives
// row t of causal attention over all T positions: the last row of causal
// attention over the first t + 1.
TEST_P(KvCache, DecodeLoopMatchesCausalAttention) {
  for (const Case& c : {Case{2, 3, 64, 70, 16}, Case{1, 2, 5, 33, 4}}) {
    SCOPED_TRACE(describe(c));
    const int64_t T = c.length;
    const std::vector<float> q = random_floats(c.B * c.H * T * c.dh, 200, -2.0f, 2.0f);
    const std::vector<float> k = random_floats(q.size(), 201, -2.0f, 2.0f), v = random_floats(q.size(), 202);
    std::vector<float> want(q.size()), lse(c.B * c.H * T);
    seqk::AttentionInputs in{ConstView(q.data(), {c.B, c.H, T, c.dh}), ConstView(k.data(), {c.B, c.H, T, c.dh}),
                             ConstView(v.data(), {c.B, c.H, T, c.dh}), /*causal=*/true};
    seqk::attention_forward(in, View(want.data(), {c.B, c.H, T, c.dh}), View(lse.data(), {c.B, c.H, T}));

    seqk::KvCache cache(c.B, c.H, T, c.dh);
    for (int64_t t = 0; t < T; ++t) {
      const Case at{c.B, c.H, c.dh, T, c.chunk};
      const std::vector<float> k_t = positions(at, k, t, 1), v_t = positions(at, v, t, 1);
      const std::vector<float> q_t = positions(at, q, t, 1);
      cache.append(ConstView(k_t.data(), {c.B, c.H, 1, c.dh}), ConstView(v_t.data(), {c.B, c.H, 1, c.dh}));
      const std::vector<float> got = decode(cache, c, q_t, 3);
      const std::vector<float> row = positions(at, want, t, 1);
      const std::vector<double> row64 = to_double(row);
      ASSERT_TRUE(close_uniform("decode vs attention row", got.data(), row64.data(), 2e-6, row.size())) << "t=" << t;
    }
  }
}

// Units are handed out dynamically but every chunk's partial and every
// head's combine are computed in a fixed order.
TEST_P(KvCache, SameBitsOnAnyThreadCount) {
  const Case c{1, 3, 64, 5000, 100};
  const KvContext ctx = random_context(c, 300);
  seqk::KvCache cache(c.B, c.H, c.length, c.dh);
  fill(cache, c, ctx);
  const std::vector<float> one = decode(cache, c, ctx.q, 1);
  for (int threads : {2, 3}) EXPECT_EQ(one, decode(cache, c, ctx.q, threads)) << threads << " threads";
}

INSTANTIATE_TEST_SUITE_P(Targets, KvCache, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// Every rejection happens before anything is written: the cache's length and
// contents and the output stay as they were.
TEST(KvCacheErrors, RejectsBadInputWritingNothing) {
  const int64_t B = 2, H = 3, dh = 4, capacity = 5;
  EXPECT_THROW(seqk::KvCache(0, H, capacity, dh), seqk::Error);
  EXPECT_THROW(seqk::KvCache(B, H, 0, dh), seqk::Error);
  EXPECT_THROW(seqk::KvCache(B, H, capacity, -1), seqk::Error);
  // Sizes whose product overflows int64 (2^64 wraps to 0) or exceeds what a
  // buffer can hold: a seqk::Error before anything is allocated.
  constexpr int64_t k16 = int64_t{1} << 16, k62 = int64_t{1} << 62;
  for (const auto& [b, h, c, d] : {std::tuple{k16, k16, k16, k16}, std::tuple{int64_t{1}, int64_t{1}, k62, int64_t{1}},
                                   std::tuple{k62, int64_t{4}, int64_t{1}, int64_t{1}},
                                   std::tuple{int64_t{3}, int64_t{5}, k62 / 3, int64_t{7}}}) {
    SCOPED_TRACE(testing::Message() << b << " " << h << " " << c << " " << d);
    try {
      seqk::KvCache huge(b, h, c, d);
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("floats per buffer"), std::string::npos) << e.what();
    }
  }

  seqk::KvCache cache(B, H, capacity, dh);
  std::vector<float> q = random_floats(B * H * dh, 1), out(B * H * dh, kSentinel);
  const ConstView q_view(q.data(), {B, H, dh});
  const View out_view(out.data(), {B, H, dh});
  EXPECT_THROW(seqk::kv_decode(cache, q_view, out_view), seqk::Error);  // empty cache

  const std::vector<float> k3 = random_floats(B * H * 3 * dh, 2), v3 = random_floats(B * H * 3 * dh, 3);
  cache.append(ConstView(k3.data(), {B, H, 3, dh}), ConstView(v3.data(), {B, H, 3, dh}));
  const std::vector<float> keys(cache.keys().data(), cache.keys().data() + cache.keys().numel());
  const std::vector<float> values(cache.values().data(), cache.values().data() + cache.values().numel());
  int64_t length = 3;
  auto rejected_append = [&](ConstView k, ConstView v) {
    EXPECT_THROW(cache.append(k, v), seqk::Error);
    EXPECT_EQ(cache.length(), length);
  };
  rejected_append(ConstView(k3.data(), {B, H, 3, dh}), ConstView(v3.data(), {B, H, 3, dh}));  // 6 > capacity 5
  rejected_append(ConstView(k3.data(), {B, H, 1, dh}), ConstView(v3.data(), {B, H, 2, dh}));  // P differs
  rejected_append(ConstView(k3.data(), {B, H, 1, dh + 1}), ConstView(v3.data(), {B, H, 1, dh + 1}));
  rejected_append(ConstView(k3.data(), {H, B, 1, dh}), ConstView(v3.data(), {H, B, 1, dh}));
  rejected_append(ConstView(k3.data(), {B, H, dh}), ConstView(v3.data(), {B, H, dh}));  // rank 3
  rejected_append(ConstView(k3.data(), {B, H, 0, dh}), ConstView(v3.data(), {B, H, 0, dh}));  // no positions
  rejected_append(ConstView(k3.data(), {B, H, 1, dh}, {H * dh * 2, dh * 2, dh, 1}),  // not contiguous
                  ConstView(v3.data(), {B, H, 1, dh}));
  std::vector<float> bad = random_floats(B * H * dh, 4);
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  rejected_append(ConstView(bad.data(), {B, H, 1, dh}), ConstView(v3.data(), {B, H, 1, dh}));
  bad[5] = std::numeric_limits<float>::infinity();
  rejected_append(ConstView(v3.data(), {B, H, 1, dh}), ConstView(bad.data(), {B, H, 1, dh}));
  EXPECT_EQ(keys, std::vector<float>(cache.keys().data(), cache.keys().data() + cache.keys().numel()));
  EXPECT_EQ(values, std::vector<float>(cache.values().data(), cache.values().data() + cache.values().numel()));

  auto rejected_decode = [&](ConstView q, View out, seqk::KvDecodeOptions options = {}) {
    EXPECT_THROW(seqk::kv_decode(cache, q, out, options), seqk::Error);
  };
  rejected_decode(ConstView(q.data(), {B, H, dh - 1}), out_view);
  rejected_decode(ConstView(q.data(), {H, B, dh}), out_view);
  rejected_decode(q_view, View(out.data(), {B, H, 1, dh}));
  rejected_decode(q_view, out_view, {.chunk = 0});
  rejected_decode(q_view, out_view, {.scale = std::numeric_limits<float>::infinity()});
  rejected_decode(q_view, View(q.data(), {B, H, dh}));  // out is q
  q[2] = std::numeric_limits<float>::quiet_NaN();
  rejected_decode(q_view, out_view);
  EXPECT_TRUE(all_sentinel(out.data(), out.size()));

  // Filling to the capacity exactly works; clear() starts over.
  cache.append(ConstView(k3.data(), {B, H, 2, dh}), ConstView(v3.data(), {B, H, 2, dh}));
  length = capacity;
  EXPECT_EQ(cache.length(), length);
  rejected_append(ConstView(k3.data(), {B, H, 1, dh}), ConstView(v3.data(), {B, H, 1, dh}));
  cache.clear();
  EXPECT_EQ(cache.length(), 0);
  cache.append(ConstView(k3.data(), {B, H, 1, dh}), ConstView(v3.data(), {B, H, 1, dh}));
  EXPECT_EQ(cache.length(), 1);
}

}  // namespace
}  // namespace seqk_test
