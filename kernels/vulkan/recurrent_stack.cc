// RecurrentStack on Vulkan: layers composed on one stream. The reverse
// direction runs an ordinary layer over its input gathered through the
// mirrored-row permutation (each sequence reversed within its own length),
// and its output is gathered back the same way; per-(layer, direction) states
// are copied between the stack's (L·dirs, B, H) buffers and the layer's own.
#include "seqk/vulkan_recurrent_stack.h"

#include <initializer_list>
#include <vector>

#include "kernels/recurrent_args.h"
#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace {

// A fresh device buffer kept alive until the stream's work has run.
std::shared_ptr<Buffer> temporary(Device& device, Stream& stream, int64_t count) {
  auto buffer = std::make_shared<Buffer>(device, count);
  detail::retain(stream, buffer);
  return buffer;
}

void require_stack_buffer(const Buffer* buffer, const char* name, int64_t size, const Device& device, bool optional) {
  if (buffer == nullptr) {
    require(optional, "vulkan stack: ", name, " is null");
    return;
  }
  require(static_cast<int64_t>(buffer->size()) == size, "vulkan stack: ", name, " holds ", buffer->size(),
          " floats, expected ", size);
  require(buffer->impl().device == &device.impl(), "vulkan stack: ", name, " belongs to another device");
}

}  // namespace

RecurrentStack::RecurrentStack(Device& device, CellKind cell, int64_t input_size, int64_t hidden_size,
                               int64_t num_layers, bool bidirectional)
    : device_(device),
      cell_(cell),
      input_size_(input_size),
      hidden_size_(hidden_size),
      num_layers_(num_layers),
      directions_(bidirectional ? 2 : 1) {
  require(num_layers >= 1, "num_layers must be >= 1, got ", num_layers);
  for (int64_t l = 0; l < num_layers; ++l)
    for (int64_t dir = 0; dir < directions_; ++dir)
      layers_.push_back(std::make_unique<RecurrentLayer>(device, cell, layer_input_size(l), hidden_size));
}

void RecurrentStack::set_parameters(std::span<const RecurrentParams> params) {
  require(static_cast<int64_t>(params.size()) == num_layers_ * directions_, "a stack of ", num_layers_,
          " layers and ", directions_, " direction(s) takes ", num_layers_ * directions_, " parameter sets, got ",
          params.size());
  for (std::size_t i = 0; i < params.size(); ++i) layers_[i]->set_parameters(params[i]);
}

void RecurrentStack::record_forward(Stream& stream, const RecurrentForwardBuffers& args) {
  record_forward_impl(stream, args, nullptr);
}

void RecurrentStack::record_forward(Stream& stream, const RecurrentForwardBuffers& args, RecurrentStackSaved& saved) {
  record_forward_impl(stream, args, &saved);
}

namespace {

// The mirrored-row permutation of the batch's layout as a float buffer for
// gather_rows; null for one direction.
std::shared_ptr<Buffer> mirror_indices(Device& device, Stream& stream, const std::vector<int64_t>& offsets,
                                       int64_t steps, int64_t batch, std::span<const int64_t> lengths,
                                       bool packed) {
  const seqk::detail::SequenceShape shape{steps, batch, offsets.back(), offsets};
  const std::vector<int64_t> mirrored = seqk::detail::mirrored_rows(shape, lengths, packed);
  require(shape.rows < (int64_t{1} << 24), "vulkan stack: ", shape.rows, " rows are too many to index as floats");
  std::vector<float> values(mirrored.begin(), mirrored.end());
  auto buffer = temporary(device, stream, static_cast<int64_t>(values.size()));
  buffer->upload(values);
  return buffer;
}

}  // namespace

