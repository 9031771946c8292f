// KV-cache decode problems shared by the CPU and Vulkan suites: sizes, a
// random context (K, V and the step's query), slices of it by position, and
// the fp64 decode reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "reference.h"

namespace seqk_test {

struct KvCase {
  int64_t B, H, dh, length, chunk;
};

inline std::string describe(const KvCase& c) {
  return "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " dh=" + std::to_string(c.dh) +
         " length=" + std::to_string(c.length) + " chunk=" + std::to_string(c.chunk);
}

// K and V of a whole context, (B, H, length, dh), and the step's q (B, H, dh).
struct KvContext {
  std::vector<float> k, v, q;
};

inline KvContext random_context(const KvCase& c, uint64_t seed) {
  const std::size_t kv = c.B * c.H * c.length * c.dh;
  // Wide scores (|s| up to ~8) so the chunks' maxima differ a lot.
  return {random_floats(kv, seed, -2.0f, 2.0f), random_floats(kv, seed + 1),
          random_floats(c.B * c.H * c.dh, seed + 2, -2.0f, 2.0f)};
}

// Positions [first, first + count) of every (b, h) of a (B, H, length, dh)
// tensor, as a contiguous (B, H, count, dh) one.
inline std::vector<float> positions(const KvCase& c, const std::vector<float>& x, int64_t first, int64_t count) {
  std::vector<float> out;
  for (int64_t head = 0; head < c.B * c.H; ++head) {
    const float* from = x.data() + (head * c.length + first) * c.dh;
    out.insert(out.end(), from, from + count * c.dh);
  }
  return out;
}

// The prefills that fill a cache with the context: growing sizes 1, 2, 4,
// ..., so both the one-position and the many-position paths run. Calls
// append(first, count) for each.
template <typename Append>
void for_each_prefill(const KvCase& c, Append&& append) {
  for (int64_t first = 0, count = 1; first < c.length; first += count, count *= 2) {
    count = std::min(count, c.length - first);
    append(first, count);
  }
}

// softmax(scale·q·Kᵀ)·V over all `length` positions, in double.
inline std::vector<double> reference_decode(const KvCase& c, const KvContext& ctx, double scale) {
  std::vector<double> out(c.B * c.H * c.dh);
  for (int64_t head = 0; head < c.B * c.H; ++head) {
    std::vector<double> s(c.length);
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < c.length; ++j) {
      double dot = 0;
      for (int64_t e = 0; e < c.dh; ++e) dot += double{ctx.q[head * c.dh + e]} * ctx.k[(head * c.length + j) * c.dh + e];
      s[j] = scale * dot;
      max = std::max(max, s[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < c.length; ++j) sum += std::exp(s[j] - max);
    for (int64_t j = 0; j < c.length; ++j)
      for (int64_t e = 0; e < c.dh; ++e)
        out[head * c.dh + e] += std::exp(s[j] - max) / sum * ctx.v[(head * c.length + j) * c.dh + e];
  }
  return out;
}

inline double default_scale(const KvCase& c) { return 1.0 / std::sqrt(static_cast<double>(c.dh)); }

// out is a convex combination of values in [-1, 1]: fp32 rounding over a
// few thousand terms stays far below this.
inline constexpr double kKvTolerance = 2e-6;

}  // namespace seqk_test
