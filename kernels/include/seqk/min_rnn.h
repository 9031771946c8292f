// The minimal RNNs of Feng et al. (2024), "Were RNNs all we needed?", on the
// CPU: their gates depend on the input only, so the recurrence is the
// diagonal linear scan (seqk/scan.h) and trains in parallel over the
// sequence.
//   minGRU:  z = σ(W_z·x + b_z),  h̃ = W_h·x + b_h,
//            h_t = (1 − z) ⊙ h_{t-1} + z ⊙ h̃
//   minLSTM: f = σ(W_f·x + b_f),  i = σ(W_i·x + b_i),  h̃ = W_h·x + b_h,
//            h_t = f' ⊙ h_{t-1} + i' ⊙ h̃,  f' = f / (f + i),  i' = i / (f + i)
// minLSTM's f' is computed as σ(log f − log i) from the pre-activations k,
// log σ(k) = −softplus(−k), as in the paper's log-space version: exact where
// f and i both underflow (k below about −88).
// Weights stacked gate by gate as in PyTorch: w (G·H, D), b (G·H), rows
// [z; h̃] (G = 2) or [f; i; h̃] (G = 3). Shapes as for the recurrent layers:
// x (T, B, D), y = h_1..h_T (T, B, H), h0 (B, H).
#pragma once

#include <cstdint>

#include "seqk/aligned.h"
#include "seqk/gemm.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

enum class MinRnnKind { kGru, kLstm };

struct MinRnnParams {
  ConstView w, b;  // (G·H, D), (G·H)
};
struct MinRnnGrads {
  View w, b;  // overwritten
};

// What a training forward keeps for backward: the gates' pre-activations
// (T·B, G·H), from which the backward recomputes the gates, and the scan's
// coefficients (T·B, H).
class MinRnnSaved {
 private:
  friend class MinRnnLayer;
  int64_t steps_ = 0, batch_ = 0;
  AlignedVector pre_, coefficients_;
};

class MinRnnLayer {
 public:
  MinRnnLayer(MinRnnKind kind, int64_t input_size, int64_t hidden_size);

  int64_t gates() const { return kind_ == MinRnnKind::kGru ? 2 : 3; }
  void set_parameters(const MinRnnParams& params);

  // x (T, B, D) -> y (T, B, H); h0 (B, H) or empty for zeros.
  void forward(ConstView x, ConstView h0, View y, MinRnnSaved* saved = nullptr, ThreadPool* pool = nullptr) const;
  // dy (T, B, H) -> dx (T, B, D; empty: not wanted), dh0 (B, H; empty: not
  // wanted) and the parameter gradients; x, h0, y as in the forward.
  void backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinRnnSaved& saved, View dx, View dh0,
                const MinRnnGrads& grads, ThreadPool* pool = nullptr) const;

 private:
  MinRnnKind kind_;
  int64_t input_size_, hidden_size_;
  bool has_parameters_ = false;
  PackedMatrix w_;    // (G·H, D)
  PackedMatrix w_t_;  // (D, G·H): for dx
  AlignedVector bias_;
};

}  // namespace seqk
