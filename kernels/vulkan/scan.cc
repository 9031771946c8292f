// The linear scan on Vulkan (shaders/linear_scan.comp): the phases recorded
// in order on one stream, their grids split to fit the device.
#include "seqk/vulkan_scan.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace {

constexpr uint32_t kGroup = 64;  // channels per workgroup

struct Push {
  uint32_t steps, channels, chunk, chunks, phase, flags, first;
};

void require_rows(const Buffer* buffer, const char* name, int64_t size, const Device& device) {
  require(buffer != nullptr, "vulkan scan: ", name, " is null");
  require(static_cast<int64_t>(buffer->size()) == size, "vulkan scan: ", name, " holds ", buffer->size(),
          " floats, expected ", size);
  require(buffer->impl().device == &device.impl(), "vulkan scan: ", name, " belongs to another device");
}

// Chunks of about √T steps: both the chunk loop and the carry loop stay short.
int64_t chunk_steps(int64_t steps) {
  return std::max<int64_t>(64, static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::sqrt(steps)) + 1)));
}

// Records phases 0-2 (and 3 for the backward: da, dh0) over `out` from `x`.
// The forward starts from h0; the backward starts from zero and reads h0 as
// h_0 for da.
void record_scan(Stream& stream, const Buffer& a, const Buffer& x, Buffer& out, const Buffer* h0, int64_t steps,
                 int64_t channels, bool reverse, const Buffer* h, Buffer* da, Buffer* dh0) {
  Device& device = stream.device();
  Device::Impl& d = device.impl();
  detail::check_linear_scan(d, steps, channels);
  const int64_t chunk = chunk_steps(steps), chunks = (steps + chunk - 1) / chunk;
  auto chunk_a = std::make_shared<Buffer>(device, chunks * channels);
  auto chunk_e = std::make_shared<Buffer>(device, chunks * channels);
  detail::retain(stream, chunk_a);
  detail::retain(stream, chunk_e);
  const Buffer* unused = &a;
  const Buffer* buffers[] = {&a,           &x, &out, chunk_a.get(), chunk_e.get(), h0 ? h0 : unused,
                             h ? h : unused, da ? static_cast<const Buffer*>(da) : chunk_a.get(),
                             dh0 ? static_cast<const Buffer*>(dh0) : chunk_a.get()};
  detail::Kernel& kernel = d.kernel("linear_scan", 9, 0b110011100, sizeof(Push));
  const uint32_t spec[] = {kGroup};
  const auto groups_x = static_cast<uint32_t>((channels + kGroup - 1) / kGroup);
  const int64_t max_y = d.limits.maxComputeWorkGroupCount[1];
  const uint32_t flags = (reverse ? 1u : 0u) | (h0 && !reverse ? 2u : 0u) | (dh0 ? 4u : 0u) | (h0 && reverse ? 8u : 0u);
  auto phase = [&](uint32_t phase, int64_t rows) {
    for (int64_t first = 0; first < rows; first += max_y) {
      const Push push{static_cast<uint32_t>(steps),  static_cast<uint32_t>(channels), static_cast<uint32_t>(chunk),
                      static_cast<uint32_t>(chunks), phase, flags, static_cast<uint32_t>(first)};
      detail::dispatch(stream, kernel, spec, buffers, &push, groups_x, static_cast<uint32_t>(std::min(max_y, rows - first)),
                       1);
    }
  };
  phase(0, chunks);
  phase(1, 1);
  phase(2, chunks);
  if (da) phase(3, steps);
}

}  // namespace

void detail::check_linear_scan(const Device::Impl& d, int64_t steps, int64_t channels) {
  require(steps > 0 && channels > 0, "vulkan scan: T and C must be > 0, got T = ", steps, ", C = ", channels);
  require(steps <= std::numeric_limits<uint32_t>::max() / channels, "vulkan scan: T·C exceeds 32-bit indexing");
  const int64_t chunk = chunk_steps(steps), chunks = (steps + chunk - 1) / chunk;
  require(static_cast<uint64_t>(std::max(chunk, chunks)) < detail::loop_budget(d), "vulkan scan: T = ", steps,
          " is too long for the device's loop budget");
  require((channels + kGroup - 1) / kGroup <= d.limits.maxComputeWorkGroupCount[0], "vulkan scan: C = ", channels,
          " channels need more workgroups than the device allows");
}

void linear_scan(Stream& stream, const Buffer& a, const Buffer& b, Buffer& h, int64_t steps, int64_t channels,
                 const Buffer* h0) {
  const Device& device = stream.device();
  require(steps > 0 && channels > 0, "vulkan scan: T and C must be > 0, got T = ", steps, ", C = ", channels);
  require_rows(&a, "a", steps * channels, device);
  require_rows(&b, "b", steps * channels, device);
  require_rows(&h, "h", steps * channels, device);
  if (h0) require_rows(h0, "h0", channels, device);
  require(&h != &a && &h != &b && &h != h0, "vulkan scan: h must not share a buffer with an input");
  record_scan(stream, a, b, h, h0, steps, channels, false, nullptr, nullptr, nullptr);
}

void linear_scan_backward(Stream& stream, const Buffer& a, const Buffer* h0, const Buffer& h, const Buffer& dh,
                          Buffer& da, Buffer& db, Buffer* dh0, int64_t steps, int64_t channels) {
  const Device& device = stream.device();
  require(steps > 0 && channels > 0, "vulkan scan: T and C must be > 0, got T = ", steps, ", C = ", channels);
  for (const auto& [buffer, name] : {std::pair<const Buffer*, const char*>{&a, "a"}, {&h, "h"}, {&dh, "dh"},
                                     {&da, "da"}, {&db, "db"}})
    require_rows(buffer, name, steps * channels, device);
  if (h0) require_rows(h0, "h0", channels, device);
  if (dh0) require_rows(dh0, "dh0", channels, device);
  for (const Buffer* out : {static_cast<const Buffer*>(&da), static_cast<const Buffer*>(&db),
                            static_cast<const Buffer*>(dh0)}) {
    require(out == nullptr || (out != &a && out != h0 && out != &h && out != &dh), "vulkan scan: an output shares a buffer with an input");
  }
  require(&da != &db && dh0 != &da && dh0 != &db, "vulkan scan: da, db and dh0 must be different buffers");
  // The reverse scan's initial state is zero: the forward's h0 only enters da.
  record_scan(stream, a, dh, db, h0, steps, channels, true, &h, &da, dh0);
}

}  // namespace seqk::vk
