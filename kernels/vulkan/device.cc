// Device: physical device choice (SEQK_VULKAN_DEVICE or the type order
// discrete > integrated > virtual > CPU), the logical device with one compute
// queue, the pipeline cache, and the kernels made on it.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace {

int type_rank(DeviceType type) {
  switch (type) {
    case DeviceType::kDiscreteGpu: return 0;
    case DeviceType::kIntegratedGpu: return 1;
    case DeviceType::kVirtualGpu: return 2;
    case DeviceType::kCpu: return 3;
    default: return 4;
  }
}

std::string names(const std::vector<DeviceInfo>& infos) {
  std::string list;
  for (const DeviceInfo& info : infos) list += "\n  " + std::to_string(info.index) + ": " + info.name;
  return list;
}

int choose(const std::vector<DeviceInfo>& infos) {
  require(!infos.empty(), "vulkan: no Vulkan device found");
  const char* env = std::getenv("SEQK_VULKAN_DEVICE");
  if (env && *env) {
    const std::string wanted = env;
    if (std::all_of(wanted.begin(), wanted.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      const long index = wanted.size() > 9 ? -1 : std::stol(wanted);
      require(index >= 0 && index < static_cast<long>(infos.size()), "vulkan: SEQK_VULKAN_DEVICE=", wanted,
              " is not a device index; devices:", names(infos));
      return static_cast<int>(index);
    }
    for (const DeviceInfo& info : infos) {
      if (info.name.find(wanted) != std::string::npos) return info.index;
    }
    seqk::detail::fail("vulkan: SEQK_VULKAN_DEVICE=", wanted, " matches no device name; devices:", names(infos));
  }
  int best = 0;
  for (const DeviceInfo& info : infos) {
    if (type_rank(info.type) < type_rank(infos[best].type)) best = info.index;
  }
  return best;
}

}  // namespace

Device::Device() : Device(-1) {}

Device::Device(int index) : impl_(std::make_unique<Impl>()) {
  const std::vector<VkPhysicalDevice> physicals = detail::physical_devices();
  std::vector<DeviceInfo> infos;
  for (std::size_t i = 0; i < physicals.size(); ++i) infos.push_back(detail::describe(physicals[i], static_cast<int>(i)));
  require(index < static_cast<int>(infos.size()), "vulkan: no device with index ", index, "; devices:", names(infos));
  const int chosen = index >= 0 ? index : choose(infos);

  Impl& d = *impl_;
  d.info = infos[chosen];
  d.physical = physicals[chosen];
  // The shaders are compiled for Vulkan 1.1.
  require(d.info.api_version >= VK_API_VERSION_1_1, "vulkan: device '", d.info.name, "' has Vulkan ",
          d.info.api_version >> 22, ".", (d.info.api_version >> 12) & 0x3ff, "; seqk needs 1.1");
  const int family = detail::compute_queue_family(d.physical);
  require(family >= 0, "vulkan: device '", d.info.name, "' has no compute queue");
  d.queue_family = static_cast<uint32_t>(family);
  detail::vkGetPhysicalDeviceMemoryProperties(d.physical, &d.memory);
  VkPhysicalDeviceProperties properties{};
  detail::vkGetPhysicalDeviceProperties(d.physical, &properties);
  d.limits = properties.limits;
  d.timestamp_period_ns = properties.limits.timestampPeriod;
  {
    uint32_t count = 0;
    detail::vkGetPhysicalDeviceQueueFamilyProperties(d.physical, &count, nullptr);
    std::vector<VkQueueFamilyProperties> families(count);
    detail::vkGetPhysicalDeviceQueueFamilyProperties(d.physical, &count, families.data());
    const uint32_t bits = families[d.queue_family].timestampValidBits;
    d.timestamp_mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  }

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue{};
  queue.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  queue.queueFamilyIndex = d.queue_family;
  queue.queueCount = 1;
  queue.pQueuePriorities = &priority;
  VkDeviceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue;
  detail::check(detail::vkCreateDevice(d.physical, &info, nullptr, &d.device), "vkCreateDevice");
  detail::vkGetDeviceQueue(d.device, d.queue_family, 0, &d.queue);

  VkPipelineCacheCreateInfo cache{};
  cache.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
  const VkResult result = detail::vkCreatePipelineCache(d.device, &cache, nullptr, &d.pipeline_cache);
  if (result != VK_SUCCESS) {
    detail::vkDestroyDevice(d.device, nullptr);
    detail::check(result, "vkCreatePipelineCache");
  }
}

