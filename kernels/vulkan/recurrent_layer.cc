// The recurrent layers on Vulkan: parameters and scratch on the device, the
// sequence-wide GEMMs (input projection; dx, weight and bias gradients) on
// shaders/gemm.comp, and one fused dispatch per time step
// (shaders/recurrent_forward_step.comp, shaders/recurrent_backward_step.comp,
// specialised on the cell).
#include "seqk/vulkan_recurrent.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

#include "kernels/recurrent_args.h"
#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {

using detail::BufferArg;
using detail::check_buffers;

using detail::Operand;

namespace {

// Workgroup shape of a step kernel (its specialization constants): `units`
// hidden units x `batch` sequences per workgroup; each dot product of length
// `depth` is split over `split` invocations (a power of two). An invocation
// keeps sums_per_sequence x batch sums: the forward the gates of a unit (4
// slots, 1 for the RNN), the backward four units.
struct StepShape {
  uint32_t threads, units, split, batch;
};

// Enough workgroups to fill a large GPU (a guess: no Vulkan query gives the
// number of compute units) before making each invocation's loop longer.
constexpr int64_t kTargetWorkgroups = 128;

// units_per_row: hidden units per row of `split` invocations (1 forward, 4 backward).
StepShape step_shape(const Device::Impl& d, int64_t hidden, int64_t depth, uint32_t units_per_row,
                     uint64_t sums_per_sequence, int64_t batch, const char* kernel) {
  const uint32_t threads =
      std::bit_floor(std::min({256u, d.info.max_workgroup_invocations, d.limits.maxComputeWorkGroupSize[0]}));
  uint32_t batch_tile = static_cast<uint32_t>(std::min<uint64_t>(8, std::bit_ceil(static_cast<uint64_t>(batch))));
  const uint32_t max_split = std::min<uint32_t>(128, threads);
  // Shared memory holds every invocation's sums, plus a word of padding per slice.
  auto shared_bytes = [&] { return (uint64_t{threads} * sums_per_sequence * batch_tile + max_split) * sizeof(float); };
  while (batch_tile > 1 && shared_bytes() > d.info.max_shared_memory) batch_tile /= 2;
  auto clamp_split = [&](int64_t s) {
    return static_cast<uint32_t>(
        std::clamp<int64_t>(std::bit_floor(static_cast<uint64_t>(std::max<int64_t>(s, 1))), 4, max_split));
  };
  uint32_t split = clamp_split(depth / (4 * batch_tile));
  auto groups = [&] {
    const int64_t units = threads / split * units_per_row;
    return (hidden + units - 1) / units * ((batch + batch_tile - 1) / batch_tile);
  };
  while (groups() < kTargetWorkgroups) {
    if (split < max_split && split * 4 <= depth) {
      split *= 2;
    } else if (batch_tile > 1) {
      batch_tile /= 2;
    } else {
      break;
    }
  }
  const StepShape shape{threads, threads / split * units_per_row, split, batch_tile};
  require(shared_bytes() <= d.info.max_shared_memory,
          "vulkan recurrent layer: the ", kernel, " workgroup (", threads, " invocations) does not fit the device");
  // The loops of the step shaders, per invocation (see their headers).
  const uint64_t sums = sums_per_sequence * batch_tile;
  const uint64_t dot = (static_cast<uint64_t>(depth) + split - 1) / split * (6 + batch_tile * 5);
  const uint64_t reduce = sums + split + std::bit_width(split);
  const uint64_t cells = (uint64_t{shape.units} * batch_tile + threads - 1) / threads * 12;
  require(dot + reduce + cells < detail::loop_budget(d), "vulkan recurrent layer: hidden size too large for the ", kernel,
          " kernel's loop budget (", dot + reduce + cells, " iterations per invocation)");
  return shape;
}

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

// The shaders index with 32 bits: T·B·width elements must fit (checked by
// division, so the product cannot overflow first).
void check_indexing(int64_t steps, int64_t batch, int64_t width) {
  constexpr int64_t kMax = std::numeric_limits<uint32_t>::max();
  require(steps <= kMax / batch && steps * batch <= kMax / width, "vulkan recurrent layer: T = ", steps, ", B = ", batch,
          " and width ", width, " exceed 32-bit indexing");
}

// The step kernel's workgroup grid within the device's limits.
void check_grid(const Device::Impl& d, int64_t hidden, int64_t batch, const StepShape& shape) {
  const int64_t groups_x = (hidden + shape.units - 1) / shape.units, groups_y = (batch + shape.batch - 1) / shape.batch;
  require(groups_x <= d.limits.maxComputeWorkGroupCount[0] && groups_y <= d.limits.maxComputeWorkGroupCount[1],
          "vulkan recurrent layer: H = ", hidden, ", B = ", batch, " need ", groups_x, " x ", groups_y,
          " workgroups per step, more than the device allows");
}

// Where each step's rows are: rows [offsets[t], offsets[t+1]) of x, y and
// the per-step buffers; a step's sequences are a prefix of the step
// before's. Full-length and padded batches have B rows per step; packed ones
// (batch_sizes, as on the CPU) the sequences still running.
struct StepRows {
  std::vector<int64_t> offsets;  // T + 1
  bool packed = false;
  int64_t rows() const { return offsets.back(); }
  int64_t batch(int64_t t) const { return offsets[t + 1] - offsets[t]; }
  int64_t next_batch(int64_t t) const { return t + 1 < static_cast<int64_t>(offsets.size()) - 1 ? batch(t + 1) : 0; }
};

StepRows step_rows(int64_t steps, int64_t batch, std::span<const int64_t> lengths, std::span<const int64_t> batch_sizes) {
  return {detail::step_offsets(steps, batch, lengths, batch_sizes), !batch_sizes.empty()};
}

// Padded sequences' lengths, checked (B of them, each 1..T) and uploaded as
// floats (exact below 2^24) for the step shaders; null when there are none.
std::shared_ptr<Buffer> upload_lengths(Device& device, Stream& stream, std::span<const int64_t> lengths,
                                       int64_t steps, int64_t batch) {
  if (lengths.empty()) return nullptr;
  require(static_cast<int64_t>(lengths.size()) == batch, "lengths has ", lengths.size(), " entries for B = ", batch,
          " sequences");
  std::vector<float> values(lengths.size());
  for (std::size_t b = 0; b < lengths.size(); ++b) {
    require(lengths[b] >= 1 && lengths[b] <= steps, "lengths[", b, "] = ", lengths[b],
            ": a length must be between 1 and T = ", steps);
    values[b] = static_cast<float>(lengths[b]);
  }
  auto buffer = std::make_shared<Buffer>(device, values.size());
  buffer->upload(values);
  detail::retain(stream, buffer);
  return buffer;
}

// A device buffer of at least `count` floats, kept between calls; a
// replaced buffer stays alive until the work recorded with it has run.
std::shared_ptr<Buffer> scratch(Device& device, Stream& stream, std::shared_ptr<Buffer>& slot, int64_t count) {
  if (!slot || static_cast<int64_t>(slot->size()) < count) slot = std::make_shared<Buffer>(device, count);
  detail::retain(stream, slot);
  return slot;
}

std::shared_ptr<Buffer> upload(Device& device, const ConstView& view) {
  auto buffer = std::make_shared<Buffer>(device, view.numel());
  buffer->upload({view.data(), static_cast<std::size_t>(view.numel())});
  return buffer;
}

std::shared_ptr<Buffer> upload_optional(Device& device, const ConstView& view) {
  return view.empty() ? nullptr : upload(device, view);
}

std::shared_ptr<Buffer> output_optional(Device& device, const View& view) {
  return view.empty() ? nullptr : std::make_shared<Buffer>(device, view.numel());
}

void download_optional(const std::shared_ptr<Buffer>& buffer, const View& view) {
  if (buffer) buffer->download({view.data(), static_cast<std::size_t>(view.numel())});
}

}  // namespace