void RecurrentStack::record_forward_impl(Stream& stream, const RecurrentForwardBuffers& args,
                                         RecurrentStackSaved* saved) {
  const int64_t T = args.steps, B = args.batch, H = hidden_size_, dirs = directions_, S = num_layers_ * dirs;
  const std::vector<int64_t> offsets = detail::step_offsets(T, B, args.lengths, args.batch_sizes);
  const int64_t rows = offsets.back(), out = dirs * H;
  const bool lstm = cell_ == CellKind::kLstm;
  require(&stream.device() == &device_, "vulkan stack: the stream belongs to another device");
  require_stack_buffer(args.x, "x", rows * input_size_, device_, false);
  require_stack_buffer(args.y, "y", rows * out, device_, false);
  for (const auto& [buffer, name] : {std::pair{args.h0, "h0"}, {args.c0, "c0"}, {args.h_n, "h_n"}, {args.c_n, "c_n"}})
    require_stack_buffer(buffer, name, S * B * H, device_, true);
  require(lstm || (args.c0 == nullptr && args.c_n == nullptr), "c0 / c_n given, but a ", to_string(cell_),
          " stack has no cell state");
  const std::shared_ptr<Buffer> indices =
      dirs == 2 ? mirror_indices(device_, stream, offsets, T, B, args.lengths, !args.batch_sizes.empty()) : nullptr;
  if (saved) {
    saved->layers.assign(static_cast<std::size_t>(S), RecurrentSaved());
    saved->inputs.assign(static_cast<std::size_t>(S), nullptr);
    saved->outputs.assign(static_cast<std::size_t>(S), nullptr);
    saved->rows = rows;
  }
  auto state = [&](const Buffer* all, int64_t index) -> std::shared_ptr<Buffer> {
    if (all == nullptr) return nullptr;
    auto one = temporary(device_, stream, B * H);
    detail::copy(stream, *all, index * B * H, *one, 0, B * H);
    return one;
  };

  std::shared_ptr<Buffer> input;  // layer l's input (null: x)
  for (int64_t l = 0; l < num_layers_; ++l) {
    const int64_t width = layer_input_size(l);
    const Buffer& in = input ? *input : *args.x;
    const std::shared_ptr<Buffer> output = l + 1 < num_layers_ ? temporary(device_, stream, rows * out) : nullptr;
    Buffer& layer_out = output ? *output : *args.y;
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const int64_t index = l * dirs + dir;
      std::shared_ptr<Buffer> dir_in;  // null: `in` itself
      if (dir == 1) {
        dir_in = temporary(device_, stream, rows * width);
        detail::gather_rows(stream, in, width, 0, *dir_in, width, 0, rows, width, indices.get(), false);
      } else if (input) {
        dir_in = input;
      }
      const auto dir_out = temporary(device_, stream, rows * H);
      const auto h0 = state(args.h0, index), c0 = state(args.c0, index);
      const auto h_n = args.h_n ? temporary(device_, stream, B * H) : nullptr;
      const auto c_n = args.c_n ? temporary(device_, stream, B * H) : nullptr;
      const RecurrentForwardBuffers layer_args{T,        B,         dir_in ? dir_in.get() : args.x,
                                               dir_out.get(), h0.get(),  c0.get(),
                                               h_n.get(), c_n.get(), args.lengths,
                                               args.batch_sizes};
      if (saved) {
        layers_[index]->record_forward(stream, layer_args, saved->layers[index]);
        saved->inputs[index] = dir_in;
        saved->outputs[index] = dir_out;
      } else {
        layers_[index]->record_forward(stream, layer_args);
      }
      if (h_n) detail::copy(stream, *h_n, 0, *args.h_n, index * B * H, B * H);
      if (c_n) detail::copy(stream, *c_n, 0, *args.c_n, index * B * H, B * H);
      detail::gather_rows(stream, *dir_out, H, 0, layer_out, out, dir * H, rows, H, dir == 1 ? indices.get() : nullptr,
                          false);
    }
    input = output;
  }
}

