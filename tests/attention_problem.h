// The attention test problems both attention suites share (test_attention
// for the CPU, test_vulkan_attention): a case's sizes and masks, and which
// query sees which key, written from the documented rule independently of
// the kernels' prefix form.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace seqk_test {

struct Case {
  int64_t B, H, Lq, Lk, dh;
  bool causal = false;
  std::vector<int64_t> key_lengths = {};  // empty: no padding
  std::optional<float> scale = {};        // empty: 1/sqrt(dh)
};

inline std::string describe(const Case& c) {
  std::string s = "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " Lq=" + std::to_string(c.Lq) +
                  " Lk=" + std::to_string(c.Lk) + " dh=" + std::to_string(c.dh) + (c.causal ? " causal" : "");
  for (int64_t length : c.key_lengths) s += " len=" + std::to_string(length);
  if (c.scale) s += " scale=" + std::to_string(*c.scale);
  return s;
}

inline int64_t q_size(const Case& c) { return c.B * c.H * c.Lq * c.dh; }
inline int64_t k_size(const Case& c) { return c.B * c.H * c.Lk * c.dh; }

inline double scale_of(const Case& c) { return c.scale ? *c.scale : 1.0 / std::sqrt(static_cast<double>(c.dh)); }

// Written from the documented rule, independently of the kernel's prefix form.
inline bool sees(const Case& c, int64_t b, int64_t i, int64_t j) {
  if (!c.key_lengths.empty() && j >= c.key_lengths[b]) return false;
  return !c.causal || j <= i + c.Lk - c.Lq;
}

}  // namespace seqk_test