struct RecurrentLayer::Impl {
  // Parameters: PyTorch layout, plus the transposes backward reads row-wise,
  // the bias the input projection adds (b_ih + b_hh; the GRU's b_ih alone)
  // and the GRU's b_hh. shared_ptr: recorded work keeps them alive.
  std::shared_ptr<Buffer> w_ih, w_hh, w_ih_t, w_hh_t, bias, hidden_bias, one;
  // Scratch: inference gates (T, B, G·H), the LSTM's cell state (B, H),
  // backward's gate gradients (T, B, G·H; the GRU's hidden side too) and
  // the carried gradient (B, H).
  std::shared_ptr<Buffer> pre, cell_state, dgates, dgates_hidden, carry;
};

namespace {

// The cell as the step shaders' CELL specialization constant.
uint32_t cell_constant(CellKind cell) {
  switch (cell) {
    case CellKind::kLstm: return 0;
    case CellKind::kGru: return 1;
    case CellKind::kRnnTanh: return 2;
    case CellKind::kRnnRelu: return 3;
  }
  return 0;
}

}  // namespace

RecurrentLayer::RecurrentLayer(Device& device, CellKind cell, int64_t input_size, int64_t hidden_size)
    : device_(device), cell_(cell), input_size_(input_size), hidden_size_(hidden_size), impl_(std::make_unique<Impl>()) {
  require(input_size > 0, to_string(cell), " input_size must be positive, got ", input_size);
  require(hidden_size > 0, to_string(cell), " hidden_size must be positive, got ", hidden_size);
  impl_->one = std::make_shared<Buffer>(device, 1);
  const float one = 1.0f;
  impl_->one->upload({&one, 1});
}

