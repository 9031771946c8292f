// A thin Vulkan compute runtime: device choice, buffers, a stream of
// dispatches, and the GPU entry points of the kernel families.
//
// No Vulkan types appear here, so users need no Vulkan headers; the loader is
// opened at run time, so a program linked with libseqk runs (on the CPU) on a
// machine without Vulkan. Every failure throws seqk::Error: no loader, no
// device, a bad SEQK_VULKAN_DEVICE, or a Vulkan call that fails (the message
// names the call, and the kernel where there is one).
//
// Environment:
//   SEQK_VULKAN_DEVICE      device index (as in list_devices()) or a substring
//                           of its name; default: discrete > integrated >
//                           virtual > CPU, first of a kind.
//   SEQK_VULKAN_VALIDATION  1: enable VK_LAYER_KHRONOS_validation and record
//                           every warning and error it reports (read when the
//                           process first touches Vulkan).
//   SEQK_VULKAN_FORCE_STAGING  1: use device-local buffers with staging copies
//                           even on unified-memory devices (for testing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace seqk::vk {

enum class DeviceType { kOther, kIntegratedGpu, kDiscreteGpu, kVirtualGpu, kCpu };
const char* to_string(DeviceType type);

struct DeviceInfo {
  int index = 0;  // in list_devices() order: the value SEQK_VULKAN_DEVICE takes
  std::string name;
  std::string driver_name;
  DeviceType type = DeviceType::kOther;
  uint32_t api_version = 0;         // VK_MAKE_API_VERSION packing
  uint32_t subgroup_size = 0;       // never assume it: 8 on lavapipe, 32 on NVIDIA, 64 on AMD
  uint32_t max_shared_memory = 0;   // maxComputeSharedMemorySize, bytes
  uint32_t max_workgroup_invocations = 0;
  bool fp16 = false;                // shaderFloat16
  bool timestamps = false;          // the compute queue can time dispatches
  bool unified_memory = false;      // buffers are mapped directly, no staging copies
};

// True when a loader, an instance and at least one device are there. Never
// throws: for tests and callers that fall back to the CPU.
bool vulkan_available() noexcept;

std::vector<DeviceInfo> list_devices();

// Messages the validation layer reported since the last clear (empty when
// validation is off). Tests fail on any.
bool validation_enabled();
std::size_t validation_message_count();
std::vector<std::string> validation_messages();
void clear_validation_messages();

class Device {
 public:
  // Opens the device chosen as described above.
  Device();
  // Opens device `index` of list_devices(); -1: as Device().
  explicit Device(int index);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const;
  // Pipelines created so far (one per kernel and specialization values).
  std::size_t pipeline_count() const;

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A float buffer. upload/download are synchronous and need the exact element
// count; download only sees work a Stream has submitted.
class Buffer {
 public:
  Buffer(Device& device, std::size_t count);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::size_t size() const;  // floats
  void upload(std::span<const float> data);
  void download(std::span<float> data) const;
  std::vector<float> download() const;

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Records dispatches into one command buffer, with a compute->compute barrier
// between consecutive dispatches; submit() runs them and waits. Buffers used
// by recorded work must outlive the submit.
class Stream {
 public:
  // timestamps: time each submit on the GPU (throws if the queue cannot).
  explicit Stream(Device& device, bool timestamps = false);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  Device& device() const;
  std::size_t recorded() const;  // dispatches since the last submit
  void submit();                 // no-op when nothing is recorded
  double last_gpu_ms() const;    // GPU time of the last submit (timestamps only)

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Records C (M, N) = A (M, K) · Bᵀ (+ bias (N)); B is (N, K); all row-major
// and dense. `tile` (a specialization constant: each value is its own cached
// pipeline) is the edge of the block of C one workgroup computes, staged
// through shared memory; the workgroup has at most 16 x 16 invocations, each
// computing (tile / 16)² elements in registers when tile > 16. 0: chosen by
// the shape (128 where C holds enough such blocks to fill a large GPU, else 64).
void gemm(Stream& stream, const Buffer& a, const Buffer& b, Buffer& c, int64_t m, int64_t n, int64_t k,
          const Buffer* bias = nullptr, uint32_t tile = 0);

}  // namespace seqk::vk
