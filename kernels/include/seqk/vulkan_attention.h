// Multi-head scaled dot-product attention (seqk/attention.h) on a Vulkan
// device: the same math, layouts, masks (causal bottom-right aligned, key
// lengths) and fully-masked-row behaviour (zero output, lse −inf, zero
// gradients), every tensor a dense device Buffer, recorded on a Stream
// (nothing runs before stream.submit()).
//
// Tiled ("flash") form, shaders/attention_forward.comp and
// attention_backward_*.comp: a workgroup takes a block of queries (one
// invocation per query row, its dh accumulators in registers) and walks the
// key blocks staged through shared memory with an online softmax; it saves
// only out and the log-sum-exp. The backward computes D = rowsum(dO ⊙ O),
// then dk and dv with a workgroup per key block walking the query blocks, and
// dq with a workgroup per query block walking the key blocks, each
// recomputing the probabilities from lse: every gradient element is summed by
// one invocation in a fixed order, no float atomics, the same bits every run.
// The backward's scratch is B·H·Lq floats (D).
// The block sizes and the head size are specialization constants; the head
// size may be any dh in [1, kAttentionMaxHeadSize], each its own pipeline.
//
// Naive form: scores Q·Kᵀ into probs (B, H, Lq, Lk) through the Vulkan GEMM,
// a softmax over each row with the masks, out = P·V; the backward from probs
// with a scratch of Lq·Lk floats (one head at a time).
//
// On a CPU device (lavapipe stops a shader after 65,535 loop iterations) the
// walk over keys (or queries) is split into several dispatches that carry
// the partial results in the outputs themselves: the forward's running
// (out, lse) pair is a valid softmax over the keys seen so far, which the
// next dispatch merges with its own; dq, dk and dv are accumulated.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "seqk/vulkan.h"

namespace seqk::vk {

inline constexpr int64_t kAttentionMaxHeadSize = 128;

struct AttentionBuffers {
  int64_t batch = 0, heads = 0, queries = 0, keys = 0, head_size = 0;  // B, H, Lq (< 2^31), Lk (<= 2^24), dh
  const Buffer* q = nullptr;                                          // (B, H, Lq, dh)
  const Buffer *k = nullptr, *v = nullptr;                            // (B, H, Lk, dh)
  bool causal = false;                   // bottom-right aligned, as on the CPU
  // Host values (B), each in [0, Lk], copied to the device when a call is
  // recorded; empty: no padding.
  std::span<const int64_t> key_lengths;
  std::optional<float> scale;            // finite; default 1/sqrt(dh)
};

// Overwritten: dq like q, dk and dv like k.
struct AttentionGradBuffers {
  Buffer *dq = nullptr, *dk = nullptr, *dv = nullptr;
};

// Tiled form. out (B, H, Lq, dh); lse (B, H, Lq).
void attention_forward(Stream& stream, const AttentionBuffers& in, Buffer& out, Buffer& lse);

// dout (B, H, Lq, dh); in, out and lse as given to / written by attention_forward.
void attention_backward(Stream& stream, const AttentionBuffers& in, const Buffer& out, const Buffer& lse,
                        const Buffer& dout, const AttentionGradBuffers& grads);

// Naive form. probs (B, H, Lq, Lk): the probabilities, zero where masked.
void attention_naive_forward(Stream& stream, const AttentionBuffers& in, Buffer& out, Buffer& probs);

// probs as written by attention_naive_forward for the same inputs.
void attention_naive_backward(Stream& stream, const AttentionBuffers& in, const Buffer& probs, const Buffer& dout,
                              const AttentionGradBuffers& grads);

}  // namespace seqk::vk