RecurrentLayer::~RecurrentLayer() = default;

void RecurrentLayer::set_parameters(const RecurrentParams& params) {
  seqk::detail::check_recurrent_params(params, {cell_, input_size_, hidden_size_});
  const int64_t gates = gates_per_unit(cell_) * hidden_size_, d = input_size_, h = hidden_size_;
  std::vector<float> w_ih_t(static_cast<std::size_t>(gates * d)), w_hh_t(static_cast<std::size_t>(gates * h));
  for (int64_t r = 0; r < gates; ++r) {
    for (int64_t k = 0; k < d; ++k) w_ih_t[k * gates + r] = params.w_ih.data()[r * d + k];
    for (int64_t k = 0; k < h; ++k) w_hh_t[k * gates + r] = params.w_hh.data()[r * h + k];
  }
  const bool gru = cell_ == CellKind::kGru;
  std::vector<float> bias(static_cast<std::size_t>(gates));
  for (int64_t r = 0; r < gates; ++r) bias[r] = params.b_ih.data()[r] + (gru ? 0.0f : params.b_hh.data()[r]);

  // Fresh buffers (work recorded earlier keeps the old ones alive).
  auto make = [&](std::span<const float> values) {
    auto buffer = std::make_shared<Buffer>(device_, values.size());
    buffer->upload(values);
    return buffer;
  };
  Impl next = *impl_;
  next.w_ih = make({params.w_ih.data(), static_cast<std::size_t>(gates * d)});
  next.w_hh = make({params.w_hh.data(), static_cast<std::size_t>(gates * h)});
  next.w_ih_t = make(w_ih_t);
  next.w_hh_t = make(w_hh_t);
  next.bias = make(bias);
  next.hidden_bias = gru ? make({params.b_hh.data(), static_cast<std::size_t>(gates)}) : nullptr;
  *impl_ = std::move(next);
}

void RecurrentLayer::record_forward(Stream& stream, const RecurrentForwardBuffers& args) {
  record_forward_impl(stream, args, nullptr);
}

void RecurrentLayer::record_forward(Stream& stream, const RecurrentForwardBuffers& args, RecurrentSaved& saved) {
  record_forward_impl(stream, args, &saved);
}

