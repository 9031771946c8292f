// The fixture of every Vulkan test: skips with a message when there is no
// Vulkan device, and fails a test in which the validation layer (enabled by
// meson through SEQK_VULKAN_VALIDATION=1) reported anything.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "seqk/vulkan.h"

namespace seqk_test {

class Vulkan : public testing::Test {
 protected:
  void SetUp() override {
    if (!seqk::vk::vulkan_available()) GTEST_SKIP() << "no Vulkan loader or device: Vulkan tests skipped";
    seqk::vk::clear_validation_messages();
  }
  void TearDown() override {
    if (IsSkipped()) return;
    const std::vector<std::string> messages = seqk::vk::validation_messages();
    EXPECT_EQ(messages.size(), 0u) << "validation messages, the first: " << (messages.empty() ? "" : messages[0]);
    seqk::vk::clear_validation_messages();
  }
};

}  // namespace seqk_test