void RecurrentStack::record_backward(Stream& stream, const RecurrentBackwardBuffers& args,
                                     const RecurrentStackSaved& saved, std::span<const RecurrentGradBuffers> grads) {
  const int64_t T = args.steps, B = args.batch, H = hidden_size_, dirs = directions_, S = num_layers_ * dirs;
  const std::vector<int64_t> offsets = detail::step_offsets(T, B, args.lengths, args.batch_sizes);
  const int64_t rows = offsets.back(), out = dirs * H;
  require(&stream.device() == &device_, "vulkan stack: the stream belongs to another device");
  require(saved.rows == rows && static_cast<int64_t>(saved.layers.size()) == S,
          "saved comes from another forward (run the training forward of this stack on this batch first)");
  require(static_cast<int64_t>(grads.size()) == S, "backward of a stack of ", num_layers_, " layers and ", dirs,
          " direction(s) takes ", S, " gradient sets, got ", grads.size());
  require_stack_buffer(args.x, "x", rows * input_size_, device_, false);
  require_stack_buffer(args.dy, "dy", rows * out, device_, false);
  require_stack_buffer(args.dx, "dx", rows * input_size_, device_, true);
  for (const auto& [buffer, name] : {std::pair{args.h0, "h0"}, {args.c0, "c0"}, {args.dh_n, "dh_n"},
                                     {args.dc_n, "dc_n"}, {args.dh0, "dh0"}, {args.dc0, "dc0"}})
    require_stack_buffer(buffer, name, S * B * H, device_, true);
  const std::shared_ptr<Buffer> indices =
      dirs == 2 ? mirror_indices(device_, stream, offsets, T, B, args.lengths, !args.batch_sizes.empty()) : nullptr;
  auto state = [&](const Buffer* all, int64_t index) -> std::shared_ptr<Buffer> {
    if (all == nullptr) return nullptr;
    auto one = temporary(device_, stream, B * H);
    detail::copy(stream, *all, index * B * H, *one, 0, B * H);
    return one;
  };

  // From the top layer down: each direction's share of dL/d(output) in its
  // own time order, then its dL/d(input) added into the layer below's.
  const Buffer* d_output = args.dy;
  for (int64_t l = num_layers_ - 1; l >= 0; --l) {
    const int64_t width = layer_input_size(l);
    const bool want_dx = l > 0 || args.dx != nullptr;
    const std::shared_ptr<Buffer> d_input_buffer = l > 0 ? temporary(device_, stream, rows * width) : nullptr;
    Buffer* d_input = l > 0 ? d_input_buffer.get() : args.dx;
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const int64_t index = l * dirs + dir;
      const auto dy = temporary(device_, stream, rows * H);
      detail::gather_rows(stream, *d_output, out, dir * H, *dy, H, 0, rows, H, dir == 1 ? indices.get() : nullptr,
                          false);
      const auto h0 = state(args.h0, index), c0 = state(args.c0, index);
      const auto dh_n = state(args.dh_n, index), dc_n = state(args.dc_n, index);
      const auto dh0 = args.dh0 ? temporary(device_, stream, B * H) : nullptr;
      const auto dc0 = args.dc0 ? temporary(device_, stream, B * H) : nullptr;
      const auto dx = want_dx ? temporary(device_, stream, rows * width) : nullptr;
      const Buffer* in = saved.inputs[index] ? saved.inputs[index].get() : args.x;
      layers_[index]->record_backward(stream,
                                      {T, B, in, saved.outputs[index].get(), h0.get(), c0.get(), dy.get(), dh_n.get(),
                                       dc_n.get(), dx.get(), dh0.get(), dc0.get(), args.lengths, args.batch_sizes},
                                      saved.layers[index], grads[index]);
      if (dh0) detail::copy(stream, *dh0, 0, *args.dh0, index * B * H, B * H);
      if (dc0) detail::copy(stream, *dc0, 0, *args.dc0, index * B * H, B * H);
      if (want_dx) {
        detail::gather_rows(stream, *dx, width, 0, *d_input, width, 0, rows, width,
                            dir == 1 ? indices.get() : nullptr, dir == 1);
      }
    }
    d_output = d_input;
  }
}

}  // namespace seqk::vk
