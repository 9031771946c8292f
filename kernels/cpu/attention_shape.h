// What both attention forms share: the checked problem shape, the masks as
// one prefix length per query row, and the per-target row kernels of the
// naive form.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "seqk/attention.h"
#include "seqk/thread_pool.h"

namespace seqk::detail {

struct AttentionShape {
  size_t batch = 0, heads = 0, queries = 0, keys = 0, head_size = 0;
  float scale = 1.0f;
  bool causal = false;
  const int64_t* key_lengths = nullptr;  // (batch) or null

  size_t heads_total() const { return batch * heads; }

  // Query i of batch row b sees keys [0, visible_keys(b, i)); the masks
  // reduce to this prefix because padding is on the right and the causal
  // mask is aligned to the last key.
  size_t visible_keys(size_t b, size_t i) const {
    int64_t end = key_lengths ? key_lengths[b] : static_cast<int64_t>(keys);
    if (causal)
      end = std::min(end, static_cast<int64_t>(i) + static_cast<int64_t>(keys) - static_cast<int64_t>(queries) + 1);
    return static_cast<size_t>(std::max<int64_t>(end, 0));
  }
};

// Throws seqk::Error naming the argument unless q, k, v, key_lengths and
// scale make a valid problem.
AttentionShape check_attention_inputs(const AttentionInputs& in);

// Naive form, for the rows of one head: scores (rows, keys) in place to
// probabilities of scale·scores over each row's visible keys (zero beyond).
void softmax_rows(const AttentionShape& s, size_t b, float* scores, ThreadPool* pool);
// dprobs (rows, keys) in place to the scores' gradient,
// scale · P ⊙ (dP − rowsum(P ⊙ dP)).
void softmax_backward_rows(const AttentionShape& s, const float* probs, float* dprobs, ThreadPool* pool);

}  // namespace seqk::detail
