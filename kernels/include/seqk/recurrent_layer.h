// Recurrent layers over a sequence (LSTM, GRU, vanilla RNN: seqk/recurrent.h),
// forward (inference or training) and backward, on the CPU.
//
// Parameter layout is PyTorch's (torch.nn.LSTM / GRU / RNN, one layer, one
// direction), so its weights load as they are: with G = gates_per_unit(cell)
// (4, 3 or 1), w_ih (G·H, D), w_hh (G·H, H), b_ih (G·H), b_hh (G·H), row
// blocks in PyTorch's gate order. Two bias vectors are kept, as PyTorch and
// cuDNN do (the GRU needs both apart: b_hn sits inside r ⊙ (...)).
//
// Shapes: x (T, B, D) time-major, y (T, B, H); states (B, H); the cell state
// c only for the LSTM. All views must be contiguous.
//
// Sequences of different lengths, two ways (seqk/sequence_batch.h converts
// between them and groups sequences into batches):
//  - padded, with `lengths` (B): x (T, B, D) as above; the steps past a
//    sequence's length are skipped: y is 0 there, its states stop changing,
//    and h_n / c_n are those after its last step. The work is still done for
//    every step (what the padding costs is the point of measuring it);
//  - packed, with `batch_sizes` (T), like PyTorch's PackedSequence: the
//    sequences sorted by length, longest first, x (N, D) holding step 0 of
//    all B of them, then step 1 of the batch_sizes[1] still running, and so
//    on (N = Σ batch_sizes); y (N, H) likewise. Each step computes only the
//    sequences still running.
// Either gives each sequence exactly what running it alone gives. Internally the weights
// are repacked with the G gates of each block of 16 hidden units side by
// side, so one thread computes a block's recurrent product and finishes its
// cell update while the data is in cache; a time step costs one barrier.
#pragma once

#include <cstdint>
#include <span>

#include "seqk/aligned.h"
#include "seqk/gemm.h"
#include "seqk/kept_buffers.h"
#include "seqk/recurrent.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

namespace detail {
struct SequenceShape;
}  // namespace detail

struct RecurrentParams {
  ConstView w_ih;  // (G·H, D)
  ConstView w_hh;  // (G·H, H)
  ConstView b_ih;  // (G·H)
  ConstView b_hh;  // (G·H)
};

// Gradients with the same layout as RecurrentParams; backward overwrites them.
struct RecurrentGrads {
  View w_ih, w_hh, b_ih, b_hh;
};

struct RecurrentForwardArgs {
  ConstView x;       // (T, B, D), or packed (N, D)
  View y;            // (T, B, H): h_1 .. h_T, or packed (N, H)
  ConstView h0, c0;  // (B, H) each; empty means zeros; c0 only for the LSTM
  View h_n, c_n;     // (B, H) each; empty means not wanted; c_n only for the LSTM
  std::span<const int64_t> lengths;      // padded: each sequence's length, 1..T (empty: all T)
  std::span<const int64_t> batch_sizes;  // packed: sequences running at each step (empty: x is (T, B, D))
};

struct RecurrentBackwardArgs {
  ConstView x, y, h0, c0;  // exactly as given to / produced by forward
  ConstView dy;            // like y: dL/dy (ignored where y is padding)
  ConstView dh_n, dc_n;    // (B, H) each; empty means zero; dc_n only for the LSTM
  View dx;                 // like x; empty means not wanted (0 where x is padding)
  View dh0, dc0;           // (B, H) each; empty means not wanted; dc0 only for the LSTM
  std::span<const int64_t> lengths, batch_sizes;  // exactly as given to forward
};

// What a training forward keeps for backward: the activated gates (T, B, G·H
// in the internal blocked order) and, per step, the LSTM's c_t or the GRU's
// hidden side of n (W_hn·h + b_hn). Hidden states are not copied: backward
// reads them from y.
class RecurrentSaved {
 public:
  int64_t steps() const { return steps_; }
  int64_t batch() const { return batch_; }

