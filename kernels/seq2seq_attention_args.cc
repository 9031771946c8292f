// Sizes, lengths and names shared by the CPU and Vulkan seq2seq attention.
#include "kernels/seq2seq_attention_args.h"

#include "seqk/error.h"

namespace seqk {

const char* to_string(Seq2SeqScore score) {
  switch (score) {
    case Seq2SeqScore::kAdditive:
      return "additive";
    case Seq2SeqScore::kDot:
      return "dot";
    case Seq2SeqScore::kGeneral:
      return "general";
  }
  return "unknown";
}

namespace detail {

Seq2SeqShape check_seq2seq_sizes(Seq2SeqScore score, int64_t batch, int64_t queries, int64_t source,
                                 int64_t query_size, int64_t value_size, int64_t attention_size,
                                 std::span<const int64_t> lengths) {
  require(score == Seq2SeqScore::kAdditive || score == Seq2SeqScore::kDot || score == Seq2SeqScore::kGeneral,
          "seq2seq attention: unknown score ", static_cast<int>(score));
  require(batch > 0 && queries > 0 && source > 0 && query_size > 0 && value_size > 0,
          "seq2seq attention: B, Tq, S, Ds, Dh must be > 0, got B = ", batch, ", Tq = ", queries, ", S = ", source,
          ", Ds = ", query_size, ", Dh = ", value_size);
  const bool additive = score == Seq2SeqScore::kAdditive;
  require(!additive || attention_size > 0, "seq2seq attention: additive scoring needs A > 0, got A = ",
          attention_size);
  require(score != Seq2SeqScore::kDot || query_size == value_size,
          "seq2seq attention: dot scoring needs Ds == Dh, got Ds = ", query_size, ", Dh = ", value_size);
  if (!lengths.empty()) {
    require(static_cast<int64_t>(lengths.size()) == batch, "seq2seq attention: lengths has ", lengths.size(),
            " entries, expected one per batch row (B = ", batch, ")");
    for (int64_t b = 0; b < batch; ++b) {
      require(lengths[b] >= 0 && lengths[b] <= source, "seq2seq attention: lengths[", b, "] = ", lengths[b],
              " is outside [0, S = ", source, "]");
    }
  }
  const int64_t key_size = additive ? attention_size : score == Seq2SeqScore::kGeneral ? query_size : value_size;
  return {score,
          static_cast<size_t>(batch),
          static_cast<size_t>(queries),
          static_cast<size_t>(source),
          static_cast<size_t>(query_size),
          static_cast<size_t>(value_size),
          static_cast<size_t>(key_size),
          lengths.empty() ? nullptr : lengths.data()};
}

}  // namespace detail
}  // namespace seqk
