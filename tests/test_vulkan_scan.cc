// The linear scan on Vulkan against the CPU scan (test_linear_scan.cc checks
// that against fp64 and finite differences), forward and backward, at sizes
// that leave the last chunk partial and with one chunk only; and bad input.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/scan.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_scan.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;
using seqk::ConstView;
using seqk::View;

class VulkanScan : public Vulkan {};

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

TEST_F(VulkanScan, MatchesCpuForwardAndBackward) {
  vk::Device device;
  for (const auto& [T, C] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {300, 70}, {4099, 5}}) {
    for (bool with_h0 : {false, true}) {
      SCOPED_TRACE(testing::Message() << "T=" << T << " C=" << C << (with_h0 ? " h0" : ""));
      const std::vector<float> a = random_floats(T * C, 51, -0.99f, 0.99f), b = random_floats(T * C, 52),
                               h0 = random_floats(C, 53), dh = random_floats(T * C, 54);
      // CPU.
      std::vector<float> h(T * C), da(T * C), db(T * C), dh0(C);
      const ConstView a_view(a.data(), {T, 1, C}), h0_view = with_h0 ? ConstView(h0.data(), {1, C}) : ConstView();
      seqk::linear_scan({a_view, ConstView(b.data(), {T, 1, C}), h0_view, View(h.data(), {T, 1, C})});
      seqk::linear_scan_backward({a_view, h0_view, ConstView(h.data(), {T, 1, C}), ConstView(dh.data(), {T, 1, C}),
                                  View(da.data(), {T, 1, C}), View(db.data(), {T, 1, C}), View(dh0.data(), {1, C})});
      // Vulkan, forward and backward on one stream.
      auto g_a = upload(device, a), g_b = upload(device, b), g_h0 = upload(device, h0), g_dh = upload(device, dh);
      vk::Buffer g_h(device, T * C), g_da(device, T * C), g_db(device, T * C), g_dh0(device, C);
      vk::Stream stream(device);
      vk::linear_scan(stream, *g_a, *g_b, g_h, T, C, with_h0 ? g_h0.get() : nullptr);
      vk::linear_scan_backward(stream, *g_a, with_h0 ? g_h0.get() : nullptr, g_h, *g_dh, g_da, g_db, &g_dh0, T, C);
      stream.submit();
      // Both fp32, different association (chunks): 1e-5 of each tensor's scale.
      for (const auto& [name, got, want] : {std::tuple{"h", &g_h, &h}, {"da", &g_da, &da}, {"db", &g_db, &db},
                                            {"dh0", &g_dh0, &dh0}}) {
        const std::vector<double> expected = to_double(*want);
        EXPECT_TRUE(close_uniform(name, got->download().data(), expected.data(), 1e-5 * max_abs(expected) + 1e-6,
                                  expected.size()));
      }
    }
  }
}

TEST_F(VulkanScan, RejectsBadInput) {
  vk::Device device;
  vk::Buffer a(device, 12), b(device, 12), h(device, 12), short_h(device, 11), h0(device, 4);
  vk::Stream stream(device);
  EXPECT_THROW(vk::linear_scan(stream, a, b, short_h, 3, 4), seqk::Error);
  EXPECT_THROW(vk::linear_scan(stream, a, b, h, 3, 4, &short_h), seqk::Error);  // h0 of the wrong size
  EXPECT_THROW(vk::linear_scan(stream, a, b, a, 3, 4), seqk::Error);             // h is an input
  EXPECT_THROW(vk::linear_scan(stream, a, b, h, 0, 4), seqk::Error);
  EXPECT_THROW(vk::linear_scan_backward(stream, a, &h0, h, b, h, b, nullptr, 3, 4), seqk::Error);  // da is h
  EXPECT_EQ(stream.recorded(), 0u);
}

}  // namespace
}  // namespace seqk_test
