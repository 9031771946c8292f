// The Vulkan devices a benchmark binary measures on.
#pragma once

#include <vector>

#include "seqk/vulkan.h"

namespace seqk_bench {

// Every Vulkan device, by index, each described in the run's context
// (vulkan_device_<index>: name, driver, type, API version, subgroup size);
// none, with a note in the context, when there is no loader or device, so
// the CPU rows still run.
std::vector<seqk::vk::DeviceInfo> vulkan_devices();

// Device `index`, opened on first use and kept for the run.
seqk::vk::Device& vulkan_device(int index);

}  // namespace seqk_bench
