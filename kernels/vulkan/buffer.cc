// Buffers of floats. Where the device shares host memory (integrated GPU,
// CPU device such as lavapipe) the buffer is mapped and copied into
// directly; otherwise it lives in device-local memory and upload/download go
// through a host-visible staging buffer and a copy on the queue.
#include <cstring>
#include <string>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace {

using namespace detail;

struct Allocation {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
};

void release(VkDevice device, Allocation& a) {
  if (a.buffer) vkDestroyBuffer(device, a.buffer, nullptr);
  if (a.memory) vkFreeMemory(device, a.memory, nullptr);
  a = {};
}

// Creates a buffer in memory with `wanted` flags (falling back to `fallback`).
Allocation allocate(Device::Impl& d, VkDeviceSize bytes, VkBufferUsageFlags usage, VkMemoryPropertyFlags wanted,
                    VkMemoryPropertyFlags fallback) {
  Allocation a;
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = bytes;
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(d.device, &info, nullptr, &a.buffer), "vkCreateBuffer");
  VkMemoryRequirements needs{};
  vkGetBufferMemoryRequirements(d.device, a.buffer, &needs);
  int type = d.find_memory_type(needs.memoryTypeBits, wanted);
  if (type < 0) type = d.find_memory_type(needs.memoryTypeBits, fallback);
  if (type < 0) {
    release(d.device, a);
    seqk::detail::fail("vulkan: no suitable memory type for a buffer of ", bytes, " bytes on '", d.info.name, "'");
  }
  VkMemoryAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  alloc.allocationSize = needs.size;
  alloc.memoryTypeIndex = static_cast<uint32_t>(type);
  VkResult result = vkAllocateMemory(d.device, &alloc, nullptr, &a.memory);
  if (result == VK_SUCCESS) result = vkBindBufferMemory(d.device, a.buffer, a.memory, 0);
  if (result != VK_SUCCESS) {
    release(d.device, a);
    check(result, "vkAllocateMemory/vkBindBufferMemory (" + std::to_string(bytes) + " bytes)");
  }
  return a;
}

constexpr VkMemoryPropertyFlags kHostFlags = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
constexpr VkBufferUsageFlags kUsage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

// A mapped host-visible staging buffer for one transfer.
struct Staging {
  Device::Impl& d;
  Allocation a;
  void* mapped = nullptr;
  Staging(Device::Impl& device, VkDeviceSize bytes) : d(device) {
    a = allocate(d, bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, kHostFlags, kHostFlags);
    const VkResult result = vkMapMemory(d.device, a.memory, 0, VK_WHOLE_SIZE, 0, &mapped);
    if (result != VK_SUCCESS) {
      release(d.device, a);
      check(result, "vkMapMemory (staging)");
    }
  }
  ~Staging() { release(d.device, a); }
};

void barrier(VkCommandBuffer cmd, VkBuffer buffer, VkPipelineStageFlags src_stage, VkAccessFlags src,
             VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
  VkBufferMemoryBarrier b{};
  b.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER;
  b.srcAccessMask = src;
  b.dstAccessMask = dst;
  b.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  b.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
  b.buffer = buffer;
  b.size = VK_WHOLE_SIZE;
  vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 0, nullptr, 1, &b, 0, nullptr);
}

}  // namespace

Buffer::Buffer(Device& device, std::size_t count) : impl_(std::make_unique<Impl>()) {
  require(count > 0, "vulkan: Buffer count must be > 0");
  Device::Impl& d = device.impl();
  Impl& b = *impl_;
  b.device = &d;
  b.count = count;
  b.bytes = static_cast<VkDeviceSize>(count) * sizeof(float);
  require(b.bytes <= d.limits.maxStorageBufferRange, "vulkan: Buffer of ", count,
          " floats exceeds maxStorageBufferRange (", d.limits.maxStorageBufferRange, " bytes) on '", d.info.name, "'");
  const bool unified = d.info.unified_memory &&
                       d.find_memory_type(~0u, kHostFlags | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) >= 0;
  Allocation a = unified ? allocate(d, b.bytes, kUsage, kHostFlags | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, kHostFlags)
                         : allocate(d, b.bytes, kUsage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
  b.buffer = a.buffer;
  b.memory = a.memory;
  if (unified) {
    void* mapped = nullptr;
    const VkResult result = vkMapMemory(d.device, b.memory, 0, VK_WHOLE_SIZE, 0, &mapped);
    if (result != VK_SUCCESS) {
      release(d.device, a);
      check(result, "vkMapMemory");
    }
    b.mapped = static_cast<float*>(mapped);
  }
}

Buffer::~Buffer() {
  Allocation a{impl_->buffer, impl_->memory};
  release(impl_->device->device, a);  // freeing mapped memory unmaps it
}

std::size_t Buffer::size() const { return impl_->count; }

void Buffer::upload(std::span<const float> data) {
  Impl& b = *impl_;
  require(data.size() == b.count, "vulkan: Buffer::upload of ", data.size(), " floats into a buffer of ", b.count);
  if (b.mapped) {
    std::memcpy(b.mapped, data.data(), b.bytes);  // coherent: the next submit sees it
    return;
  }
  Staging staging(*b.device, b.bytes);
  std::memcpy(staging.mapped, data.data(), b.bytes);
  b.device->run_once("Buffer::upload", [&](VkCommandBuffer cmd) {
    // Earlier dispatches may still read or write the buffer.
    barrier(cmd, b.buffer, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
    const VkBufferCopy region{0, 0, b.bytes};
    vkCmdCopyBuffer(cmd, staging.a.buffer, b.buffer, 1, &region);
    barrier(cmd, b.buffer, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
  });
}

void Buffer::download(std::span<float> data) const {
  Impl& b = *impl_;
  require(data.size() == b.count, "vulkan: Buffer::download of ", b.count, " floats into a span of ", data.size());
  if (b.mapped) {
    std::memcpy(data.data(), b.mapped, b.bytes);
    return;
  }
  Staging staging(*b.device, b.bytes);
  b.device->run_once("Buffer::download", [&](VkCommandBuffer cmd) {
    barrier(cmd, b.buffer, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
    const VkBufferCopy region{0, 0, b.bytes};
    vkCmdCopyBuffer(cmd, b.buffer, staging.a.buffer, 1, &region);
    barrier(cmd, staging.a.buffer, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  });
  std::memcpy(data.data(), staging.mapped, b.bytes);
}

std::vector<float> Buffer::download() const {
  std::vector<float> data(impl_->count);
  download(data);
  return data;
}

}  // namespace seqk::vk
