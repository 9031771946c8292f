#include "bench/vulkan_devices.h"

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

namespace seqk_bench {

namespace vk = seqk::vk;

std::vector<vk::DeviceInfo> vulkan_devices() {
  if (!vk::vulkan_available()) {
    benchmark::AddCustomContext("vulkan", "no Vulkan loader or device: Vulkan rows skipped");
    return {};
  }
  const std::vector<vk::DeviceInfo> devices = vk::list_devices();
  for (const vk::DeviceInfo& info : devices) {
    benchmark::AddCustomContext("vulkan_device_" + std::to_string(info.index),
                                info.name + " | driver " + info.driver_name + " | " + vk::to_string(info.type) +
                                    " | Vulkan " + std::to_string(info.api_version >> 22) + "." +
                                    std::to_string((info.api_version >> 12) & 0x3ff) + " | subgroup " +
                                    std::to_string(info.subgroup_size));
  }
  return devices;
}

vk::Device& vulkan_device(int index) {
  static std::map<int, std::unique_ptr<vk::Device>> devices;
  std::unique_ptr<vk::Device>& device = devices[index];
  if (!device) device = std::make_unique<vk::Device>(index);
  return *device;
}

}  // namespace seqk_bench
