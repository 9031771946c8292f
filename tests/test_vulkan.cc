// The Vulkan runtime (devices, buffers, streams, the pipeline cache) and the
// GPU GEMM against a plain fp64 loop. Runs under the validation layers
// (meson sets SEQK_VULKAN_VALIDATION=1); any validation message fails the
// test it appeared in. Skips with a message when there is no Vulkan device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "seqk/error.h"
#include "seqk/gemm.h"
#include "seqk/vulkan.h"
#include "vulkan_fixture.h"

namespace {

namespace vk = seqk::vk;
using seqk_test::Vulkan;

// Sets an environment variable for one scope, restoring the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::vector<float> random_values(std::size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

// C = A·Bᵀ (+ bias) in double.
std::vector<double> reference_gemm(const std::vector<float>& a, const std::vector<float>& b, const float* bias,
                                   int64_t m, int64_t n, int64_t k) {
  std::vector<double> c(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias ? bias[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) sum += static_cast<double>(a[i * k + p]) * b[j * k + p];
      c[i * n + j] = sum;
    }
  }
  return c;
}

TEST_F(Vulkan, ValidationIsOnUnderMeson) {
  const char* env = std::getenv("SEQK_VULKAN_VALIDATION");
  if (!env || std::string(env) != "1") GTEST_SKIP() << "SEQK_VULKAN_VALIDATION is not 1 (not run by meson test)";
  EXPECT_TRUE(vk::validation_enabled());
}

TEST_F(Vulkan, ListsDevices) {
  const std::vector<vk::DeviceInfo> devices = vk::list_devices();
  ASSERT_FALSE(devices.empty());
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const vk::DeviceInfo& info = devices[i];
    EXPECT_EQ(info.index, static_cast<int>(i));
    EXPECT_FALSE(info.name.empty());
    EXPECT_FALSE(info.driver_name.empty());
    EXPECT_GT(info.subgroup_size, 0u) << info.name;
    EXPECT_GE(info.max_shared_memory, 16384u) << info.name << ": below the Vulkan minimum";
    EXPECT_GE(info.api_version, (1u << 22) | (1u << 12)) << info.name << ": below Vulkan 1.1";
    std::printf("device %d: %s (%s, %s) Vulkan %u.%u, subgroup %u, shared %u B, fp16 %d, timestamps %d\n", info.index,
                info.name.c_str(), info.driver_name.c_str(), vk::to_string(info.type), info.api_version >> 22,
                (info.api_version >> 12) & 0x3ff, info.subgroup_size, info.max_shared_memory, info.fp16,
                info.timestamps);
  }
  vk::Device device;
  EXPECT_FALSE(device.info().name.empty());
}

TEST_F(Vulkan, BufferRoundTrip) {
  std::mt19937 rng(1);
  // Once mapped directly (where the device allows), once through staging copies.
  for (const char* staging : {"0", "1"}) {
    ScopedEnv env("SEQK_VULKAN_FORCE_STAGING", staging);
    vk::Device device;
    for (std::size_t count : {1u, 7u, 1000u}) {
      const std::vector<float> data = random_values(count, rng);
      vk::Buffer buffer(device, count);
      EXPECT_EQ(buffer.size(), count);
      buffer.upload(data);
      EXPECT_EQ(buffer.download(), data) << "count " << count << " staging " << staging;
    }
    vk::Buffer buffer(device, 4);
    std::vector<float> wrong(5);
    EXPECT_THROW(buffer.upload(wrong), seqk::Error);
    EXPECT_THROW(buffer.download(wrong), seqk::Error);
    EXPECT_THROW(vk::Buffer(device, 0), seqk::Error);
  }
}

struct GemmCase {
  int64_t m, n, k;
  std::vector<float> a, b, bias;
  std::unique_ptr<vk::Buffer> a_buf, b_buf, c_buf, bias_buf;
};

