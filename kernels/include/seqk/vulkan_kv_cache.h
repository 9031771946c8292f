// The KV cache and decode step of seqk/kv_cache.h on a Vulkan device: the
// same math, layout and options, the cache in device Buffers, appends and
// decodes recorded on a Stream. A decode loop records append + decode per
// step and submits; the cache never goes through the host.
//
// How it runs: one workgroup per (chunk of positions, head) scores its chunk
// and writes a partial (max, sum, Σ e^(s − max)·v) to a scratch buffer the
// cache owns; a second dispatch combines each head's chunks in chunk order
// (no atomics: the same bits every run). The chunk is a specialization
// constant, so one pipeline serves every length.
//
// length() counts the positions of the appends recorded so far: it grows
// when append() records, not when the stream runs, so the stream must be
// submitted before the cache is read on the host (keys().download()). The
// scratch is shared by every decode of the cache: record a cache's work on
// one stream at a time. Appended values are not scanned for NaN (they stay
// on the device).
#pragma once

#include <cstdint>
#include <memory>

#include "seqk/kv_cache.h"
#include "seqk/vulkan.h"

namespace seqk::vk {

class KvCache {
 public:
  // All sizes >= 1. Allocates two B·H·capacity·dh buffers (contents unset).
  KvCache(Device& device, int64_t batch, int64_t heads, int64_t capacity, int64_t head_size);

  int64_t batch() const { return batch_; }
  int64_t heads() const { return heads_; }
  int64_t capacity() const { return capacity_; }
  int64_t head_size() const { return head_size_; }
  int64_t length() const { return length_; }

  // Records copying k, v (B, H, P, dh buffers, P = positions >= 1) into
  // positions [length(), length() + P). Throws seqk::Error, recording
  // nothing, past the capacity or on buffers of the wrong size or device.
  void append(Stream& stream, const Buffer& k, const Buffer& v, int64_t positions);

  void clear() { length_ = 0; }

  // (B, H, capacity, dh).
  const Buffer& keys() const { return *keys_; }
  const Buffer& values() const { return *values_; }

 private:
  friend void kv_decode(Stream& stream, KvCache& cache, const Buffer& q, Buffer& out, const KvDecodeOptions& options);
  // The partials of `floats` floats, reallocated when a smaller chunk needs more.
  Buffer& scratch(Stream& stream, int64_t floats);

  Device* device_;
  int64_t batch_, heads_, capacity_, head_size_;
  int64_t length_ = 0;
  std::unique_ptr<Buffer> keys_, values_;
  std::shared_ptr<Buffer> partials_;  // shared: recorded work keeps a replaced one alive
};

// q, out (B, H, dh) buffers, out written. Throws seqk::Error, recording
// nothing, on an empty cache, wrong sizes, out aliasing q, bad options, or a
// chunk that does not fit the device (shared memory; on lavapipe the loop
// budget, which allows any chunk up to 1024 at dh <= 256).
void kv_decode(Stream& stream, KvCache& cache, const Buffer& q, Buffer& out, const KvDecodeOptions& options = {});

}  // namespace seqk::vk
