// Multi-head scaled dot-product attention on the CPU, forward and backward,
// in two forms:
//
//   O = softmax(scale · Q·Kᵀ + mask) · V     per batch row b and head h
//
// - The tiled ("flash") form: blocks of queries against blocks of keys with
//   an online softmax (running row max and sum, rescaled as each key block
//   arrives), so the Lq×Lk scores never exist in memory: extra memory is
//   O(Lq + Lk) per thread. Its forward saves only O and the log-sum-exp of
//   every query row; the backward recomputes the scores block by block from
//   them (FlashAttention-2: D_i = rowsum(dO_i ⊙ O_i) first).
// - The naive form: materialises the probabilities P (B, H, Lq, Lk), which
//   the caller provides and the backward reads; the matrix products go
//   through seqk::gemm. It is there to measure what the tiled form saves
//   (claim S2), not to be used for long sequences.
//
// Layout: q (B, H, Lq, dh); k, v (B, H, Lk, dh); out (B, H, Lq, dh); all
// contiguous. scale defaults to 1/sqrt(dh). Lk is at most kAttentionMaxKeys
// (2^24): the tiled form compares key indices as floats in vector lanes.
// No output may share memory with an input or another output.
//
// Masks. Query i of batch row b sees the keys j < visible(b, i), a prefix:
//   visible(b, i) = min(key_length[b], causal ? i + Lk − Lq + 1 : Lk),
// - causal: with Lq ≠ Lk the ends are aligned (bottom-right, as PyTorch's
//   and FlashAttention's causal masks): the last query sees every key, so a
//   chunk of Lq new queries after Lk − Lq cached keys is masked as it should.
// - key padding: key_lengths (B), the number of valid keys of each batch row
//   (keys are right-padded), as PyTorch's key_padding_mask with its trues at
//   the end. Empty: every key is valid.
// A query that sees no key (causal with Lq > Lk, or a key length of 0) gets
// a zero output row, a log-sum-exp of −inf (log of an empty sum) and zero
// gradients; no NaN anywhere.
//
// Both forms give results that do not depend on the number of threads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

// The most keys (Lk) a problem may have, on the CPU and on Vulkan: floats
// hold whole numbers exactly only up to 2^24.
inline constexpr int64_t kAttentionMaxKeys = int64_t{1} << 24;

struct AttentionInputs {
  ConstView q;                           // (B, H, Lq, dh)
  ConstView k, v;                        // (B, H, Lk, dh)
  bool causal = false;                   // bottom-right aligned (see above)
  std::span<const int64_t> key_lengths;  // (B), each in [0, Lk]; empty: no padding
  std::optional<float> scale;            // finite; default 1/sqrt(dh)
};

// The gradients, overwritten: dq like q, dk and dv like k.
struct AttentionGrads {
  View dq, dk, dv;
};

// Tiled form. out (B, H, Lq, dh); lse (B, H, Lq): the log-sum-exp of each
// query row's scaled, masked scores, which is all the backward needs besides
// the inputs and out.
void attention_forward(const AttentionInputs& in, View out, View lse, ThreadPool* pool = nullptr);

// dout (B, H, Lq, dh); in, out and lse exactly as given to / produced by
// attention_forward.
void attention_backward(const AttentionInputs& in, ConstView out, ConstView lse, ConstView dout,
                        const AttentionGrads& grads, ThreadPool* pool = nullptr);

// Naive form. probs (B, H, Lq, Lk): the softmax probabilities, zero where
// masked; kept for the backward.
void attention_naive_forward(const AttentionInputs& in, View out, View probs, ThreadPool* pool = nullptr);

// probs as written by attention_naive_forward for the same inputs. Needs a
// further Lq×Lk buffer of its own for one head at a time.
void attention_naive_backward(const AttentionInputs& in, ConstView probs, ConstView dout, const AttentionGrads& grads,
                              ThreadPool* pool = nullptr);

}  // namespace seqk