void RecurrentLayer::record_forward_impl(Stream& stream, const RecurrentForwardBuffers& args, RecurrentSaved* saved) {
  Impl& p = *impl_;
  require(p.w_ih != nullptr, to_string(cell_), " parameters are not set (call set_parameters first)");
  require(&stream.device() == &device_, "vulkan recurrent layer: the stream belongs to another device");
  const bool lstm = cell_ == CellKind::kLstm, gru = cell_ == CellKind::kGru;
  const int64_t steps = args.steps, batch = args.batch, d = input_size_, h = hidden_size_;
  const int64_t gates = gates_per_unit(cell_) * h;
  const StepRows layout = step_rows(steps, batch, args.lengths, args.batch_sizes);
  const int64_t rows = layout.rows();
  require(lstm || (args.c0 == nullptr && args.c_n == nullptr), "c0 / c_n given, but a ", to_string(cell_),
          " layer has no cell state (only the LSTM has)");
  check_indexing(rows, 1, std::max(gates, d));
  check_buffers(device_.impl(), "vulkan recurrent layer: ",
                {{"x", args.x, rows * d, false, false},
                 {"y", args.y, rows * h, false, true},
                 {"h0", args.h0, batch * h, true, false},
                 {"c0", args.c0, batch * h, true, false},
                 {"h_n", args.h_n, batch * h, true, true},
                 {"c_n", args.c_n, batch * h, true, true}});
  require(steps < (int64_t{1} << 24), "vulkan recurrent layer: T = ", steps,
          " is too long (the shaders compare steps as floats)");
  const std::shared_ptr<Buffer> lengths = upload_lengths(device_, stream, args.lengths, steps, batch);
  Device::Impl& dev = device_.impl();
  const uint64_t slots = gates_per_unit(cell_) == 1 ? 1 : 4;
  const StepShape shape = step_shape(dev, h, h, 1, slots, batch, "forward step");
  check_grid(dev, h, batch, shape);

  // Training writes the activated gates over the pre-activations, in place,
  // and keeps per step the LSTM's c_t or the GRU's hidden side of n;
  // inference keeps the LSTM's one c. `saved` changes only once everything
  // is recorded.
  const bool per_step = lstm || gru;
  std::shared_ptr<Buffer> pre, cells;
  if (saved) {
    const bool reuse = saved->gates_ && saved->gates_->impl().device == &dev && saved->cell_ == cell_ &&
                       static_cast<int64_t>(saved->gates_->size()) == rows * gates &&
                       (!per_step || static_cast<int64_t>(saved->cells_->size()) == rows * h);
    pre = reuse ? saved->gates_ : std::make_shared<Buffer>(device_, rows * gates);
    if (per_step) cells = reuse ? saved->cells_ : std::make_shared<Buffer>(device_, rows * h);
    detail::retain(stream, pre);
    if (cells) detail::retain(stream, cells);
  } else {
    pre = scratch(device_, stream, p.pre, rows * gates);
    if (lstm && !args.c_n) cells = scratch(device_, stream, p.cell_state, batch * h);
  }
  const Buffer* unused = p.w_hh.get();  // bound where a binding is not read
  Buffer& cell_out = cells ? *cells : args.c_n ? *args.c_n : *pre;  // GRU inference, RNN: never written
  // Sequences that end at different steps leave their last states in
  // h_n / c_n as they go (where wanted; else in a scratch nobody reads).
  const bool uneven = lengths || layout.packed;
  std::shared_ptr<Buffer> last_scratch = uneven && (!args.h_n || (lstm && !args.c_n))
                                             ? std::make_shared<Buffer>(device_, batch * h)
                                             : nullptr;
  if (last_scratch) detail::retain(stream, last_scratch);
  Buffer* h_last = uneven ? (args.h_n ? args.h_n : last_scratch.get()) : nullptr;
  Buffer* c_last = uneven && lstm ? (args.c_n ? args.c_n : last_scratch.get()) : nullptr;
  for (const auto& param : {p.w_ih, p.w_hh, p.bias}) detail::retain(stream, param);
  if (gru) detail::retain(stream, p.hidden_bias);

  detail::gemm_strided(stream, {args.x, 0, d, 1}, {p.w_ih.get(), 0, d, 1}, *pre, 0, gates, rows, gates, d,
                       p.bias.get(), false);

  struct Push {
    uint32_t hidden, batch;
    uint32_t pre_offset, h_prev_offset, c_prev_offset, y_offset, cells_offset, gates_offset;
    uint32_t flags, step;
  };
  detail::Kernel& kernel = dev.kernel("recurrent_forward_step", 11, 0b11001110000, sizeof(Push));
  const uint32_t spec[] = {shape.threads, shape.units, shape.split, shape.batch, cell_constant(cell_)};
  const auto groups_x = u32((h + shape.units - 1) / shape.units);
  for (int64_t t = 0; t < steps; ++t) {
    const bool first = t == 0;
    const int64_t row = layout.offsets[t], row_before = first ? 0 : layout.offsets[t - 1];
    const Buffer* h_prev = first ? (args.h0 ? args.h0 : unused) : args.y;
    const Buffer* c_prev = lstm && !first ? &cell_out : (args.c0 ? args.c0 : unused);
    const Push push{u32(h),
                    u32(layout.batch(t)),
                    u32(row * gates),
                    u32(row_before * h),
                    u32(first || !saved ? 0 : row_before * h),
                    u32(row * h),
                    u32(saved ? row * h : 0),
                    u32(row * gates),
                    (first && !args.h0 ? 1u : 0u) | (first && !args.c0 ? 2u : 0u) | (saved ? 4u : 0u) |
                        (lengths ? 8u : 0u) | (uneven ? 16u : 0u),
                    u32(t)};
    const Buffer* buffers[] = {p.w_hh.get(),
                               pre.get(),
                               h_prev,
                               c_prev,
                               args.y,
                               &cell_out,
                               pre.get(),
                               gru ? p.hidden_bias.get() : unused,
                               lengths ? lengths.get() : unused,
                               h_last ? h_last : pre.get(),
                               c_last ? c_last : pre.get()};
    const auto groups_y = u32((layout.batch(t) + shape.batch - 1) / shape.batch);
    detail::dispatch(stream, kernel, spec, buffers, &push, groups_x, groups_y, 1);
  }
  if (!uneven) {
    if (args.h_n) detail::copy(stream, *args.y, (steps - 1) * batch * h, *args.h_n, 0, batch * h);
    if (args.c_n && saved) detail::copy(stream, cell_out, (steps - 1) * batch * h, *args.c_n, 0, batch * h);
  }
  if (saved) {
    saved->cell_ = cell_;
    saved->steps_ = steps;
    saved->batch_ = batch;
    saved->input_size_ = d;
    saved->hidden_size_ = h;
    saved->gates_ = pre;
    saved->cells_ = cells;
  }
}