// Every (M, N, K) in {1, 7, 16, 17, 33}^3, with and without bias, at four
// tile sizes (four pipelines of one kernel: 8 and 16 with one element per
// invocation, 128 with 8 x 8, and the shape's choice, 64 with 4 x 4, for 0).
// All shapes of one configuration go into one stream and one submit.
TEST_F(Vulkan, GemmMatchesFp64AtAwkwardSizes) {
  vk::Device device;
  std::mt19937 rng(7);
  const int64_t sizes[] = {1, 7, 16, 17, 33};
  for (const char* staging : {"0", "1"}) {
    ScopedEnv env("SEQK_VULKAN_FORCE_STAGING", staging);
    vk::Device device;
    for (uint32_t tile : {16u, 8u, 128u, 0u}) {
      for (bool with_bias : {false, true}) {
        vk::Stream stream(device);
        std::vector<GemmCase> cases;
        for (int64_t m : sizes) {
          for (int64_t n : sizes) {
            for (int64_t k : sizes) {
              GemmCase c;
              c.m = m;
              c.n = n;
              c.k = k;
              c.a = random_values(m * k, rng);
              c.b = random_values(n * k, rng);
              c.bias = random_values(n, rng);
              c.a_buf = std::make_unique<vk::Buffer>(device, c.a.size());
              c.b_buf = std::make_unique<vk::Buffer>(device, c.b.size());
              c.c_buf = std::make_unique<vk::Buffer>(device, m * n);
              c.a_buf->upload(c.a);
              c.b_buf->upload(c.b);
              if (with_bias) {
                c.bias_buf = std::make_unique<vk::Buffer>(device, n);
                c.bias_buf->upload(c.bias);
              }
              vk::gemm(stream, *c.a_buf, *c.b_buf, *c.c_buf, m, n, k, c.bias_buf.get(), tile);
              cases.push_back(std::move(c));
            }
          }
        }
        EXPECT_EQ(stream.recorded(), cases.size());
        stream.submit();
        EXPECT_EQ(stream.recorded(), 0u);
        for (const GemmCase& c : cases) {
          const std::vector<float> got = c.c_buf->download();
          const std::vector<double> want =
              reference_gemm(c.a, c.b, with_bias ? c.bias.data() : nullptr, c.m, c.n, c.k);
          // fp32 accumulation of k products of values in [-1, 1]: the error
          // grows at most ~k * eps; 1e-5 * (k + 1) leaves ~10x headroom.
          const double tolerance = 1e-5 * static_cast<double>(c.k + 1);
          int bad = 0;
          for (std::size_t i = 0; i < want.size() && bad < 3; ++i) {
            if (!(std::abs(got[i] - want[i]) <= tolerance)) {
              ++bad;
              ADD_FAILURE() << "m=" << c.m << " n=" << c.n << " k=" << c.k << " tile=" << tile
                            << " bias=" << with_bias << " staging=" << staging << " C[" << i / c.n << "," << i % c.n
                            << "] = " << got[i] << ", want " << want[i];
            }
          }
        }
      }
    }
    // One pipeline per tile size: the cache is reused across streams and shapes.
    EXPECT_EQ(device.pipeline_count(), 4u);
  }
  EXPECT_EQ(device.pipeline_count(), 0u);  // the outer device never ran anything
}

// Two dependent GEMMs in one submit: the second reads what the first wrote,
// which only works with the barrier between them.
// The GPU kernel against the CPU kernel a user would otherwise call, at the
// shapes of a small recurrent step (M = batch) and an input projection (M =
// steps x batch), including sizes that are not multiples of either side's
// tile. Both sum K fp32 products in different orders, so they agree to
// ~sqrt(K)·eps·Σ|terms| ≤ 1e-5·K for values in [-1, 1].
TEST_F(Vulkan, GemmMatchesCpuKernel) {
  vk::Device device;
  std::mt19937 rng(11);
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{5, 68, 17}, {1, 129, 64}, {35, 64, 33}}) {
    const std::vector<float> a = random_values(m * k, rng), b = random_values(n * k, rng),
                             bias = random_values(n, rng);
    std::vector<float> cpu(static_cast<size_t>(m * n));
    seqk::gemm(seqk::ConstView(a.data(), {m, k}), seqk::PackedMatrix(seqk::ConstView(b.data(), {n, k})),
               seqk::View(cpu.data(), {m, n}), {.bias = bias.data()});
    vk::Buffer a_buf(device, a.size()), b_buf(device, b.size()), bias_buf(device, bias.size()),
        c_buf(device, cpu.size());
    a_buf.upload(a);
    b_buf.upload(b);
    bias_buf.upload(bias);
    vk::Stream stream(device);
    vk::gemm(stream, a_buf, b_buf, c_buf, m, n, k, &bias_buf);
    stream.submit();
    const std::vector<float> gpu = c_buf.download();
    const double tolerance = 1e-5 * static_cast<double>(k);
    for (size_t i = 0; i < cpu.size(); ++i)
      ASSERT_NEAR(gpu[i], cpu[i], tolerance) << "m=" << m << " n=" << n << " k=" << k << " at " << i;
  }
}

