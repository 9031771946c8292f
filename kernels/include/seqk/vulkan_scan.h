// The diagonal linear recurrence (seqk/scan.h) on a Vulkan device, its
// tensors in device buffers as dense (T, C) rows, C = B·D channels:
//   h_t = a_t ⊙ h_{t-1} + b_t, and the backward g_t = dh_t + a_{t+1} ⊙ g_{t+1},
//   da_t = g_t ⊙ h_{t-1}, db_t = g_t, dh_0 = a_1 ⊙ g_1.
// A reduce-then-scan in chunks of about √T steps: chunk ends and products,
// a carry across the chunks per channel, and each chunk scanned again from
// its carried-in state. No step waits on another workgroup, so nothing can
// hang; every invocation's loops stay within lavapipe's limit.
#pragma once

#include <cstdint>

#include "seqk/vulkan.h"

namespace seqk::vk {

// Recorded on `stream`. h0: (C), or null for zeros.
void linear_scan(Stream& stream, const Buffer& a, const Buffer& b, Buffer& h, int64_t steps, int64_t channels,
                 const Buffer* h0 = nullptr);
// h0 as given to the forward; dh0 null when not wanted; da and db overwritten.
void linear_scan_backward(Stream& stream, const Buffer& a, const Buffer* h0, const Buffer& h, const Buffer& dh,
                          Buffer& da, Buffer& db, Buffer* dh0, int64_t steps, int64_t channels);

}  // namespace seqk::vk