void RecurrentLayer::record_backward(Stream& stream, const RecurrentBackwardBuffers& args, const RecurrentSaved& saved,
                                     const RecurrentGradBuffers& grads) {
  Impl& p = *impl_;
  require(p.w_ih != nullptr, to_string(cell_), " parameters are not set (call set_parameters first)");
  require(&stream.device() == &device_, "vulkan recurrent layer: the stream belongs to another device");
  const bool lstm = cell_ == CellKind::kLstm, gru = cell_ == CellKind::kGru;
  const int64_t steps = args.steps, batch = args.batch, d = input_size_, h = hidden_size_;
  const int64_t gates = gates_per_unit(cell_) * h;
  const StepRows layout = step_rows(steps, batch, args.lengths, args.batch_sizes);
  const int64_t rows = layout.rows();
  require(saved.gates_ != nullptr, "saved is empty: run the training forward (with LstmSaved) first");
  require(saved.steps_ == steps && saved.batch_ == batch, "saved comes from a forward with T = ", saved.steps_,
          ", B = ", saved.batch_, ", but the arguments have T = ", steps, ", B = ", batch);
  require(saved.cell_ == cell_ && saved.input_size_ == d && saved.hidden_size_ == h, "saved comes from a ",
          to_string(saved.cell_), " layer with D = ", saved.input_size_, ", H = ", saved.hidden_size_,
          ", but this is a ", to_string(cell_), " layer with D = ", d, ", H = ", h);
  require(saved.gates_->impl().device == &device_.impl(), "vulkan recurrent layer: saved belongs to another device");
  require(static_cast<int64_t>(saved.gates_->size()) == rows * gates,
          "saved comes from a forward over another layout (padded and packed sequences differ)");
  require(lstm || (args.c0 == nullptr && args.dc_n == nullptr && args.dc0 == nullptr), "c0 / dc_n / dc0 given, but a ",
          to_string(cell_), " layer has no cell state (only the LSTM has)");
  check_indexing(rows, 1, std::max(gates, d));
  check_buffers(device_.impl(), "vulkan recurrent layer: ",
                {{"x", args.x, rows * d, false, false},
                 {"y", args.y, rows * h, false, false},
                 {"h0", args.h0, batch * h, true, false},
                 {"c0", args.c0, batch * h, true, false},
                 {"dy", args.dy, rows * h, false, false},
                 {"dh_n", args.dh_n, batch * h, true, false},
                 {"dc_n", args.dc_n, batch * h, true, false},
                 {"dx", args.dx, rows * d, true, true},
                 {"dh0", args.dh0, batch * h, true, true},
                 {"dc0", args.dc0, batch * h, true, true},
                 {"grads.w_ih", grads.w_ih, gates * d, false, true},
                 {"grads.w_hh", grads.w_hh, gates * h, false, true},
                 {"grads.b_ih", grads.b_ih, gates, false, true},
                 {"grads.b_hh", grads.b_hh, gates, false, true}});
  require(steps < (int64_t{1} << 24), "vulkan recurrent layer: T = ", steps,
          " is too long (the shaders compare steps as floats)");
  const std::shared_ptr<Buffer> lengths = upload_lengths(device_, stream, args.lengths, steps, batch);
  Device::Impl& dev = device_.impl();
  const StepShape shape = step_shape(dev, h, gates, 4, 4, batch, "backward step");
  check_grid(dev, h, batch, shape);

  // The GRU's input and hidden sides of the gate gradients differ (in n).
  const std::shared_ptr<Buffer> dgates = scratch(device_, stream, p.dgates, rows * gates);
  const std::shared_ptr<Buffer> dgates_hidden =
      gru ? scratch(device_, stream, p.dgates_hidden, rows * gates) : dgates;
  // The carried gradient: the LSTM's dc (straight into dc0 where wanted),
  // the GRU's dh·z; the RNN carries nothing but gets a buffer to bind.
  const std::shared_ptr<Buffer> carry_scratch = lstm && args.dc0 ? nullptr : scratch(device_, stream, p.carry, batch * h);
  Buffer& carry = lstm && args.dc0 ? *args.dc0 : *carry_scratch;
  const Buffer* unused = p.w_hh_t.get();
  for (const auto& kept : {p.w_ih_t, p.w_hh_t, p.one, saved.gates_}) detail::retain(stream, kept);
  if (saved.cells_) detail::retain(stream, saved.cells_);
  const Buffer* cells = saved.cells_ ? saved.cells_.get() : unused;

  // The carry at the last step: dc_n, or zero; the scratch may be larger
  // than (B, H): only its start is used.
  if (args.dc_n) {
    detail::copy(stream, *args.dc_n, 0, carry, 0, batch * h);
  } else {
    detail::fill(stream, carry, 0.0f);
  }

  struct Push {
    uint32_t hidden, batch;
    uint32_t dgates_next_offset, dgates_offset, dy_offset, gates_offset, cells_offset, prev_offset;
    uint32_t flags, step, next_batch;
  };
  detail::Kernel& kernel = dev.kernel("recurrent_backward_step", 11, 0b1000010010, sizeof(Push));
  const uint32_t spec[] = {shape.threads, shape.units, shape.split, shape.batch, cell_constant(cell_)};
  const auto groups_x = u32((h + shape.units - 1) / shape.units);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const bool last = t == steps - 1, first = t == 0;
    // The previous state the cell's backward needs: the LSTM's c, the GRU's h.
    const Buffer* initial = lstm ? args.c0 : gru ? args.h0 : nullptr;
    const Buffer* prev = first ? (initial ? initial : unused) : lstm ? cells : gru ? args.y : unused;
    const int64_t row = layout.offsets[t];
    const Push push{u32(h),
                    u32(layout.batch(t)),
                    u32(last ? 0 : layout.offsets[t + 1] * gates),
                    u32(row * gates),
                    u32(row * h),
                    u32(row * gates),
                    u32(row * h),
                    u32(first ? 0 : layout.offsets[t - 1] * h),
                    (last ? 1u : 0u) | (args.dh_n ? 2u : 0u) | (first && !initial ? 4u : 0u) | (lengths ? 8u : 0u),
                    u32(t),
                    u32(layout.next_batch(t))};
    const Buffer* buffers[] = {p.w_hh_t.get(),      dgates.get(), args.dy, args.dh_n ? args.dh_n : unused, &carry,
                               saved.gates_.get(), cells,        prev,    dgates_hidden.get(),            dgates_hidden.get(),
                               lengths ? lengths.get() : unused};
    detail::dispatch(stream, kernel, spec, buffers, &push, groups_x, u32((layout.batch(t) + shape.batch - 1) / shape.batch),
                     1);
  }

  const Operand dg_in{dgates.get(), 0, gates, 1};              // (T·B, G·H)
  const Operand dg_in_t{dgates.get(), 0, 1, gates};            // (G·H, T·B)
  const Operand dg_hid_t{dgates_hidden.get(), 0, 1, gates};    // (G·H, T·B)
  if (args.dh0) {
    // The GRU's h0 also reaches h_1 directly, through z: the carry.
    if (gru) detail::copy(stream, carry, 0, *args.dh0, 0, batch * h);
    detail::gemm_strided(stream, {dgates_hidden.get(), 0, gates, 1}, {p.w_hh_t.get(), 0, gates, 1}, *args.dh0, 0, h,
                         batch, h, gates, nullptr, gru);
  }
  if (args.dx) {
    detail::gemm_strided(stream, dg_in, {p.w_ih_t.get(), 0, gates, 1}, *args.dx, 0, d, rows, d, gates, nullptr, false);
  }
  detail::gemm_strided(stream, dg_in_t, {args.x, 0, 1, d}, *grads.w_ih, 0, d, gates, d, rows, nullptr, false);
  // dW_hh = Σ_t dG_tᵀ·h_{t-1} (hidden side): h_{t-1} is y_{t-1}, and h0 for
  // the first step. Packed, step t's rows pair with a prefix of step t-1's:
  // those rows are gathered into one (N, H) operand first.
  if (layout.packed) {
    const std::shared_ptr<Buffer> h_prev = std::make_shared<Buffer>(device_, rows * h);
    detail::retain(stream, h_prev);
    if (args.h0) {
      detail::copy(stream, *args.h0, 0, *h_prev, 0, batch * h);
    } else {
      detail::fill(stream, *h_prev, 0.0f);
    }
    for (int64_t t = 1; t < steps; ++t) {
      detail::copy(stream, *args.y, layout.offsets[t - 1] * h, *h_prev, layout.offsets[t] * h, layout.batch(t) * h);
    }
    detail::gemm_strided(stream, dg_hid_t, {h_prev.get(), 0, 1, h}, *grads.w_hh, 0, h, gates, h, rows, nullptr, false);
  } else if (steps > 1) {
    detail::gemm_strided(stream, {dgates_hidden.get(), batch * gates, 1, gates}, {args.y, 0, 1, h}, *grads.w_hh, 0, h,
                         gates, h, (steps - 1) * batch, nullptr, false);
  }
  if (!layout.packed && args.h0) {
    detail::gemm_strided(stream, dg_hid_t, {args.h0, 0, 1, h}, *grads.w_hh, 0, h, gates, h, batch, nullptr, steps > 1);
  } else if (!layout.packed && steps == 1) {
    detail::fill(stream, *grads.w_hh, 0.0f);
  }
  // The bias gradients are the gate gradients summed over steps and batch,
  // as (1, G·H) rows: the long K loop then runs in G·H / 16 workgroups.
  detail::gemm_strided(stream, {p.one.get(), 0, 0, 0}, dg_in_t, *grads.b_ih, 0, gates, 1, gates, rows, nullptr,
                       false, {16, 2, 16});
  if (gru) {
    detail::gemm_strided(stream, {p.one.get(), 0, 0, 0}, dg_hid_t, *grads.b_hh, 0, gates, 1, gates, rows, nullptr,
                         false, {16, 2, 16});
  } else {
    detail::copy(stream, *grads.b_ih, 0, *grads.b_hh, 0, gates);
  }
}

