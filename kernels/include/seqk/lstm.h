// LSTM layer over a sequence, forward (inference or training) and backward,
// on the CPU.
//
// Parameter layout is PyTorch's (torch.nn.LSTM, one layer, one direction), so
// its weights load as they are:
//   w_ih (4H, D), w_hh (4H, H), b_ih (4H), b_hh (4H); row blocks in gate
//   order i, f, g, o:  i = σ(x·W_iiᵀ + b_ii + h·W_hiᵀ + b_hi), likewise f, o;
//   g = tanh(...);  c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t).
// Two bias vectors are kept (as PyTorch and cuDNN do) and summed internally.
//
// Shapes: x (T, B, D) time-major, y (T, B, H); states (B, H). All views must
// be contiguous. Internally the weights are repacked with the four gates of
// each block of 16 hidden units side by side, so one thread computes a
// block's recurrent product and finishes its cell update while the data is in
// cache; a time step costs one barrier.
#pragma once

#include <cstdint>

#include "seqk/aligned.h"
#include "seqk/gemm.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

struct LstmParams {
  ConstView w_ih;  // (4H, D)
  ConstView w_hh;  // (4H, H)
  ConstView b_ih;  // (4H)
  ConstView b_hh;  // (4H)
};

// Gradients with the same layout as LstmParams; backward overwrites them.
struct LstmGrads {
  View w_ih, w_hh, b_ih, b_hh;
};

struct LstmForwardArgs {
  ConstView x;       // (T, B, D)
  View y;            // (T, B, H): h_1 .. h_T
  ConstView h0, c0;  // (B, H) each; empty means zeros
  View h_n, c_n;     // (B, H) each; empty means not wanted
};

struct LstmBackwardArgs {
  ConstView x, y, h0, c0;  // exactly as given to / produced by forward
  ConstView dy;            // (T, B, H): dL/dy
  ConstView dh_n, dc_n;    // (B, H) each; empty means zero
  View dx;                 // (T, B, D); empty means not wanted
  View dh0, dc0;           // (B, H) each; empty means not wanted
};

// What a training forward keeps for backward: the activated gates (T, B, 4H
// in the internal blocked order) and the cell states c_1..c_T (T, B, H).
// Hidden states are not copied: backward reads them from y.
class LstmSaved {
 public:
  int64_t steps() const { return steps_; }
  int64_t batch() const { return batch_; }

 private:
  friend class LstmLayer;
  int64_t steps_ = 0, batch_ = 0, input_size_ = 0, hidden_size_ = 0;
  AlignedVector gates_, cells_;
};

class LstmLayer {
 public:
  LstmLayer(int64_t input_size, int64_t hidden_size);

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  // 4·(H·D + H·H + 2H): PyTorch's count, two bias vectors per gate.
  int64_t parameter_count() const;

  // Copies and packs the parameters; call again after they change.
  void set_parameters(const LstmParams& params);

  // The layer works through the sequence in chunks of time steps whose gate
  // activations take at most this many bytes (at least one step), which
  // bounds its scratch memory: inference and backward need O(chunk), not
  // O(T·B·H). Larger chunks amortise the per-chunk GEMM calls.
  void set_workspace_limit(int64_t bytes);
  int64_t workspace_limit() const { return workspace_limit_; }

  // Inference: saves nothing.
  void forward(const LstmForwardArgs& args, ThreadPool* pool = nullptr) const;
  // Training: also fills `saved` for backward.
  void forward(const LstmForwardArgs& args, LstmSaved& saved, ThreadPool* pool = nullptr) const;
  // Gradients of the loss with respect to x, h0, c0 and every parameter.
  void backward(const LstmBackwardArgs& args, const LstmSaved& saved, const LstmGrads& grads,
                ThreadPool* pool = nullptr) const;

 private:
  void check_forward(const LstmForwardArgs& args) const;
  void run_forward(const LstmForwardArgs& args, float* saved_gates, float* saved_cells, ThreadPool* pool) const;
  int64_t chunk_steps(int64_t steps, int64_t batch) const;

  int64_t input_size_, hidden_size_, padded_hidden_;
  bool has_parameters_ = false;
  int64_t workspace_limit_ = int64_t{8} << 20;
  std::vector<int64_t> gate_order_;  // blocked gate row -> PyTorch row (or -1)
  PackedMatrix w_ih_packed_;         // (4Hp, D) blocked
  PackedMatrix w_hh_packed_;         // (4Hp, H) blocked
  PackedMatrix w_ih_t_packed_;       // (D, 4Hp): for dx = dG·W_ih
  PackedMatrix w_hh_t_packed_;       // (H, 4Hp): for dh = dG·W_hh
  AlignedVector bias_;               // (4Hp) blocked, b_ih + b_hh
};

}  // namespace seqk
