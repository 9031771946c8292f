// Stream: one command buffer that dispatches are recorded into. It tracks
// the buffers read and written since the last barrier; a dispatch that
// would read or write a buffer written there, or write one read there, gets
// a memory barrier (compute writes -> compute reads/writes) first. Barriers
// chain, so a dispatch sees everything written before the last one, and
// independent dispatches (say, the GEMMs of a backward pass that all read
// the same gradients) may overlap on the GPU. submit() ends with a
// compute -> host barrier, submits, and waits on a fence.
// Descriptor sets come from pools that are reset once the work is done; a
// dispatch that binds the same buffers to the same kernel as an earlier one
// in the same recording reuses its set (a recurrence's steps differ only in
// push constants).
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {

using namespace detail;

namespace {
constexpr uint32_t kSetsPerPool = 256;
constexpr uint32_t kBuffersPerSet = 8;  // average; a pool holds kSetsPerPool * this
}  // namespace

struct Stream::Impl {
  Device* device = nullptr;
  Device::Impl* d = nullptr;
  bool timestamps = false;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  VkQueryPool queries = VK_NULL_HANDLE;
  std::vector<VkDescriptorPool> descriptor_pools;
  std::size_t current_pool = 0;
  bool recording = false;
  std::size_t recorded = 0;
  std::vector<VkBuffer> read, written;  // since the last barrier
  std::map<std::pair<const Kernel*, std::vector<VkBuffer>>, VkDescriptorSet> sets;  // of this recording
  std::vector<std::shared_ptr<const void>> retained;  // alive until the recorded work has run
  double last_ms = -1.0;

  void begin();
  VkDescriptorSet allocate_set(const Kernel& kernel);
  void release();
};

void Stream::Impl::begin() {
  if (recording) return;
  check(vkResetCommandBuffer(cmd, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  info.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cmd, &info), "vkBeginCommandBuffer");
  recording = true;
  if (timestamps) {
    vkCmdResetQueryPool(cmd, queries, 0, 2);
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries, 0);
  }
}

VkDescriptorSet Stream::Impl::allocate_set(const Kernel& kernel) {
  VkDescriptorSetLayout layout = kernel.set_layout();
  for (;; ++current_pool) {
    if (current_pool == descriptor_pools.size()) {
      const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSetsPerPool * kBuffersPerSet};
      VkDescriptorPoolCreateInfo info{};
      info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
      info.maxSets = kSetsPerPool;
      info.poolSizeCount = 1;
      info.pPoolSizes = &size;
      VkDescriptorPool pool = VK_NULL_HANDLE;
      check(vkCreateDescriptorPool(d->device, &info, nullptr, &pool), "vkCreateDescriptorPool");
      descriptor_pools.push_back(pool);
    }
    VkDescriptorSetAllocateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
    info.descriptorPool = descriptor_pools[current_pool];
    info.descriptorSetCount = 1;
    info.pSetLayouts = &layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    const VkResult result = vkAllocateDescriptorSets(d->device, &info, &set);
    if (result == VK_SUCCESS) return set;
    // A full pool: go on to the next (made above if there is none).
    if (result != VK_ERROR_OUT_OF_POOL_MEMORY && result != VK_ERROR_FRAGMENTED_POOL) {
      check(result, "vkAllocateDescriptorSets (kernel " + kernel.name() + ")");
    }
  }
}

void Stream::Impl::release() {
  VkDevice dev = d->device;
  if (fence) vkWaitForFences(dev, 1, &fence, VK_TRUE, UINT64_MAX);
  for (VkDescriptorPool pool : descriptor_pools) vkDestroyDescriptorPool(dev, pool, nullptr);
  if (queries) vkDestroyQueryPool(dev, queries, nullptr);
  if (fence) vkDestroyFence(dev, fence, nullptr);
  if (pool) vkDestroyCommandPool(dev, pool, nullptr);  // frees cmd
}

Stream::Stream(Device& device, bool timestamps) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.device = &device;
  s.d = &device.impl();
  s.timestamps = timestamps;
  require(!timestamps || s.d->info.timestamps, "vulkan: device '", s.d->info.name,
          "' cannot write timestamps on its compute queue");
  try {
    VkCommandPoolCreateInfo pool{};
    pool.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pool.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool.queueFamilyIndex = s.d->queue_family;
    check(vkCreateCommandPool(s.d->device, &pool, nullptr, &s.pool), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo alloc{};
    alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    alloc.commandPool = s.pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(s.d->device, &alloc, &s.cmd), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fence{};
    fence.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    fence.flags = VK_FENCE_CREATE_SIGNALED_BIT;  // so release() may wait on it before any submit
    check(vkCreateFence(s.d->device, &fence, nullptr, &s.fence), "vkCreateFence");
    if (timestamps) {
      VkQueryPoolCreateInfo query{};
      query.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
      query.queryType = VK_QUERY_TYPE_TIMESTAMP;
      query.queryCount = 2;
      check(vkCreateQueryPool(s.d->device, &query, nullptr, &s.queries), "vkCreateQueryPool");
    }
  } catch (...) {
    s.release();
    throw;
  }
}

Stream::~Stream() { impl_->release(); }

Device& Stream::device() const { return *impl_->device; }
std::size_t Stream::recorded() const { return impl_->recorded; }

