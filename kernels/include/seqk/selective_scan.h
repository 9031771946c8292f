// The selective scan (S6) of Mamba (Gu & Dao 2023), on the CPU, in the
// layout of Mamba's selective_scan_fn: for every batch row b and channel d,
// a state h of N values runs over the L steps
//   δ_t   = Δ_t (+ δ_bias_d, then softplus if delta_softplus)
//   h_t   = exp(δ_t·A_d) ⊙ h_{t-1} + δ_t·u_t·B_t     (zero-order hold for A,
//                                                     Euler for B, as Mamba)
//   y_t   = C_t · h_t + D_d·u_t,   then y_t·silu(z_t) when z is given,
// with u, Δ, z, y (B, D, L); A (D, N); B, C (B, N, L), shared by all
// channels of a batch row; D and δ_bias (D). h_0 is h0 (B, D, N) or zero.
//
// The forward never stores the (B, D, L, N) states: training keeps only the
// state at the start of every chunk of steps, and the backward recomputes
// each chunk's states from there before running it in reverse. SIMD runs
// across channels (a vector of one batch row's channels shares B_t and C_t,
// so C_t·h_t needs no sum across lanes); threads split the blocks of
// channels. The decode step runs SIMD across the N state values instead.
#pragma once

#include <cstdint>

#include "seqk/aligned.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

// Optional tensors are empty views (empty means: no skip, no gate, no bias,
// zero initial state).
struct SelectiveScanInputs {
  ConstView u, delta;        // (B, D, L)
  ConstView A;               // (D, N)
  ConstView B, C;            // (B, N, L)
  ConstView D;               // (D) skip; optional
  ConstView z;               // (B, D, L) gate; optional
  ConstView delta_bias;      // (D); optional
  bool delta_softplus = false;
  ConstView h0;              // (B, D, N); optional
};

// The gradients, overwritten. Each one for an optional input must be given
// exactly when that input is; dh0 may be left empty (not wanted) either way.
struct SelectiveScanGrads {
  View du, ddelta;   // (B, D, L)
  View dA;           // (D, N)
  View dB, dC;       // (B, N, L)
  View dD;           // (D)
  View dz;           // (B, D, L)
  View ddelta_bias;  // (D)
  View dh0;          // (B, D, N)
};

// What a training forward keeps: the state entering every chunk of
// `chunk_steps` steps, (B, D, ⌈L / chunk_steps⌉, N).
class SelectiveScanSaved {
 public:
  int64_t chunk_steps() const { return chunk_steps_; }
  int64_t chunks() const { return chunks_; }

 private:
  friend struct SelectiveScanAccess;
  int64_t batch_ = 0, channels_ = 0, steps_ = 0, state_ = 0, chunk_steps_ = 0, chunks_ = 0;
  AlignedVector states_;
};

inline constexpr int64_t kSelectiveScanMaxState = 256;  // N at most
inline constexpr int64_t kSelectiveScanDefaultChunk = 64;

// y (B, D, L); h_last (B, D, N) or empty; saved null for inference, else
// filled for the backward with checkpoints every `chunk_steps` steps.
void selective_scan(const SelectiveScanInputs& in, View y, View h_last, SelectiveScanSaved* saved = nullptr,
                    ThreadPool* pool = nullptr, int64_t chunk_steps = kSelectiveScanDefaultChunk);

// dy (B, D, L); dh_last (B, D, N) or empty. `in` exactly as given to the
// forward that filled `saved`.
void selective_scan_backward(const SelectiveScanInputs& in, const SelectiveScanSaved& saved, ConstView dy,
                             ConstView dh_last, const SelectiveScanGrads& grads, ThreadPool* pool = nullptr);

// One decoding step: the same update for a single new position, carrying the
// state. u, delta, z (B, D); B, C (B, N); A, D, delta_bias, delta_softplus as
// above (in.h0 unused); h (B, D, N) in and out; y (B, D). Its cost does not
// depend on how many steps came before.
struct SelectiveScanStepInputs {
  ConstView u, delta;  // (B, D)
  ConstView A;         // (D, N)
  ConstView B, C;      // (B, N)
  ConstView D;         // (D); optional
  ConstView z;         // (B, D); optional
  ConstView delta_bias;
  bool delta_softplus = false;
};
void selective_scan_step(const SelectiveScanStepInputs& in, View h, View y, ThreadPool* pool = nullptr);

}  // namespace seqk