void RecurrentLayer::forward(const RecurrentForwardArgs& args) { forward_from_host(args, nullptr); }

void RecurrentLayer::forward(const RecurrentForwardArgs& args, RecurrentSaved& saved) {
  forward_from_host(args, &saved);
}

void RecurrentLayer::forward_from_host(const RecurrentForwardArgs& args, RecurrentSaved* saved) {
  require(impl_->w_ih != nullptr, to_string(cell_), " parameters are not set (call set_parameters first)");
  const seqk::detail::SequenceShape shape = seqk::detail::check_recurrent_forward(args, {cell_, input_size_, hidden_size_});
  const int64_t steps = shape.steps, batch = shape.batch;
  auto x = upload(device_, args.x), h0 = upload_optional(device_, args.h0), c0 = upload_optional(device_, args.c0);
  auto y = std::make_shared<Buffer>(device_, args.y.numel());
  auto h_n = output_optional(device_, args.h_n), c_n = output_optional(device_, args.c_n);
  Stream stream(device_);
  record_forward_impl(
      stream, {steps, batch, x.get(), y.get(), h0.get(), c0.get(), h_n.get(), c_n.get(), args.lengths, args.batch_sizes},
      saved);
  stream.submit();
  download_optional(y, args.y);
  download_optional(h_n, args.h_n);
  download_optional(c_n, args.c_n);
}

