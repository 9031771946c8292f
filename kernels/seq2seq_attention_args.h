// The problem shape of seq2seq attention and the size checks that the CPU
// and Vulkan entry points share, so both reject bad sizes and lengths with
// the same messages before touching anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "seqk/seq2seq_attention.h"

namespace seqk::detail {

struct Seq2SeqShape {
  Seq2SeqScore score = Seq2SeqScore::kDot;
  size_t batch = 0, queries = 0, source = 0;  // B, Tq, S
  size_t query_size = 0, value_size = 0;      // Ds, Dh
  // What a score compares: A (additive), Ds (general) or Dh (dot), the
  // width of the keys and of the (projected) queries.
  size_t key_size = 0;
  const int64_t* lengths = nullptr;  // (batch) or null: all valid

  bool additive() const { return score == Seq2SeqScore::kAdditive; }
  // Source positions [0, valid(b)) of batch row b are scored.
  size_t valid(size_t b) const { return lengths ? static_cast<size_t>(lengths[b]) : source; }
};

// Throws seqk::Error naming the offending size unless B, Tq, S, Ds, Dh are
// > 0, Ds == Dh for dot scoring, A > 0 for additive scoring (ignored
// otherwise), and lengths is empty or holds B values in [0, S].
Seq2SeqShape check_seq2seq_sizes(Seq2SeqScore score, int64_t batch, int64_t queries, int64_t source,
                                 int64_t query_size, int64_t value_size, int64_t attention_size,
                                 std::span<const int64_t> lengths);

}  // namespace seqk::detail
