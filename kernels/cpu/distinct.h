// The check that a kernel's outputs share no memory with its inputs or with
// each other, for the CPU entry points that read inputs while (or after)
// writing outputs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>

#include "seqk/error.h"
#include "seqk/tensor.h"

namespace seqk::detail {

// Whether [a, a + a_size) and [b, b + b_size) (in floats) intersect; never
// for a null pointer.
inline bool overlap(const float* a, int64_t a_size, const float* b, int64_t b_size) {
  const auto a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return a && b && a0 < b0 + static_cast<uintptr_t>(b_size) * sizeof(float) &&
         b0 < a0 + static_cast<uintptr_t>(a_size) * sizeof(float);
}

// Throws seqk::Error ("<who><output> overlaps an input" or "<who><output>
// overlaps <other output>") unless no output shares memory with an input or
// another output. Every view must already be checked contiguous (it spans
// numel() floats from data()); empty (null) views are skipped. `who`
// prefixes the message ("" or e.g. "selective scan: ").
inline void require_distinct(const char* who, std::initializer_list<std::pair<const char*, View>> outputs,
                             std::initializer_list<ConstView> inputs) {
  for (auto out = outputs.begin(); out != outputs.end(); ++out) {
    for (const ConstView& in : inputs)
      require(!overlap(out->second.data(), out->second.numel(), in.data(), in.numel()), who, out->first,
              " overlaps an input");
    for (auto other = outputs.begin(); other != out; ++other)
      require(!overlap(out->second.data(), out->second.numel(), other->second.data(), other->second.numel()), who,
              out->first, " overlaps ", other->first);
  }
}

}  // namespace seqk::detail