double Stream::last_gpu_ms() const {
  require(impl_->timestamps, "vulkan: Stream::last_gpu_ms needs a Stream made with timestamps = true");
  require(impl_->last_ms >= 0, "vulkan: Stream::last_gpu_ms before any submit");
  return impl_->last_ms;
}

void Stream::submit() {
  Impl& s = *impl_;
  if (!s.recording) return;
  // Make the last dispatch's writes visible to the host (download).
  VkMemoryBarrier to_host{};
  to_host.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  to_host.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0,
                       nullptr, 0, nullptr);
  if (s.timestamps) vkCmdWriteTimestamp(s.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s.queries, 1);
  s.recording = false;
  s.recorded = 0;
  s.read.clear();
  s.written.clear();
  check(vkEndCommandBuffer(s.cmd), "vkEndCommandBuffer");

  check(vkResetFences(s.d->device, 1, &s.fence), "vkResetFences");
  VkSubmitInfo submit{};
  submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &s.cmd;
  {
    std::lock_guard lock(s.d->queue_mutex);
    check(vkQueueSubmit(s.d->queue, 1, &submit, s.fence), "vkQueueSubmit");
  }
  check(vkWaitForFences(s.d->device, 1, &s.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  for (VkDescriptorPool pool : s.descriptor_pools) check(vkResetDescriptorPool(s.d->device, pool, 0), "vkResetDescriptorPool");
  s.current_pool = 0;
  s.sets.clear();
  s.retained.clear();

  if (s.timestamps) {
    uint64_t ticks[2] = {0, 0};
    check(vkGetQueryPoolResults(s.d->device, s.queries, 0, 2, sizeof(ticks), ticks, sizeof(uint64_t),
                                VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
          "vkGetQueryPoolResults");
    s.last_ms = static_cast<double>((ticks[1] - ticks[0]) & s.d->timestamp_mask) * s.d->timestamp_period_ns * 1e-6;
  }
}

namespace detail {

void dispatch(Stream& stream, Kernel& kernel, std::span<const uint32_t> spec_values,
              std::span<const Buffer* const> buffers, const void* push, uint32_t groups_x, uint32_t groups_y,
              uint32_t groups_z) {
  Stream::Impl& s = stream.impl();
  require(buffers.size() == kernel.num_buffers(), "vulkan: kernel '", kernel.name(), "' takes ", kernel.num_buffers(),
          " buffers, got ", buffers.size());
  const VkPhysicalDeviceLimits& limits = s.d->limits;
  require(groups_x >= 1 && groups_y >= 1 && groups_z >= 1 && groups_x <= limits.maxComputeWorkGroupCount[0] &&
              groups_y <= limits.maxComputeWorkGroupCount[1] && groups_z <= limits.maxComputeWorkGroupCount[2],
          "vulkan: kernel '", kernel.name(), "': workgroup count (", groups_x, ", ", groups_y, ", ", groups_z,
          ") is outside the device's limits (", limits.maxComputeWorkGroupCount[0], ", ",
          limits.maxComputeWorkGroupCount[1], ", ", limits.maxComputeWorkGroupCount[2], ")");
  for (const Buffer* buffer : buffers) {
    require(buffer != nullptr && buffer->impl().device == s.d, "vulkan: kernel '", kernel.name(),
            "': a buffer is null or belongs to another device");
  }
  VkPipeline pipeline = kernel.pipeline(spec_values);  // may throw: before anything is recorded
  s.begin();

  std::vector<VkBuffer> handles(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) handles[i] = buffers[i]->impl().buffer;
  VkDescriptorSet& set = s.sets[{&kernel, handles}];
  if (set == VK_NULL_HANDLE) {
    set = s.allocate_set(kernel);
    std::vector<VkDescriptorBufferInfo> infos(buffers.size());
    std::vector<VkWriteDescriptorSet> writes(buffers.size());
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      infos[i] = {handles[i], 0, VK_WHOLE_SIZE};
      writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      writes[i].dstSet = set;
      writes[i].dstBinding = static_cast<uint32_t>(i);
      writes[i].descriptorCount = 1;
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &infos[i];
    }
    vkUpdateDescriptorSets(s.d->device, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
  }

  auto among = [](const std::vector<VkBuffer>& set, VkBuffer b) { return std::find(set.begin(), set.end(), b) != set.end(); };
  bool hazard = false;
  for (std::size_t i = 0; i < handles.size(); ++i) {
    hazard = hazard || among(s.written, handles[i]) || (kernel.writes(static_cast<uint32_t>(i)) && among(s.read, handles[i]));
  }
  if (hazard) {
    VkMemoryBarrier barrier{};
    barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                         &barrier, 0, nullptr, 0, nullptr);
    s.read.clear();
    s.written.clear();
  }
  vkCmdBindPipeline(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
  vkCmdBindDescriptorSets(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout(), 0, 1, &set, 0, nullptr);
  if (kernel.push_constant_bytes() > 0) {
    vkCmdPushConstants(s.cmd, kernel.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, kernel.push_constant_bytes(), push);
  }
  vkCmdDispatch(s.cmd, groups_x, groups_y, groups_z);
  for (std::size_t i = 0; i < handles.size(); ++i) {
    (kernel.writes(static_cast<uint32_t>(i)) ? s.written : s.read).push_back(handles[i]);
  }
  ++s.recorded;
}

void retain(Stream& stream, std::shared_ptr<const void> object) {
  stream.impl().retained.push_back(std::move(object));
}

}  // namespace detail
}  // namespace seqk::vk
