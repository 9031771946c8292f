// Seq2seq attention on the CPU: a decoder's states score a padded batch of
// encoder outputs, a softmax over each row's valid source positions gives
// the alignment α, and the context is the α-weighted sum of the encoder
// outputs. Forward and backward, three scoring functions:
//
//   additive (Bahdanau):  e_{b,t,i} = vᵀ · tanh(W_1·s_{b,t} + W_2·h_{b,i})
//   dot (Luong):          e_{b,t,i} = s_{b,t} · h_{b,i}            (Ds == Dh)
//   general (Luong):      e_{b,t,i} = s_{b,t}ᵀ · W · h_{b,i}
//   α_{b,t} = softmax_i(e_{b,t,i}) over i < lengths[b]; 0 beyond
//   context_{b,t} = Σ_i α_{b,t,i} · h_{b,i}
//
// The additive score has no bias inside the tanh, as in Bahdanau et al.
// (2015) and Keras' AdditiveAttention; a caller who wants one adds it to
// the projected keys (W_2·h + b), and its gradient is the sum of dkeys over
// batch and source positions.
//
// Keys. W_2·h (additive) and W·h (general) depend on the encoder only, so
// they are computed once per source batch by seq2seq_project_keys() and
// passed to every call as `keys`; a step-by-step decoder (Tq = 1 per call)
// never redoes them. The backward sums the gradient of the keys into
// dkeys (with accumulate, over all the decoder's steps), and
// seq2seq_project_keys_backward() turns it into the gradients of h and of
// W_2 or W, once, at the end. Dot scoring uses h itself as its keys.
//
// Shapes: s (B, Tq, Ds): Tq decoder steps at once (teacher forcing) or one
// (decoding); h (B, S, Dh), right-padded; lengths (B), each in [0, S]
// (empty: every position valid). A row with length 0 gets α = 0 and a zero
// context, and passes zero gradients back; no NaN. All views contiguous;
// no output may share memory with an input or another output.
// Results do not depend on the number of threads.
#pragma once

#include <cstdint>
#include <span>

#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

enum class Seq2SeqScore { kAdditive, kDot, kGeneral };
const char* to_string(Seq2SeqScore score);

struct Seq2SeqAttentionInputs {
  Seq2SeqScore score = Seq2SeqScore::kDot;
  ConstView s;                       // (B, Tq, Ds) decoder states
  ConstView h;                       // (B, S, Dh) encoder outputs
  ConstView keys;                    // additive (B, S, A), general (B, S, Ds): projected keys; dot: empty
  std::span<const int64_t> lengths;  // (B); empty: all S positions valid
  ConstView w_query;                 // additive: W_1 (A, Ds); else empty
  ConstView v;                       // additive: (A); else empty
};

// keys (B, S, K) = h · w_keyᵀ, w_key (K, Dh): W_2 (A, Dh) for additive
// scoring, W (Ds, Dh) for general. Once per source batch.
void seq2seq_project_keys(ConstView h, ConstView w_key, View keys, ThreadPool* pool = nullptr);

// context (B, Tq, Dh), alpha (B, Tq, S); both overwritten.
void seq2seq_attention_forward(const Seq2SeqAttentionInputs& in, View context, View alpha,
                               ThreadPool* pool = nullptr);

// ds is this call's decoder states' gradient: overwritten. The others are
// gradients of what every decoder step shares, overwritten or, with
// accumulate, added to, so that a step-by-step decoder sums them over its
// steps. dh gets the gradient of h as the values (and for dot scoring as
// the keys too); dkeys that of the projected keys.
struct Seq2SeqAttentionGrads {
  View ds;                  // (B, Tq, Ds)
  View dh;                  // (B, S, Dh)
  View dkeys;               // like in.keys; dot: empty
  View dw_query;            // additive: (A, Ds); else empty
  View dv;                  // additive: (A); else empty
  bool accumulate = false;  // add to dh, dkeys, dw_query, dv instead of overwriting them
};

// dcontext (B, Tq, Dh); alpha as written by the forward for the same inputs.
void seq2seq_attention_backward(const Seq2SeqAttentionInputs& in, ConstView alpha, ConstView dcontext,
                                const Seq2SeqAttentionGrads& grads, ThreadPool* pool = nullptr);

// After the backward of every step that used these keys: dh += dkeys · w_key
// (dh already holds the gradient of h as the values), and dw_key (K, Dh) =
// dkeysᵀ · h, overwritten.
void seq2seq_project_keys_backward(ConstView h, ConstView w_key, ConstView dkeys, View dh, View dw_key,
                                   ThreadPool* pool = nullptr);

}  // namespace seqk
