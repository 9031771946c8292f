// Internals shared by the Vulkan runtime's files: the function table (filled
// from the loader opened at run time), the Impl structs behind the public
// classes, and the kernel (pipeline) cache.
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "seqk/vulkan.h"

namespace seqk::vk::detail {

// Loaded with vkGetInstanceProcAddr(nullptr, ...).
#define SEQK_VK_GLOBAL_FUNCTIONS(X) \
  X(vkCreateInstance)               \
  X(vkEnumerateInstanceLayerProperties)

// Loaded with vkGetInstanceProcAddr(instance, ...); device functions too: the
// loader's trampolines dispatch them to whichever device they are called on.
#define SEQK_VK_INSTANCE_FUNCTIONS(X)       \
  X(vkDestroyInstance)                      \
  X(vkEnumeratePhysicalDevices)             \
  X(vkGetPhysicalDeviceProperties)          \
  X(vkGetPhysicalDeviceProperties2)         \
  X(vkGetPhysicalDeviceFeatures2)           \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkGetPhysicalDeviceMemoryProperties)    \
  X(vkCreateDevice)                         \
  X(vkDestroyDevice)                        \
  X(vkGetDeviceQueue)                       \
  X(vkDeviceWaitIdle)                       \
  X(vkCreateBuffer)                         \
  X(vkDestroyBuffer)                        \
  X(vkGetBufferMemoryRequirements)          \
  X(vkAllocateMemory)                       \
  X(vkFreeMemory)                           \
  X(vkBindBufferMemory)                     \
  X(vkMapMemory)                            \
  X(vkUnmapMemory)                          \
  X(vkCreateShaderModule)                   \
  X(vkDestroyShaderModule)                  \
  X(vkCreateDescriptorSetLayout)            \
  X(vkDestroyDescriptorSetLayout)           \
  X(vkCreatePipelineLayout)                 \
  X(vkDestroyPipelineLayout)                \
  X(vkCreateComputePipelines)               \
  X(vkDestroyPipeline)                      \
  X(vkCreatePipelineCache)                  \
  X(vkDestroyPipelineCache)                 \
  X(vkCreateDescriptorPool)                 \
  X(vkDestroyDescriptorPool)                \
  X(vkResetDescriptorPool)                  \
  X(vkAllocateDescriptorSets)               \
  X(vkUpdateDescriptorSets)                 \
  X(vkCreateCommandPool)                    \
  X(vkDestroyCommandPool)                   \
  X(vkAllocateCommandBuffers)               \
  X(vkBeginCommandBuffer)                   \
  X(vkEndCommandBuffer)                     \
  X(vkResetCommandBuffer)                   \
  X(vkCmdBindPipeline)                      \
  X(vkCmdBindDescriptorSets)                \
  X(vkCmdPushConstants)                     \
  X(vkCmdDispatch)                          \
  X(vkCmdPipelineBarrier)                   \
  X(vkCmdCopyBuffer)                        \
  X(vkCmdResetQueryPool)                    \
  X(vkCmdWriteTimestamp)                    \
  X(vkCreateQueryPool)                      \
  X(vkDestroyQueryPool)                     \
  X(vkGetQueryPoolResults)                  \
  X(vkCreateFence)                          \
  X(vkDestroyFence)                         \
  X(vkResetFences)                          \
  X(vkWaitForFences)                        \
  X(vkQueueSubmit)

#define SEQK_VK_DECLARE(name) extern PFN_##name name;
SEQK_VK_GLOBAL_FUNCTIONS(SEQK_VK_DECLARE)
SEQK_VK_INSTANCE_FUNCTIONS(SEQK_VK_DECLARE)
#undef SEQK_VK_DECLARE

// Throws seqk::Error "<call> failed: <VkResult name>" unless result is VK_SUCCESS.
void check(VkResult result, const std::string& call);
const char* result_name(VkResult result);

