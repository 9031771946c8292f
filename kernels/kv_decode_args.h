// Checks shared by the CPU and Vulkan KV-cache decode, so both reject bad
// options with the same messages before touching anything.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "seqk/error.h"
#include "seqk/kv_cache.h"

namespace seqk::detail {

// The scale the options ask for (1/sqrt(dh) by default), checked finite.
inline float kv_decode_scale(const KvDecodeOptions& options, int64_t head_size) {
  const float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(head_size)));
  require(std::isfinite(scale), "kv_decode: scale must be finite, got ", scale);
  return scale;
}

inline void check_kv_decode_chunk(const KvDecodeOptions& options) {
  require(options.chunk >= 1, "kv_decode: chunk must be >= 1, got ", options.chunk);
}

// The most floats one of the cache's buffers may hold (its bytes must fit a
// ptrdiff_t, as std::vector's do).
inline constexpr int64_t kKvCacheMaxFloats = std::numeric_limits<int64_t>::max() / sizeof(float);

// Checks the sizes and returns B·H·capacity·dh, the floats of each of the
// keys and the values, at most `max_floats`: each factor is compared by
// division before it is multiplied in, so no product overflows.
inline int64_t check_kv_cache_sizes(int64_t batch, int64_t heads, int64_t capacity, int64_t head_size,
                                    int64_t max_floats = kKvCacheMaxFloats) {
  require(batch >= 1 && heads >= 1 && capacity >= 1 && head_size >= 1,
          "kv cache: B, H, capacity and dh must be >= 1, got B = ", batch, ", H = ", heads, ", capacity = ", capacity,
          ", dh = ", head_size);
  int64_t floats = 1;
  for (const int64_t factor : {batch, heads, capacity, head_size}) {
    require(factor <= max_floats / floats, "kv cache: B·H·capacity·dh (B = ", batch, ", H = ", heads,
            ", capacity = ", capacity, ", dh = ", head_size, ") exceeds ", max_floats, " floats per buffer");
    floats *= factor;
  }
  return floats;
}

// Appending `positions` to a cache holding `length` of `capacity`.
inline void check_kv_append(const char* where, int64_t length, int64_t capacity, int64_t positions) {
  require(positions >= 1, where, ": appending ", positions, " positions; need at least 1");
  require(positions <= capacity - length, where, ": appending ", positions, " positions to ", length, " of ", capacity,
          " exceeds the capacity (the cache never reallocates)");
}

}  // namespace seqk::detail