void RecurrentLayer::backward(const RecurrentBackwardArgs& args, const RecurrentSaved& saved,
                              const RecurrentGrads& grads) {
  require(impl_->w_ih != nullptr, to_string(cell_), " parameters are not set (call set_parameters first)");
  const seqk::detail::SequenceShape shape =
      seqk::detail::check_recurrent_backward(args, grads, {cell_, input_size_, hidden_size_},
                                             saved.gates_ ? saved.steps_ : 0, saved.batch_,
                                             {saved.cell_, saved.input_size_, saved.hidden_size_});
  const int64_t steps = shape.steps, batch = shape.batch;
  auto x = upload(device_, args.x), y = upload(device_, args.y), dy = upload(device_, args.dy);
  auto h0 = upload_optional(device_, args.h0), c0 = upload_optional(device_, args.c0);
  auto dh_n = upload_optional(device_, args.dh_n), dc_n = upload_optional(device_, args.dc_n);
  auto dx = output_optional(device_, args.dx), dh0 = output_optional(device_, args.dh0);
  auto dc0 = output_optional(device_, args.dc0);
  auto dw_ih = output_optional(device_, grads.w_ih), dw_hh = output_optional(device_, grads.w_hh);
  auto db_ih = output_optional(device_, grads.b_ih), db_hh = output_optional(device_, grads.b_hh);
  Stream stream(device_);
  record_backward(stream,
                  {steps, batch, x.get(), y.get(), h0.get(), c0.get(), dy.get(), dh_n.get(), dc_n.get(), dx.get(),
                   dh0.get(), dc0.get(), args.lengths, args.batch_sizes},
                  saved, {dw_ih.get(), dw_hh.get(), db_ih.get(), db_hh.get()});
  stream.submit();
  for (const auto& [buffer, view] : {std::pair{dx, args.dx}, {dh0, args.dh0}, {dc0, args.dc0}, {dw_ih, grads.w_ih},
                                     {dw_hh, grads.w_hh}, {db_ih, grads.b_ih}, {db_hh, grads.b_hh}})
    download_optional(buffer, view);
}