// The process-wide instance, created on first use (throws when there is no
// loader or vkCreateInstance fails), with the validation messenger if
// SEQK_VULKAN_VALIDATION=1.
VkInstance instance();
std::vector<VkPhysicalDevice> physical_devices();
DeviceInfo describe(VkPhysicalDevice physical, int index);
// The queue family used for compute (prefers a compute-only one), or -1.
int compute_queue_family(VkPhysicalDevice physical);

// A compute kernel: one shader module and layout, one pipeline per distinct
// tuple of specialization-constant values (ids 0, 1, 2, ...), made on first use.
class Kernel {
 public:
  // written_bindings: bit i set when the shader writes binding i (the
  // stream orders dispatches by what they read and write).
  Kernel(Device::Impl& device, std::string name, std::span<const uint32_t> spirv, uint32_t num_buffers,
         uint32_t written_bindings, uint32_t push_constant_bytes);
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  VkPipeline pipeline(std::span<const uint32_t> spec_values);
  const std::string& name() const { return name_; }
  uint32_t num_buffers() const { return num_buffers_; }
  bool writes(uint32_t binding) const { return (written_bindings_ >> binding) & 1u; }
  uint32_t push_constant_bytes() const { return push_constant_bytes_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  VkPipelineLayout layout() const { return layout_; }
  std::size_t pipeline_count() const { return pipelines_.size(); }

 private:
  void release();  // destroys whatever handles exist

  Device::Impl& device_;
  std::string name_;
  uint32_t num_buffers_;
  uint32_t written_bindings_;
  uint32_t push_constant_bytes_;
  VkShaderModule module_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  std::map<std::vector<uint32_t>, VkPipeline> pipelines_;
};

// Embedded SPIR-V, from shaders/*.comp (shaders.cc).
std::span<const uint32_t> shader_spirv(const std::string& name);

}  // namespace seqk::vk::detail

namespace seqk::vk {

struct Device::Impl {
  DeviceInfo info;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  std::mutex queue_mutex;  // vkQueueSubmit needs the queue externally synchronized
  uint32_t queue_family = 0;
  VkPhysicalDeviceMemoryProperties memory{};
  VkPhysicalDeviceLimits limits{};
  float timestamp_period_ns = 1.0f;
  uint64_t timestamp_mask = 0;  // of the valid bits: timestamps wrap around there
  VkPipelineCache pipeline_cache = VK_NULL_HANDLE;
  std::mutex kernels_mutex;
  std::map<std::string, std::unique_ptr<detail::Kernel>> kernels;

