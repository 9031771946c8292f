// Stacked and bidirectional recurrent layers on a Vulkan device: the CPU
// RecurrentStack (seqk/recurrent_stack.h) with the same parameters, shapes
// and results, its data in device buffers. The arguments are
// RecurrentForwardBuffers / RecurrentBackwardBuffers with the stack's shapes:
// y, dy (rows, dirs·H); h0, c0, h_n, c_n, dh_n, dc_n, dh0, dc0
// (L·dirs, B, H) in PyTorch's order; x, lengths and batch_sizes as for one
// layer. The reverse direction reads each sequence from its true end.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "seqk/recurrent_stack.h"
#include "seqk/vulkan_recurrent.h"

namespace seqk::vk {

class RecurrentStackSaved {
 private:
  friend class RecurrentStack;
  std::vector<RecurrentSaved> layers;               // L·dirs
  std::vector<std::shared_ptr<Buffer>> inputs;      // L·dirs: input in the layer's own time order (null: x)
  std::vector<std::shared_ptr<Buffer>> outputs;     // L·dirs: y in the layer's own time order
  int64_t rows = 0;
};

class RecurrentStack {
 public:
  RecurrentStack(Device& device, CellKind cell, int64_t input_size, int64_t hidden_size, int64_t num_layers,
                 bool bidirectional);

  int64_t num_layers() const { return num_layers_; }
  int64_t directions() const { return directions_; }
  int64_t output_size() const { return directions_ * hidden_size_; }
  int64_t layer_input_size(int64_t layer) const { return layer == 0 ? input_size_ : output_size(); }

  // L·dirs parameter sets, PyTorch's order.
  void set_parameters(std::span<const RecurrentParams> params);

  void record_forward(Stream& stream, const RecurrentForwardBuffers& args);
  void record_forward(Stream& stream, const RecurrentForwardBuffers& args, RecurrentStackSaved& saved);
  void record_backward(Stream& stream, const RecurrentBackwardBuffers& args, const RecurrentStackSaved& saved,
                       std::span<const RecurrentGradBuffers> grads);

 private:
  void record_forward_impl(Stream& stream, const RecurrentForwardBuffers& args, RecurrentStackSaved* saved);

  Device& device_;
  CellKind cell_;
  int64_t input_size_, hidden_size_, num_layers_, directions_;
  std::vector<std::unique_ptr<RecurrentLayer>> layers_;  // L·dirs
};

}  // namespace seqk::vk