 private:
  friend class RecurrentLayer;
  CellKind cell_ = CellKind::kLstm;
  int64_t steps_ = 0, batch_ = 0, rows_ = 0, input_size_ = 0, hidden_size_ = 0;
  AlignedVector gates_, cells_;
  // The backward's scratch, kept here so that a training loop, which passes
  // the same saved every step, does not fault tens of MiB of fresh pages in
  // on every backward (free() hands such buffers back to the system). So
  // two backward calls may not use one saved at the same time.
  struct BackwardScratch {
    AlignedVector dgates[2], dgates_hidden[2], weight_grads;
    PackedMatrix packed_x, packed_h;
  };
  mutable BackwardScratch scratch_;
};

class RecurrentLayer {
 public:
  RecurrentLayer(CellKind cell, int64_t input_size, int64_t hidden_size);

  CellKind cell() const { return cell_; }
  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  // G·(H·D + H·H + 2H): PyTorch's count, two bias vectors per gate.
  int64_t parameter_count() const;

  // Copies and packs the parameters; call again after they change.
  void set_parameters(const RecurrentParams& params);

  // The layer works through the sequence in chunks of time steps whose gate
  // activations take at most this many bytes (at least one step), which
  // bounds its scratch memory: inference and backward need O(chunk), not
  // O(T·B·H). Larger chunks amortise the per-chunk GEMM calls.
  void set_workspace_limit(int64_t bytes);
  int64_t workspace_limit() const { return workspace_limit_; }

  // Inference: saves nothing.
  void forward(const RecurrentForwardArgs& args, ThreadPool* pool = nullptr) const;
  // Training: also fills `saved` for backward.
  void forward(const RecurrentForwardArgs& args, RecurrentSaved& saved, ThreadPool* pool = nullptr) const;
  // Gradients of the loss with respect to x, h0, c0 and every parameter.
  void backward(const RecurrentBackwardArgs& args, const RecurrentSaved& saved, const RecurrentGrads& grads,
                ThreadPool* pool = nullptr) const;

 private:
  void run_forward(const RecurrentForwardArgs& args, const detail::SequenceShape& shape, float* saved_gates,
                   float* saved_cells, ThreadPool* pool) const;
  int64_t chunk_steps(int64_t steps, int64_t batch) const;
  int64_t gates() const { return gates_per_unit(cell_); }

  CellKind cell_;
  int64_t input_size_, hidden_size_, padded_hidden_;
  bool has_parameters_ = false;
  int64_t workspace_limit_ = int64_t{8} << 20;
  std::vector<int64_t> gate_order_;  // blocked gate row -> PyTorch row (or -1)
  PackedMatrix w_ih_packed_;         // (G·Hp, D) blocked
  PackedMatrix w_hh_packed_;         // (G·Hp, H) blocked
  PackedMatrix w_ih_t_packed_;       // (D, G·Hp): for dx = dG·W_ih
  PackedMatrix w_hh_t_packed_;       // (H, G·Hp): for dh = dG·W_hh
  // (G·Hp) blocked: what the input projection adds (b_ih + b_hh, or b_ih
  // for the GRU) and, for the GRU, what the hidden side adds (b_hh).
  AlignedVector input_bias_, hidden_bias_;
  mutable KeptBuffers<AlignedVector> inference_gates_;  // a chunk's gates, forward without a saved
};

// torch.nn.GRU's cell: gates r, z, n.
class GruLayer : public RecurrentLayer {
 public:
  GruLayer(int64_t input_size, int64_t hidden_size) : RecurrentLayer(CellKind::kGru, input_size, hidden_size) {}
};

// torch.nn.RNN's cell, nonlinearity tanh (kRnnTanh) or relu (kRnnRelu).
class RnnLayer : public RecurrentLayer {
 public:
  RnnLayer(int64_t input_size, int64_t hidden_size, CellKind nonlinearity = CellKind::kRnnTanh);
};

}  // namespace seqk