  // The kernel called `name` (SPIR-V from shader_spirv(name)), made on first use.
  detail::Kernel& kernel(const std::string& name, uint32_t num_buffers, uint32_t written_bindings,
                         uint32_t push_constant_bytes);
  // A memory type with all of `flags` among `type_bits`, or -1.
  int find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const;
  // Records with `record` into a one-off command buffer, submits, waits.
  template <typename Record>
  void run_once(const char* what, Record&& record);
  void run_once_impl(const char* what, void (*record)(VkCommandBuffer, void*), void* context);
};

template <typename Record>
void Device::Impl::run_once(const char* what, Record&& record) {
  run_once_impl(
      what, [](VkCommandBuffer cmd, void* context) { (*static_cast<Record*>(context))(cmd); }, &record);
}

struct Buffer::Impl {
  Device::Impl* device = nullptr;
  std::size_t count = 0;
  VkDeviceSize bytes = 0;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  float* mapped = nullptr;  // set when unified: no staging
};

namespace detail {

// lavapipe (llvmpipe) silently stops a shader after 65,535 loop iterations in
// one invocation, summed over all its loops, and the results are then wrong.
// On a CPU device every kernel keeps its worst-case count per invocation
// under half that limit, splitting the work into more dispatches where
// needed; GPU drivers have no such limit, and there a split would only cost
// passes over memory.
uint64_t loop_budget(const Device::Impl& device);

// Records one dispatch of `kernel` on `stream`, binding `buffers` to bindings
// 0, 1, ... and `push` as the push constants. Inserts a barrier first when
// the dispatch reads or writes a buffer that work recorded since the last
// barrier writes, or writes one that it reads; independent dispatches may
// run concurrently.
void dispatch(Stream& stream, Kernel& kernel, std::span<const uint32_t> spec_values,
              std::span<const Buffer* const> buffers, const void* push, uint32_t groups_x, uint32_t groups_y,
              uint32_t groups_z);

// Keeps `object` alive until the stream's recorded work has run (the next
// submit returns, or the stream is destroyed).
void retain(Stream& stream, std::shared_ptr<const void> object);

// A matrix operand of gemm_strided: element (row, k) is
// buffer[offset + row * row_stride + k * k_stride]; strides may be 0.
struct Operand {
  const Buffer* buffer = nullptr;
  int64_t offset = 0, row_stride = 0, k_stride = 0;
};

// Shared-memory tile edge, the per-invocation register tile edge and the
// depth of a K step (specialization constants of shaders/gemm.comp); tile 0:
// chosen by the shape of C.
struct GemmTiling {
  uint32_t tile = 0, thread_tile = 4, depth = 16;
};

// Records C[c_offset + row * c_row_stride + col] (M, N) = A·Bᵀ (+ bias)
// (+ C when accumulate), A (M, K) and B (N, K) as operands. Splits K into
// accumulating passes to stay within loop_budget().
void gemm_strided(Stream& stream, const Operand& a, const Operand& b, Buffer& c, int64_t c_offset,
                  int64_t c_row_stride, int64_t m, int64_t n, int64_t k, const Buffer* bias, bool accumulate,
                  GemmTiling tiling = {});

// Records dst[dst_offset + i] = src[src_offset + i] for i < count.
void copy(Stream& stream, const Buffer& src, int64_t src_offset, Buffer& dst, int64_t dst_offset, int64_t count);
// The first row of each step of a batch of sequences (T + 1 offsets): B per
// step, or the packed batch_sizes (checked: sorted, non-empty steps).
std::vector<int64_t> step_offsets(int64_t steps, int64_t batch, std::span<const int64_t> lengths,
                                  std::span<const int64_t> batch_sizes);

// Throws unless the linear scan (seqk/vulkan_scan.h) can run T steps of C
// channels on the device: for callers that check everything before they
// record anything.
void check_linear_scan(const Device::Impl& device, int64_t steps, int64_t channels);

// One buffer argument of an entry point, for check_buffers.
struct BufferArg {
  const char* name;
  const Buffer* buffer;  // null: absent
  int64_t size;          // floats it must hold
  bool optional, written;
};

// Before anything is recorded: every argument present unless optional, of
// its size, on `device`; and no written buffer shared with any other
// argument (kernels read inputs after writing outputs, and write outputs
// apart). Messages start with `who` (e.g. "vulkan attention: ").
void check_buffers(const Device::Impl& device, const char* who, std::span<const BufferArg> args);
inline void check_buffers(const Device::Impl& device, const char* who, std::initializer_list<BufferArg> args) {
  check_buffers(device, who, std::span<const BufferArg>(args.begin(), args.size()));
}

// True when the product of the (positive) factors fits 32-bit indexing.
bool fits_u32(std::initializer_list<int64_t> factors);

// Records dst[i] = value for every element.
void fill(Stream& stream, Buffer& dst, float value);
// Records dst[r·dst_stride + dst_col + j] (+)= src[index(r)·src_stride + src_col + j]
// for r < rows, j < width; index(r) = r, or indices[r] (row numbers as floats).
void gather_rows(Stream& stream, const Buffer& src, int64_t src_stride, int64_t src_col, Buffer& dst,
                 int64_t dst_stride, int64_t dst_col, int64_t rows, int64_t width, const Buffer* indices,
                 bool accumulate);

}  // namespace detail

}  // namespace seqk::vk
