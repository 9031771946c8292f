// The KV cache and decode on Vulkan: against the fp64 reference at awkward
// sizes (1 position, odd head sizes, contexts not a multiple of the chunk,
// chunks of 1, a chunk longer than the context, 2000 positions); a decode
// loop recorded in one submit against the CPU cache step by step (and the
// cache's contents bit for bit); the same bits on a second run; bad input
// rejected with nothing recorded. Sizes stay small: lavapipe runs shaders on
// the CPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kv_cache_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/kv_cache.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_kv_cache.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;
using seqk::ConstView;
using seqk::View;

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

// Fills the cache with the context through growing prefills, recorded on
// `stream` (the uploaded slices are kept alive in `keep` until the submit).
void fill(vk::Stream& stream, vk::KvCache& cache, const KvCase& c, const KvContext& ctx,
          std::vector<std::unique_ptr<vk::Buffer>>& keep) {
  for_each_prefill(c, [&](int64_t first, int64_t count) {
    keep.push_back(upload(stream.device(), positions(c, ctx.k, first, count)));
    keep.push_back(upload(stream.device(), positions(c, ctx.v, first, count)));
    cache.append(stream, *keep[keep.size() - 2], *keep.back(), count);
  });
}

class VulkanKvCache : public Vulkan {};

TEST_F(VulkanKvCache, DecodeMatchesFp64) {
  vk::Device device;
  const KvCase cases[] = {
      {1, 1, 1, 1, seqk::kKvDecodeChunk},  // one position
      {2, 3, 5, 7, 3},                     // the last chunk partial
      {1, 2, 64, 300, seqk::kKvDecodeChunk},
      {2, 1, 80, 130, 16},                 // dh > the workgroup: two dims per invocation
      {1, 1, 3, 50, 1},                    // a chunk per position
      {1, 2, 64, 20, 100},                 // a chunk longer than the context
      {1, 2, 64, 2000, seqk::kKvDecodeChunk},
  };
  uint64_t seed = 10;
  for (const KvCase& c : cases) {
    SCOPED_TRACE(describe(c));
    const KvContext ctx = random_context(c, seed += 10);
    vk::KvCache cache(device, c.B, c.H, c.length + 3, c.dh);
    vk::Stream stream(device);
    std::vector<std::unique_ptr<vk::Buffer>> keep;
    fill(stream, cache, c, ctx, keep);
    EXPECT_EQ(cache.length(), c.length);
    const auto q = upload(device, ctx.q);
    vk::Buffer out(device, ctx.q.size());
    vk::kv_decode(stream, cache, *q, out, {.chunk = c.chunk});
    stream.submit();
    const std::vector<double> want = reference_decode(c, ctx, default_scale(c));
    EXPECT_TRUE(close_uniform("out", out.download().data(), want.data(), kKvTolerance, want.size()));
  }
}

// Every step's append and decode recorded into one submit (the cache never
// comes back to the host), against the CPU cache decoding step by step.
TEST_F(VulkanKvCache, DecodeLoopMatchesCpu) {
  vk::Device device;
  const KvCase c{2, 3, 40, 45, 8};
  const int64_t T = c.length;
  const KvContext ctx = random_context(c, 50);
  const std::vector<float> q = random_floats(c.B * c.H * T * c.dh, 51, -2.0f, 2.0f);

  seqk::KvCache cpu(c.B, c.H, T, c.dh);
  vk::KvCache gpu(device, c.B, c.H, T, c.dh);
  vk::Stream stream(device);
  std::vector<std::unique_ptr<vk::Buffer>> keep, outs;
  std::vector<std::vector<float>> cpu_outs;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<float> k_t = positions(c, ctx.k, t, 1), v_t = positions(c, ctx.v, t, 1);
    const std::vector<float> q_t = positions(c, q, t, 1);
    cpu.append(ConstView(k_t.data(), {c.B, c.H, 1, c.dh}), ConstView(v_t.data(), {c.B, c.H, 1, c.dh}));
    cpu_outs.emplace_back(q_t.size());
    seqk::kv_decode(cpu, ConstView(q_t.data(), {c.B, c.H, c.dh}), View(cpu_outs.back().data(), {c.B, c.H, c.dh}),
                    {.chunk = c.chunk});
    for (const std::vector<float>* values : {&k_t, &v_t, &q_t}) keep.push_back(upload(device, *values));
    outs.push_back(std::make_unique<vk::Buffer>(device, q_t.size()));
    gpu.append(stream, *keep[keep.size() - 3], *keep[keep.size() - 2], 1);
    vk::kv_decode(stream, gpu, *keep.back(), *outs.back(), {.chunk = c.chunk});
  }
  stream.submit();
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> want = to_double(cpu_outs[t]);
    ASSERT_TRUE(close_uniform("vulkan vs cpu", outs[t]->download().data(), want.data(), kKvTolerance, want.size()))
        << "t=" << t;
  }
  const ConstView cpu_keys = cpu.keys(), cpu_values = cpu.values();
  EXPECT_EQ(gpu.keys().download(), std::vector<float>(cpu_keys.data(), cpu_keys.data() + cpu_keys.numel()));
  EXPECT_EQ(gpu.values().download(), std::vector<float>(cpu_values.data(), cpu_values.data() + cpu_values.numel()));
}