Device::~Device() {
  Impl& d = *impl_;
  detail::vkDeviceWaitIdle(d.device);
  d.kernels.clear();
  detail::vkDestroyPipelineCache(d.device, d.pipeline_cache, nullptr);
  detail::vkDestroyDevice(d.device, nullptr);
}

const DeviceInfo& Device::info() const { return impl_->info; }

std::size_t Device::pipeline_count() const {
  std::lock_guard lock(impl_->kernels_mutex);
  std::size_t count = 0;
  for (const auto& [name, kernel] : impl_->kernels) count += kernel->pipeline_count();
  return count;
}

detail::Kernel& Device::Impl::kernel(const std::string& name, uint32_t num_buffers, uint32_t written_bindings,
                                     uint32_t push_constant_bytes) {
  std::lock_guard lock(kernels_mutex);
  auto found = kernels.find(name);
  if (found == kernels.end()) {
    found = kernels
                .emplace(name, std::make_unique<detail::Kernel>(*this, name, detail::shader_spirv(name), num_buffers,
                                                                written_bindings, push_constant_bytes))
                .first;
  }
  return *found->second;
}

int Device::Impl::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const {
  for (uint32_t i = 0; i < memory.memoryTypeCount; ++i) {
    if ((type_bits & (1u << i)) && (memory.memoryTypes[i].propertyFlags & flags) == flags) return static_cast<int>(i);
  }
  return -1;
}

void Device::Impl::run_once_impl(const char* what, void (*record)(VkCommandBuffer, void*), void* context) {
  using namespace detail;
  VkCommandPoolCreateInfo pool_info{};
  pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool_info.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
  pool_info.queueFamilyIndex = queue_family;
  VkCommandPool pool = VK_NULL_HANDLE;
  check(vkCreateCommandPool(device, &pool_info, nullptr, &pool), std::string("vkCreateCommandPool (") + what + ")");
  VkFence fence = VK_NULL_HANDLE;
  // Destroys the pool and fence however this returns.
  struct Cleanup {
    VkDevice device;
    VkCommandPool& pool;
    VkFence& fence;
    ~Cleanup() {
      if (fence) vkDestroyFence(device, fence, nullptr);
      vkDestroyCommandPool(device, pool, nullptr);
    }
  } cleanup{device, pool, fence};

  VkCommandBufferAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  alloc.commandPool = pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  check(vkAllocateCommandBuffers(device, &alloc, &cmd), std::string("vkAllocateCommandBuffers (") + what + ")");
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cmd, &begin), std::string("vkBeginCommandBuffer (") + what + ")");
  record(cmd, context);
  check(vkEndCommandBuffer(cmd), std::string("vkEndCommandBuffer (") + what + ")");

  VkFenceCreateInfo fence_info{};
  fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  check(vkCreateFence(device, &fence_info, nullptr, &fence), std::string("vkCreateFence (") + what + ")");
  VkSubmitInfo submit{};
  submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  {
    std::lock_guard lock(queue_mutex);
    check(vkQueueSubmit(queue, 1, &submit, fence), std::string("vkQueueSubmit (") + what + ")");
  }
  check(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX), std::string("vkWaitForFences (") + what + ")");
}

}  // namespace seqk::vk

namespace seqk::vk::detail {

uint64_t loop_budget(const Device::Impl& device) {
  return device.info.type == DeviceType::kCpu ? 32768 : std::numeric_limits<uint64_t>::max();
}

}  // namespace seqk::vk::detail