namespace detail {

std::vector<int64_t> step_offsets(int64_t steps, int64_t batch, std::span<const int64_t> lengths,
                                  std::span<const int64_t> batch_sizes) {
  require(steps > 0 && batch > 0, "vulkan recurrent layer: T and B must be > 0, got T = ", steps, ", B = ", batch);
  require(lengths.empty() || batch_sizes.empty(), "give lengths (padded sequences) or batch_sizes (packed), not both");
  std::vector<int64_t> offsets(1, 0);
  if (batch_sizes.empty()) {
    for (int64_t t = 0; t < steps; ++t) offsets.push_back((t + 1) * batch);
    return offsets;
  }
  require(static_cast<int64_t>(batch_sizes.size()) == steps && batch_sizes[0] == batch, "batch_sizes (",
          batch_sizes.size(), " steps, first ", batch_sizes[0], ") does not match T = ", steps, ", B = ", batch);
  for (int64_t t = 0; t < steps; ++t) {
    require(batch_sizes[t] > 0 && (t == 0 || batch_sizes[t] <= batch_sizes[t - 1]), "batch_sizes[", t, "] = ",
            batch_sizes[t], ": packed sequences must be sorted by length, longest first, each step non-empty");
    offsets.push_back(offsets.back() + batch_sizes[t]);
  }
  return offsets;
}

}  // namespace detail
}  // namespace seqk::vk