// No atomics: the combine adds the chunks in a fixed order.
TEST_F(VulkanKvCache, SameBitsOnEveryRun) {
  vk::Device device;
  const KvCase c{1, 2, 64, 700, 32};
  const KvContext ctx = random_context(c, 70);
  vk::KvCache cache(device, c.B, c.H, c.length, c.dh);
  vk::Stream stream(device);
  std::vector<std::unique_ptr<vk::Buffer>> keep;
  fill(stream, cache, c, ctx, keep);
  const auto q = upload(device, ctx.q);
  vk::Buffer first(device, ctx.q.size()), second(device, ctx.q.size());
  vk::kv_decode(stream, cache, *q, first, {.chunk = c.chunk});
  stream.submit();
  vk::kv_decode(stream, cache, *q, second, {.chunk = c.chunk});
  stream.submit();
  EXPECT_EQ(first.download(), second.download());
}

TEST_F(VulkanKvCache, RejectsBadInputRecordingNothing) {
  vk::Device device;
  const int64_t B = 2, H = 3, dh = 4, capacity = 5;
  EXPECT_THROW(vk::KvCache(device, B, 0, capacity, dh), seqk::Error);
  // Sizes whose product overflows int64 (2^64 wraps to 0) or exceeds 32-bit
  // indexing: a seqk::Error before any buffer is made.
  constexpr int64_t k16 = int64_t{1} << 16, k62 = int64_t{1} << 62;
  for (const auto& [b, h, c, d] : {std::tuple{int64_t{1}, int64_t{1}, k62, int64_t{1}}, std::tuple{k16, k16, k16, k16},
                                   std::tuple{k62, int64_t{4}, int64_t{1}, int64_t{1}}}) {
    SCOPED_TRACE(testing::Message() << b << " " << h << " " << c << " " << d);
    try {
      vk::KvCache huge(device, b, h, c, d);
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("floats per buffer"), std::string::npos) << e.what();
    }
  }
  vk::KvCache cache(device, B, H, capacity, dh);
  vk::Stream stream(device);
  vk::Buffer q(device, B * H * dh), out(device, B * H * dh), k3(device, B * H * 3 * dh), v3(device, B * H * 3 * dh),
      short_buffer(device, 7);
  EXPECT_THROW(vk::kv_decode(stream, cache, q, out), seqk::Error);  // empty cache

  cache.append(stream, k3, v3, 3);
  stream.submit();
  auto rejected_append = [&](const vk::Buffer& k, const vk::Buffer& v, int64_t positions) {
    EXPECT_THROW(cache.append(stream, k, v, positions), seqk::Error);
    EXPECT_EQ(cache.length(), 3);
  };
  rejected_append(k3, v3, 3);                      // 6 > capacity 5
  rejected_append(k3, v3, 0);                      // no positions
  rejected_append(k3, v3, 2);                      // buffers hold 3 positions
  rejected_append(k3, short_buffer, 3);
  // The cache's own buffer as the input (of the right size for an empty cache).
  vk::KvCache empty(device, B, H, capacity, dh);
  vk::Buffer v5(device, B * H * capacity * dh);
  EXPECT_THROW(empty.append(stream, empty.keys(), v5, capacity), seqk::Error);
  EXPECT_THROW(empty.append(stream, v5, empty.keys(), capacity), seqk::Error);
  EXPECT_EQ(empty.length(), 0);

  vk::Device other(device.info().index);           // another device on the same GPU
  vk::Buffer foreign(other, B * H * 3 * dh);
  EXPECT_THROW(cache.append(stream, foreign, v3, 2), seqk::Error);

  auto rejected_decode = [&](const vk::Buffer& q_in, vk::Buffer& out_in, seqk::KvDecodeOptions options = {}) {
    EXPECT_THROW(vk::kv_decode(stream, cache, q_in, out_in, options), seqk::Error);
  };
  rejected_decode(short_buffer, out);
  rejected_decode(q, short_buffer);
  rejected_decode(q, q);                                 // out is q
  rejected_decode(q, out, {.chunk = 0});
  rejected_decode(q, out, {.chunk = int64_t{1} << 24});  // more shared memory than any device has
  rejected_decode(q, out, {.scale = std::numeric_limits<float>::quiet_NaN()});
  vk::Stream other_stream(other);
  EXPECT_THROW(vk::kv_decode(other_stream, cache, q, out), seqk::Error);
  EXPECT_EQ(stream.recorded(), 0u);
  EXPECT_EQ(cache.length(), 3);
}

}  // namespace
}  // namespace seqk_test
