// Autoregressive decoding with a KV cache, on the CPU: the keys and values
// of every position generated so far are kept, and each step attends one new
// query per (batch row, head) to all of them:
//
//   out[b, h] = softmax(scale · q[b, h] · K[b, h]ᵀ) · V[b, h]
//
// over the cache's first length() positions: the last row of a causal
// attention_forward (seqk/attention.h) over those positions. A step appends
// the new position's k and v first, so it attends to itself too. Prefill (a
// prompt) appends many positions in one call.
//
// Storage: K and V are (B, H, capacity, dh), allocated once by the
// constructor; appending past the capacity throws instead of reallocating
// (so views and device buffers never move under a decode loop). All batch
// rows hold the same number of positions: a batch of prompts of different
// lengths needs one cache per length (or per sequence).
//
// Split-K (flash-decoding): each head's positions are cut into chunks of
// `chunk` positions; every (head, chunk) pair is a unit of work that yields
// its chunk's max score m, sum of e^(s − m) and Σ e^(s − m)·v; a combine step
// then rescales and adds the chunks of each head in chunk order. So even
// B·H = 1 spreads a long context over every thread, and the chunks depend
// on the length and `chunk` only: the result has the same bits on any
// number of threads.
#pragma once

#include <cstdint>
#include <optional>

#include "seqk/aligned.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

// Positions per split-K chunk: long enough that a chunk's partial result
// (dh + 2 floats) is small beside the 2·chunk·dh floats of K and V it
// summarises, short enough that 1k positions of one head already make 4 units.
inline constexpr int64_t kKvDecodeChunk = 256;

struct KvDecodeOptions {
  std::optional<float> scale;      // finite; default 1/sqrt(dh)
  int64_t chunk = kKvDecodeChunk;  // positions per split-K chunk, >= 1
};

class KvCache {
 public:
  // All sizes >= 1, with B·H·capacity·dh at most 2^63 bytes' worth of floats
  // (checked without overflow). Allocates 2·B·H·capacity·dh floats (zeros).
  KvCache(int64_t batch, int64_t heads, int64_t capacity, int64_t head_size);

  int64_t batch() const { return batch_; }
  int64_t heads() const { return heads_; }
  int64_t capacity() const { return capacity_; }
  int64_t head_size() const { return head_size_; }
  int64_t length() const { return length_; }  // positions cached, the same for every batch row

  // Appends P >= 1 positions: k, v (B, H, P, dh), finite, become positions
  // [length(), length() + P) of every (b, h). Throws seqk::Error, writing
  // nothing, when they would not fit the capacity or are not finite.
  void append(ConstView k, ConstView v);

  // Forgets every position (the storage is kept), for the next sequence.
  void clear() { length_ = 0; }

  // (B, H, capacity, dh); positions from length() on hold stale data or zeros.
  ConstView keys() const { return {keys_.data(), {batch_, heads_, capacity_, head_size_}}; }
  ConstView values() const { return {values_.data(), {batch_, heads_, capacity_, head_size_}}; }

 private:
  int64_t batch_, heads_, capacity_, head_size_;
  int64_t length_ = 0;
  AlignedVector keys_, values_;
};

// q (B, H, dh), finite; out (B, H, dh), overwritten. Throws seqk::Error on
// an empty cache, shapes other than the cache's, or bad options.
void kv_decode(const KvCache& cache, ConstView q, View out, const KvDecodeOptions& options = {},
               ThreadPool* pool = nullptr);

}  // namespace seqk
