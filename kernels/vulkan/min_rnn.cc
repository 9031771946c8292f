// minGRU and minLSTM on Vulkan: the GEMMs on shaders/gemm.comp, the gates on
// shaders/min_rnn_gates_forward.comp and min_rnn_gates_backward.comp, the
// recurrence on the linear scan (kernels/vulkan/scan.cc).
#include "seqk/vulkan_min_rnn.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <utility>

#include "kernels/min_rnn_args.h"
#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"
#include "seqk/vulkan_scan.h"

namespace seqk::vk {

using detail::BufferArg;
using detail::check_buffers;

struct MinRnnLayer::Impl {
  // Parameters, and a 1 that the bias-gradient GEMM multiplies with.
  // shared_ptr: recorded work keeps them alive.
  std::shared_ptr<Buffer> w, bias, one;
  // Scratch, each of the exact size its last call needed (the scan checks
  // sizes): inference pre-activations (T·B, G·H) and scan coefficients
  // (T·B, H), the scan's input (T·B, H), backward's scan gradients (T·B, H)
  // each and the pre-activations' gradients (T·B, G·H).
  std::shared_ptr<Buffer> inference_pre, inference_coefficients, inputs, d_coefficients, d_inputs, d_pre;
};

namespace {

constexpr uint32_t kElementwiseGroup = 256;

const char* kind_name(MinRnnKind kind) { return kind == MinRnnKind::kGru ? "minGRU" : "minLSTM"; }

// What the dispatches need of T, B and the sizes, so that a call that
// passes records all of them: 32-bit indexing in every shader, the GEMMs'
// workgroup grid across (their smallest tile, the bias sums', is 16
// columns), and the scan's limits.
void check_sizes(const Device::Impl& device, int64_t steps, int64_t batch, int64_t input, int64_t gate_width,
                 int64_t hidden) {
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  require(steps > 0 && batch > 0, "vulkan min-RNN: T and B must be > 0, got T = ", steps, ", B = ", batch);
  const int64_t width = std::max(input, gate_width);
  require(steps <= kMax / batch && steps * batch <= kMax / width, "vulkan min-RNN: T = ", steps, ", B = ", batch,
          " and width ", width, " exceed 32-bit indexing");
  require(width <= int64_t{16} * device.limits.maxComputeWorkGroupCount[0], "vulkan min-RNN: width ", width,
          " needs more GEMM workgroups than the device allows");
  detail::check_linear_scan(device, steps, batch * hidden);
}

// A device buffer of exactly `count` floats, kept between calls of the same
// size; a replaced buffer stays alive until the work recorded with it has run.
std::shared_ptr<Buffer> scratch(Device& device, Stream& stream, std::shared_ptr<Buffer>& slot, int64_t count) {
  if (!slot || static_cast<int64_t>(slot->size()) != count) slot = std::make_shared<Buffer>(device, count);
  detail::retain(stream, slot);
  return slot;
}

// One (row, unit) per invocation of a gates shader, `count` = rows·H of
// them, over a 2-D grid of workgroups.
void record_gates(Stream& stream, const char* shader, uint32_t written_bindings, int64_t gates,
                  std::span<const Buffer* const> buffers, int64_t count, int64_t hidden) {
  Device::Impl& d = stream.device().impl();
  struct Push {
    uint32_t count, hidden;
  };
  const Push push{static_cast<uint32_t>(count), static_cast<uint32_t>(hidden)};
  detail::Kernel& kernel =
      d.kernel(shader, static_cast<uint32_t>(buffers.size()), written_bindings, sizeof(Push));
  const uint32_t spec[] = {kElementwiseGroup, static_cast<uint32_t>(gates)};
  const int64_t groups = (count + kElementwiseGroup - 1) / kElementwiseGroup;
  const int64_t groups_x = std::min<int64_t>(groups, d.limits.maxComputeWorkGroupCount[0]);
  detail::dispatch(stream, kernel, spec, buffers, &push, static_cast<uint32_t>(groups_x),
                   static_cast<uint32_t>((groups + groups_x - 1) / groups_x), 1);
}

std::shared_ptr<Buffer> upload(Device& device, ConstView view) {
  if (view.empty()) return nullptr;
  auto buffer = std::make_shared<Buffer>(device, view.numel());
  buffer->upload({view.data(), static_cast<std::size_t>(view.numel())});
  return buffer;
}

std::shared_ptr<Buffer> output_for(Device& device, View view) {
  return view.empty() ? nullptr : std::make_shared<Buffer>(device, view.numel());
}

void download(const std::shared_ptr<Buffer>& buffer, View view) {
  if (buffer) buffer->download({view.data(), static_cast<std::size_t>(view.numel())});
}

}  // namespace

MinRnnLayer::MinRnnLayer(Device& device, MinRnnKind kind, int64_t input_size, int64_t hidden_size)
    : device_(device),
      kind_(kind),
      input_size_(input_size),
      hidden_size_(hidden_size),
      impl_(std::make_unique<Impl>()) {
  require(input_size > 0, "min-RNN input_size must be positive, got ", input_size);
  require(hidden_size > 0, "min-RNN hidden_size must be positive, got ", hidden_size);
  impl_->one = std::make_shared<Buffer>(device, 1);
  const float one = 1.0f;
  impl_->one->upload({&one, 1});
}

MinRnnLayer::~MinRnnLayer() = default;

void MinRnnLayer::set_parameters(const MinRnnParams& params) {
  seqk::detail::check_min_rnn_params(params, {kind_, input_size_, hidden_size_});
  // Fresh buffers: work recorded earlier keeps the old ones alive.
  impl_->w = upload(device_, params.w);
  impl_->bias = upload(device_, params.b);
}

void MinRnnLayer::record_forward(Stream& stream, const MinRnnForwardBuffers& args) {
  record_forward_impl(stream, args, nullptr);
}

void MinRnnLayer::record_forward(Stream& stream, const MinRnnForwardBuffers& args, MinRnnSaved& saved) {
  record_forward_impl(stream, args, &saved);
}

void MinRnnLayer::record_forward_impl(Stream& stream, const MinRnnForwardBuffers& args, MinRnnSaved* saved) {
  Impl& p = *impl_;
  require(p.w != nullptr, "min-RNN parameters are not set (call set_parameters first)");
  require(&stream.device() == &device_, "vulkan min-RNN: the stream belongs to another device");
  const int64_t steps = args.steps, batch = args.batch, d = input_size_, h = hidden_size_, width = gates() * h;
  Device::Impl& dev = device_.impl();
  check_sizes(dev, steps, batch, d, width, h);
  const int64_t rows = steps * batch;
  check_buffers(dev, "vulkan min-RNN: ", {{"x", args.x, rows * d, false, false},
                      {"h0", args.h0, batch * h, true, false},
                      {"y", args.y, rows * h, false, true}});

  // A training forward gets fresh buffers for what it keeps: an earlier
  // MinRnnSaved may still be waiting for its backward.
  auto fresh = [&](int64_t count) {
    auto buffer = std::make_shared<Buffer>(device_, count);
    detail::retain(stream, buffer);
    return buffer;
  };
  const std::shared_ptr<Buffer> pre =
      saved ? fresh(rows * width) : scratch(device_, stream, p.inference_pre, rows * width);
  const std::shared_ptr<Buffer> coefficients =
      saved ? fresh(rows * h) : scratch(device_, stream, p.inference_coefficients, rows * h);
  const std::shared_ptr<Buffer> inputs = scratch(device_, stream, p.inputs, rows * h);
  detail::retain(stream, p.w);
  detail::retain(stream, p.bias);

  detail::gemm_strided(stream, {args.x, 0, d, 1}, {p.w.get(), 0, d, 1}, *pre, 0, width, rows, width, d,
                       p.bias.get(), false);
  const Buffer* gate_buffers[] = {pre.get(), coefficients.get(), inputs.get()};
  record_gates(stream, "min_rnn_gates_forward", 0b110, gates(), gate_buffers, rows * h, h);
  linear_scan(stream, *coefficients, *inputs, *args.y, steps, batch * h, args.h0);

  if (saved) {
    saved->kind_ = kind_;
    saved->steps_ = steps;
    saved->batch_ = batch;
    saved->input_size_ = d;
    saved->hidden_size_ = h;
    saved->pre_ = pre;
    saved->coefficients_ = coefficients;
  }
}

void MinRnnLayer::record_backward(Stream& stream, const MinRnnBackwardBuffers& args, const MinRnnSaved& saved,
                                  const MinRnnGradBuffers& grads) {
  Impl& p = *impl_;
  require(p.w != nullptr, "min-RNN parameters are not set (call set_parameters first)");
  require(&stream.device() == &device_, "vulkan min-RNN: the stream belongs to another device");
  const int64_t steps = args.steps, batch = args.batch, d = input_size_, h = hidden_size_, width = gates() * h;
  require(saved.pre_ != nullptr, "saved is empty: run the training forward (with a MinRnnSaved) first");
  require(saved.steps_ == steps && saved.batch_ == batch, "saved comes from a forward with T = ", saved.steps_,
          ", B = ", saved.batch_, ", but the arguments have T = ", steps, ", B = ", batch);
  require(saved.kind_ == kind_ && saved.input_size_ == d && saved.hidden_size_ == h, "saved comes from a ",
          kind_name(saved.kind_), " layer with D = ", saved.input_size_, ", H = ", saved.hidden_size_,
          ", but this is a ", kind_name(kind_), " layer with D = ", d, ", H = ", h);
  Device::Impl& dev = device_.impl();
  require(saved.pre_->impl().device == &dev, "vulkan min-RNN: saved belongs to another device");
  check_sizes(dev, steps, batch, d, width, h);
  const int64_t rows = steps * batch;
  check_buffers(dev, "vulkan min-RNN: ", {{"x", args.x, rows * d, false, false},
                      {"h0", args.h0, batch * h, true, false},
                      {"y", args.y, rows * h, false, false},
                      {"dy", args.dy, rows * h, false, false},
                      {"dx", args.dx, rows * d, true, true},
                      {"dh0", args.dh0, batch * h, true, true},
                      {"grads.w", grads.w, width * d, false, true},
                      {"grads.b", grads.b, width, false, true}});

  const std::shared_ptr<Buffer> d_coefficients = scratch(device_, stream, p.d_coefficients, rows * h);
  const std::shared_ptr<Buffer> d_inputs = scratch(device_, stream, p.d_inputs, rows * h);
  const std::shared_ptr<Buffer> d_pre = scratch(device_, stream, p.d_pre, rows * width);
  for (const auto& kept : {p.w, p.one, saved.pre_, saved.coefficients_}) detail::retain(stream, kept);

  linear_scan_backward(stream, *saved.coefficients_, args.h0, *args.y, *args.dy, *d_coefficients, *d_inputs, args.dh0,
                       steps, batch * h);
  const Buffer* gate_buffers[] = {saved.pre_.get(), d_coefficients.get(), d_inputs.get(), d_pre.get()};
  record_gates(stream, "min_rnn_gates_backward", 0b1000, gates(), gate_buffers, rows * h, h);

  // dW = d_preᵀ·x, db = 1ᵀ·d_pre (as a (1, G·H) row, so the long sum over
  // T·B runs in G·H / 16 workgroups), dx = d_pre·W.
  const detail::Operand d_pre_t{d_pre.get(), 0, 1, width};  // (G·H, T·B)
  detail::gemm_strided(stream, d_pre_t, {args.x, 0, 1, d}, *grads.w, 0, d, width, d, rows, nullptr, false);
  detail::gemm_strided(stream, {p.one.get(), 0, 0, 0}, d_pre_t, *grads.b, 0, width, 1, width, rows, nullptr, false,
                       {16, 2, 16});
  if (args.dx) {
    detail::gemm_strided(stream, {d_pre.get(), 0, width, 1}, {p.w.get(), 0, 1, d}, *args.dx, 0, d, rows, d, width,
                         nullptr, false);
  }
}

void MinRnnLayer::forward(ConstView x, ConstView h0, View y, MinRnnSaved* saved) {
  require(impl_->w != nullptr, "min-RNN parameters are not set (call set_parameters first)");
  const auto [steps, batch] = seqk::detail::check_min_rnn_forward(x, h0, y, {kind_, input_size_, hidden_size_});
  const auto x_buffer = upload(device_, x), h0_buffer = upload(device_, h0);
  const auto y_buffer = output_for(device_, y);
  Stream stream(device_);
  record_forward_impl(stream, {steps, batch, x_buffer.get(), h0_buffer.get(), y_buffer.get()}, saved);
  stream.submit();
  download(y_buffer, y);
}

void MinRnnLayer::backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinRnnSaved& saved, View dx,
                           View dh0, const MinRnnGrads& grads) {
  require(impl_->w != nullptr, "min-RNN parameters are not set (call set_parameters first)");
  const auto [steps, batch] =
      seqk::detail::check_min_rnn_backward(x, h0, y, dy, dx, dh0, grads, {kind_, input_size_, hidden_size_});
  const auto x_buffer = upload(device_, x), h0_buffer = upload(device_, h0), y_buffer = upload(device_, y);
  const auto dy_buffer = upload(device_, dy);
  const auto dx_buffer = output_for(device_, dx), dh0_buffer = output_for(device_, dh0);
  const auto dw_buffer = output_for(device_, grads.w), db_buffer = output_for(device_, grads.b);
  Stream stream(device_);
  record_backward(stream,
                  {steps, batch, x_buffer.get(), h0_buffer.get(), y_buffer.get(), dy_buffer.get(), dx_buffer.get(),
                   dh0_buffer.get()},
                  saved, {dw_buffer.get(), db_buffer.get()});
  stream.submit();
  for (const auto& [buffer, view] : {std::pair{dx_buffer, dx}, {dh0_buffer, dh0}, {dw_buffer, grads.w},
                                     {db_buffer, grads.b}})
    download(buffer, view);
}

}  // namespace seqk::vk
