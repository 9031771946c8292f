// The minGRU layer of Feng et al. (2024), "Were RNNs all we needed?", on the
// CPU: the gates depend on the input only, so the recurrence is the diagonal
// linear scan (seqk/scan.h) and trains in parallel over the sequence:
//   z_t = σ(W_z·x_t + b_z),   h̃_t = W_h·x_t + b_h,
//   h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t.
// Shapes as for the recurrent layers: x (T, B, D), y = h_1..h_T (T, B, H),
// h0 (B, H); parameters w_z, w_h (H, D), b_z, b_h (H).
#pragma once

#include <cstdint>

#include "seqk/aligned.h"
#include "seqk/gemm.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

struct MinGruParams {
  ConstView w_z, b_z, w_h, b_h;
};
struct MinGruGrads {
  View w_z, b_z, w_h, b_h;  // overwritten
};

// What a training forward keeps for backward: z and h̃ (T, B, H) each.
class MinGruSaved {
 private:
  friend class MinGruLayer;
  int64_t steps_ = 0, batch_ = 0;
  AlignedVector z_, candidate_;
};

class MinGruLayer {
 public:
  MinGruLayer(int64_t input_size, int64_t hidden_size);

  void set_parameters(const MinGruParams& params);

  // x (T, B, D) -> y (T, B, H); h0 (B, H) or empty for zeros.
  void forward(ConstView x, ConstView h0, View y, MinGruSaved* saved = nullptr, ThreadPool* pool = nullptr) const;
  // dy (T, B, H) -> dx (T, B, D; empty: not wanted), dh0 (B, H; empty: not
  // wanted) and the parameter gradients; x, h0, y as in the forward.
  void backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinGruSaved& saved, View dx, View dh0,
                const MinGruGrads& grads, ThreadPool* pool = nullptr) const;

 private:
  int64_t input_size_, hidden_size_;
  bool has_parameters_ = false;
  PackedMatrix w_;    // (2H, D): [W_z; W_h]
  PackedMatrix w_t_;  // (D, 2H): for dx
  AlignedVector bias_;  // (2H): [b_z; b_h]
};

}  // namespace seqk
