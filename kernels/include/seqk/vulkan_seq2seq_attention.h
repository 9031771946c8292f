// Seq2seq attention (seqk/seq2seq_attention.h) on a Vulkan device: the same
// scores, masks, layouts and gradients, every tensor a dense device Buffer,
// recorded on a Stream (nothing runs before stream.submit()).
//
// How it runs: the weight products (W_1·s, the key projection and their
// gradients) are GEMMs (seqk::vk::gemm's shader). One workgroup per decoder
// row (b, t) scores the row's valid keys, takes the softmax (workgroup
// reductions in shared memory, no subgroup size assumed) and sums the
// context; the backward's row pass does the softmax backward and the
// gradient of the row's query the same way, and a last pass gives each
// element of dh, dkeys and dv its sum over the decoder rows in a fixed
// order: no atomics, the same bits every run.
//
// Lengths are host values, checked, and uploaded (B floats) with every
// call. On a CPU device (lavapipe, whose shaders stop after 65,535 loop
// iterations) sizes whose loops exceed the budget are rejected with a
// seqk::Error: about S·(K + Dh)/64 + S iterations per row.
#pragma once

#include <cstdint>
#include <span>

#include "seqk/seq2seq_attention.h"
#include "seqk/vulkan.h"

namespace seqk::vk {

struct Seq2SeqAttentionBuffers {
  Seq2SeqScore score = Seq2SeqScore::kDot;
  int64_t batch = 0, queries = 0, source = 0;                  // B, Tq, S
  int64_t query_size = 0, value_size = 0, attention_size = 0;  // Ds, Dh, A (additive only)
  const Buffer* s = nullptr;                                   // (B, Tq, Ds)
  const Buffer* h = nullptr;                                   // (B, S, Dh)
  const Buffer* keys = nullptr;  // additive (B, S, A), general (B, S, Ds), from seq2seq_project_keys; dot: null
  std::span<const int64_t> lengths;  // (B), each in [0, S]; empty: all valid
  const Buffer* w_query = nullptr;   // additive: W_1 (A, Ds); else null
  const Buffer* v = nullptr;         // additive: (A); else null
};

// keys (B, S, K) = h (B, S, Dh) · w_keyᵀ, w_key (K, Dh): W_2 (additive) or
// W (general). Once per source batch.
void seq2seq_project_keys(Stream& stream, const Buffer& h, const Buffer& w_key, Buffer& keys, int64_t batch,
                          int64_t source, int64_t value_size, int64_t key_size);

// context (B, Tq, Dh), alpha (B, Tq, S); overwritten.
void seq2seq_attention_forward(Stream& stream, const Seq2SeqAttentionBuffers& in, Buffer& context, Buffer& alpha);

// As seqk::Seq2SeqAttentionGrads: ds overwritten; dh, dkeys, dw_query, dv
// overwritten or, with accumulate, added to. Null where the score has no
// such tensor (dkeys for dot; dw_query, dv unless additive).
struct Seq2SeqAttentionGradBuffers {
  Buffer* ds = nullptr;        // (B, Tq, Ds)
  Buffer* dh = nullptr;        // (B, S, Dh)
  Buffer* dkeys = nullptr;     // like in.keys
  Buffer* dw_query = nullptr;  // (A, Ds)
  Buffer* dv = nullptr;        // (A)
  bool accumulate = false;
};

// alpha (B, Tq, S) from the forward on the same inputs; dcontext (B, Tq, Dh).
void seq2seq_attention_backward(Stream& stream, const Seq2SeqAttentionBuffers& in, const Buffer& alpha,
                                const Buffer& dcontext, const Seq2SeqAttentionGradBuffers& grads);

// After the backward of every step that used the keys: dh += dkeys · w_key,
// dw_key (K, Dh) = dkeysᵀ · h (overwritten).
void seq2seq_project_keys_backward(Stream& stream, const Buffer& h, const Buffer& w_key, const Buffer& dkeys,
                                   Buffer& dh, Buffer& dw_key, int64_t batch, int64_t source, int64_t value_size,
                                   int64_t key_size);

}  // namespace seqk::vk