TEST_F(Vulkan, DependentDispatchesSeeEarlierWrites) {
  vk::Device device;
  std::mt19937 rng(3);
  const int64_t m = 17, k = 33, n1 = 16, n2 = 7;
  const std::vector<float> a = random_values(m * k, rng), b1 = random_values(n1 * k, rng),
                           b2 = random_values(n2 * n1, rng);
  vk::Buffer a_buf(device, a.size()), b1_buf(device, b1.size()), b2_buf(device, b2.size());
  vk::Buffer c1(device, m * n1), c2(device, m * n2);
  a_buf.upload(a);
  b1_buf.upload(b1);
  b2_buf.upload(b2);
  vk::Stream stream(device, device.info().timestamps);
  vk::gemm(stream, a_buf, b1_buf, c1, m, n1, k);
  vk::gemm(stream, c1, b2_buf, c2, m, n2, n1);
  stream.submit();
  const std::vector<double> first = reference_gemm(a, b1, nullptr, m, n1, k);
  const std::vector<float> first_f(first.begin(), first.end());
  const std::vector<double> want = reference_gemm(first_f, b2, nullptr, m, n2, n1);
  const std::vector<float> got = c2.download();
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-3) << "C2[" << i << "]";
  if (device.info().timestamps) {
    EXPECT_GE(stream.last_gpu_ms(), 0.0);
    std::printf("two gemms: %.4f GPU ms\n", stream.last_gpu_ms());
  } else {
    EXPECT_THROW(stream.last_gpu_ms(), seqk::Error);
  }
}

TEST_F(Vulkan, GemmRejectsBadShapes) {
  vk::Device device;
  vk::Buffer a(device, 6), b(device, 6), c(device, 4), bias(device, 3);
  vk::Stream stream(device);
  EXPECT_NO_THROW(vk::gemm(stream, a, b, c, 2, 2, 3));
  EXPECT_THROW(vk::gemm(stream, a, b, c, 2, 2, 4), seqk::Error);         // a too small for k=4
  EXPECT_THROW(vk::gemm(stream, a, b, c, 3, 2, 2), seqk::Error);         // c is 4, not 6
  EXPECT_THROW(vk::gemm(stream, a, b, c, 0, 2, 3), seqk::Error);
  EXPECT_THROW(vk::gemm(stream, a, b, c, 2, 2, 3, &bias), seqk::Error);  // bias is 3, not n=2
  EXPECT_THROW(vk::gemm(stream, a, b, c, 2, 2, 3, nullptr, 257), seqk::Error);
  EXPECT_THROW(vk::gemm(stream, a, b, c, 2, 2, 3, nullptr, 1024), seqk::Error);
  EXPECT_THROW(vk::gemm(stream, a, b, a, 2, 3, 3), seqk::Error);         // c aliases a
  EXPECT_EQ(stream.recorded(), 1u);  // rejected calls recorded nothing
  stream.submit();
}

TEST_F(Vulkan, BadDeviceChoiceThrows) {
  const std::size_t count = vk::list_devices().size();
  for (const std::string& bad : {std::to_string(count), std::string("no such device name"), std::string("99999999999")}) {
    ScopedEnv env("SEQK_VULKAN_DEVICE", bad.c_str());
    try {
      vk::Device device;
      ADD_FAILURE() << "SEQK_VULKAN_DEVICE=" << bad << " did not throw";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("SEQK_VULKAN_DEVICE"), std::string::npos) << e.what();
    }
  }
  // A valid index and a substring of a name do work.
  const std::string name = vk::list_devices()[0].name;
  {
    ScopedEnv env("SEQK_VULKAN_DEVICE", "0");
    EXPECT_EQ(vk::Device().info().name, name);
  }
  {
    ScopedEnv env("SEQK_VULKAN_DEVICE", name.substr(0, 3).c_str());
    EXPECT_NE(vk::Device().info().name.find(name.substr(0, 3)), std::string::npos);
  }
}

// Runs where there is no device (e.g. VK_DRIVER_FILES=/nonexistent): the
// runtime must say so with a seqk::Error, not crash.
TEST(VulkanUnavailable, DeviceThrowsAClearError) {
  if (vk::vulkan_available()) GTEST_SKIP() << "a Vulkan device is present";
  try {
    vk::Device device;
    ADD_FAILURE() << "Device() did not throw without a device";
  } catch (const seqk::Error& e) {
    std::printf("without a device: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("vulkan"), std::string::npos) << e.what();
  }
}

}  // namespace
