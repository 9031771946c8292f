// Stacked and bidirectional recurrent layers, as torch.nn.LSTM / GRU / RNN
// with num_layers and bidirectional: layer l > 0 reads the output of layer
// l - 1; a bidirectional layer runs a second layer over each sequence from
// its last step (its true end, for sequences of different lengths) back to
// its first, and its output per step is [forward | reverse], 2H wide.
//
// The arguments are RecurrentForwardArgs / RecurrentBackwardArgs, with:
//   y, dy: (T, B, dirs·H), or packed (N, dirs·H);
//   h0, c0, h_n, c_n, dh_n, dc_n, dh0, dc0: (L·dirs, B, H), PyTorch's order
//     (layer 0 forward, layer 0 reverse, layer 1 forward, ...);
// and x, lengths and batch_sizes as for one layer. Parameters and gradients
// come one RecurrentParams / RecurrentGrads per (layer, direction), in the
// same order (PyTorch's weight_ih_l{k}, weight_ih_l{k}_reverse, ...).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "seqk/aligned.h"
#include "seqk/kept_buffers.h"
#include "seqk/recurrent_layer.h"

namespace seqk {

// What a training forward of the stack keeps for backward: each layer's
// saved state, and the inputs and outputs backward needs again.
class RecurrentStackSaved {
 private:
  friend class RecurrentStack;
  std::vector<RecurrentSaved> layers;       // L·dirs
  // L·dirs: each layer's input in its own time order; empty: x itself, or
  // with one direction the output of the layer below.
  std::vector<AlignedVector> inputs;
  std::vector<AlignedVector> outputs;       // L·dirs: each layer's y in its own time order
  int64_t rows = 0;
  // The stack's working buffers, kept from call to call: a training loop
  // passes the same saved every step, and fresh buffers of a few MiB cost
  // page faults that show beside a layer's run time.
  struct ForwardBuffers {
    AlignedVector input, output, reversed_input, direction_output[2], reversed_output;
  };
  struct BackwardBuffers {
    AlignedVector d_output, d_input, dy_dir[2], reversed_dy, dx_dir, reversed_dx;  // d_output: layer l's, d_input: l−1's
  };
  ForwardBuffers forward_buffers;
  mutable BackwardBuffers backward_buffers;
};

class RecurrentStack {
 public:
  RecurrentStack(CellKind cell, int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional);

  int64_t num_layers() const { return num_layers_; }
  int64_t directions() const { return directions_; }
  int64_t hidden_size() const { return hidden_size_; }
  int64_t output_size() const { return directions_ * hidden_size_; }
  // The input size of layer l: D for the first, dirs·H after it.
  int64_t layer_input_size(int64_t layer) const;
  int64_t parameter_count() const;

  // L·dirs parameter sets, PyTorch's order.
  void set_parameters(std::span<const RecurrentParams> params);

  void forward(const RecurrentForwardArgs& args, ThreadPool* pool = nullptr) const;
  void forward(const RecurrentForwardArgs& args, RecurrentStackSaved& saved, ThreadPool* pool = nullptr) const;
  // grads: L·dirs gradient sets, PyTorch's order; overwritten.
  void backward(const RecurrentBackwardArgs& args, const RecurrentStackSaved& saved,
                std::span<const RecurrentGrads> grads, ThreadPool* pool = nullptr) const;

 private:
  struct Layout;
  Layout layout(const ConstView& x, std::span<const int64_t> lengths, std::span<const int64_t> batch_sizes) const;
  void run_forward(const RecurrentForwardArgs& args, RecurrentStackSaved* saved, ThreadPool* pool) const;

  CellKind cell_;
  int64_t input_size_, hidden_size_, num_layers_, directions_;
  std::vector<RecurrentLayer> layers_;  // L·dirs

  mutable KeptBuffers<RecurrentStackSaved::ForwardBuffers> inference_buffers_;  // forward without a saved
};

}  // namespace seqk
