// LstmLayer: argument checks, the PyTorch <-> blocked parameter layouts, the
// sequence-wide GEMMs (input projection; weight, input and initial-state
// gradients), and the hand-off to the per-target recurrence.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/lstm_steps.h"
#include "kernels/lstm_args.h"
#include "seqk/lstm.h"

namespace seqk {
namespace {

using detail::kGatesPerUnit;

// Copies a (B, H) state into (B, Hp) with zero padding (zeros if absent).
AlignedVector padded_state(const ConstView& state, int64_t batch, int64_t hidden, int64_t padded) {
  AlignedVector out(static_cast<size_t>(batch * padded), 0.0f);
  if (!state.empty())
    for (int64_t b = 0; b < batch; ++b)
      std::memcpy(&out[b * padded], state.data() + b * hidden, hidden * sizeof(float));
  return out;
}

void unpad_state(const float* padded_state, int64_t batch, int64_t hidden, int64_t padded, float* out) {
  for (int64_t b = 0; b < batch; ++b) std::memcpy(out + b * hidden, padded_state + b * padded, hidden * sizeof(float));
}

}  // namespace

LstmLayer::LstmLayer(int64_t input_size, int64_t hidden_size)
    : input_size_(input_size),
      hidden_size_(hidden_size),
      padded_hidden_((hidden_size + kPanelWidth - 1) / kPanelWidth * kPanelWidth) {
  require(input_size > 0, "LSTM input_size must be positive, got ", input_size);
  require(hidden_size > 0, "LSTM hidden_size must be positive, got ", hidden_size);
  // Blocked row r = block u, gate q, unit j  <-  PyTorch row q·H + 16u + j.
  gate_order_.resize(static_cast<size_t>(kGatesPerUnit * padded_hidden_));
  for (int64_t r = 0; r < kGatesPerUnit * padded_hidden_; ++r) {
    const int64_t block = r / detail::kBlockGateCols, gate = r % detail::kBlockGateCols / kPanelWidth;
    const int64_t unit = block * kPanelWidth + r % kPanelWidth;
    gate_order_[static_cast<size_t>(r)] = unit < hidden_size ? gate * hidden_size + unit : -1;
  }
}

int64_t LstmLayer::parameter_count() const {
  return kGatesPerUnit * (hidden_size_ * input_size_ + hidden_size_ * hidden_size_ + 2 * hidden_size_);
}

void LstmLayer::set_parameters(const LstmParams& params) {
  detail::check_lstm_params(params, {input_size_, hidden_size_});

  const int64_t rows = kGatesPerUnit * padded_hidden_;
  w_ih_packed_ = PackedMatrix(params.w_ih, gate_order_);
  w_hh_packed_ = PackedMatrix(params.w_hh, gate_order_);
  // Backward multiplies by the blocked weights from the other side.
  auto blocked = [&](const ConstView& w) {
    const int64_t cols = w.dim(1);
    AlignedVector out(static_cast<size_t>(rows * cols), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      if (const int64_t source = gate_order_[static_cast<size_t>(r)]; source >= 0)
        std::memcpy(&out[r * cols], w.data() + source * cols, cols * sizeof(float));
    return out;
  };
  const AlignedVector w_ih_blocked = blocked(params.w_ih), w_hh_blocked = blocked(params.w_hh);
  w_ih_t_packed_ = PackedMatrix(ConstView(w_ih_blocked.data(), {rows, input_size_}).transposed());
  w_hh_t_packed_ = PackedMatrix(ConstView(w_hh_blocked.data(), {rows, hidden_size_}).transposed());
  bias_.assign(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    if (const int64_t source = gate_order_[static_cast<size_t>(r)]; source >= 0)
      bias_[r] = params.b_ih.data()[source] + params.b_hh.data()[source];
  has_parameters_ = true;
}

void LstmLayer::set_workspace_limit(int64_t bytes) {
  require(bytes > 0, "LSTM workspace limit must be positive, got ", bytes);
  workspace_limit_ = bytes;
}

int64_t LstmLayer::chunk_steps(int64_t steps, int64_t batch) const {
  const int64_t step_bytes = batch * kGatesPerUnit * padded_hidden_ * int64_t{sizeof(float)};
  return std::clamp<int64_t>(workspace_limit_ / step_bytes, 1, steps);
}

void LstmLayer::check_forward(const LstmForwardArgs& args) const {
  require(has_parameters_, "LSTM parameters are not set (call set_parameters first)");
  detail::check_lstm_forward(args, {input_size_, hidden_size_});
}

void LstmLayer::forward(const LstmForwardArgs& args, ThreadPool* pool) const {
  check_forward(args);
  run_forward(args, nullptr, nullptr, pool);
}

void LstmLayer::forward(const LstmForwardArgs& args, LstmSaved& saved, ThreadPool* pool) const {
  check_forward(args);
  saved.steps_ = args.x.dim(0);
  saved.batch_ = args.x.dim(1);
  saved.input_size_ = input_size_;
  saved.hidden_size_ = hidden_size_;
  saved.gates_.resize(static_cast<size_t>(saved.steps_ * saved.batch_ * kGatesPerUnit * padded_hidden_));
  saved.cells_.resize(static_cast<size_t>(saved.steps_ * saved.batch_ * padded_hidden_));
  run_forward(args, saved.gates_.data(), saved.cells_.data(), pool);
}

void LstmLayer::run_forward(const LstmForwardArgs& args, float* saved_gates, float* saved_cells,
                            ThreadPool* pool) const {
  pool = pool ? pool : &ThreadPool::global();
  const int64_t steps = args.x.dim(0), batch = args.x.dim(1);
  const int64_t gate_cols = kGatesPerUnit * padded_hidden_, step_gates = batch * gate_cols;
  // The input projection runs a chunk of steps ahead of the recurrence, so
  // the gates the recurrence accumulates into are still in cache, and
  // inference needs only a chunk of scratch, not (T, B, 4H).
  const int64_t chunk = chunk_steps(steps, batch);
  AlignedVector scratch_gates(saved_gates ? 0 : static_cast<size_t>(chunk * step_gates));

  AlignedVector c0 = padded_state(args.c0, batch, hidden_size_, padded_hidden_);
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t n = std::min(chunk, steps - t0);
    float* gates = saved_gates ? saved_gates + t0 * step_gates : scratch_gates.data();
    gemm(ConstView(args.x.data() + t0 * batch * input_size_, {n * batch, input_size_}), w_ih_packed_,
         View(gates, {n * batch, gate_cols}), {.bias = bias_.data()}, pool);
    const float* h_prev = t0 == 0 ? args.h0.data() : args.y.data() + (t0 - 1) * batch * hidden_size_;
    const float* c_prev = !saved_cells || t0 == 0 ? c0.data() : saved_cells + (t0 - 1) * batch * padded_hidden_;
    float* cells = saved_cells ? saved_cells + t0 * batch * padded_hidden_ : c0.data();
    detail::run_lstm_forward_steps({n, batch, hidden_size_, padded_hidden_, &w_hh_packed_, gates,
                                    saved_gates != nullptr, h_prev, c_prev, cells,
                                    args.y.data() + t0 * batch * hidden_size_, pool});
  }

  const float* last_cells = saved_cells ? saved_cells + (steps - 1) * batch * padded_hidden_ : c0.data();
  if (!args.h_n.empty())
    std::memcpy(args.h_n.data(), args.y.data() + (steps - 1) * batch * hidden_size_,
                batch * hidden_size_ * sizeof(float));
  if (!args.c_n.empty()) unpad_state(last_cells, batch, hidden_size_, padded_hidden_, args.c_n.data());
}

void LstmLayer::backward(const LstmBackwardArgs& args, const LstmSaved& saved, const LstmGrads& grads,
                         ThreadPool* pool) const {
  require(has_parameters_, "LSTM parameters are not set (call set_parameters first)");
  detail::check_lstm_backward(args, grads, {input_size_, hidden_size_}, saved.gates_.empty() ? 0 : saved.steps_,
                              saved.batch_, {saved.input_size_, saved.hidden_size_});
  const int64_t steps = args.x.dim(0), batch = args.x.dim(1);
  const int64_t gate_cols = kGatesPerUnit * padded_hidden_;
  pool = pool ? pool : &ThreadPool::global();

  // From the last chunk of steps to the first: the recurrence over the
  // chunk, then, while its gate gradients are in cache, their share of dx
  // and of the weight gradients. The recurrence of a chunk needs the gate
  // gradients of the step after it, so two chunk buffers alternate.
  const int64_t chunk = chunk_steps(steps, batch), step_gates = batch * gate_cols;
  // [x_t | h_{t-1} | 1]: the column of ones makes the weight-gradient GEMM
  // also sum the gate gradients, i.e. produce the bias gradient.
  const int64_t inputs = input_size_ + hidden_size_ + 1;
  AlignedVector c0 = padded_state(args.c0, batch, hidden_size_, padded_hidden_);
  AlignedVector dh = padded_state(args.dh_n, batch, hidden_size_, padded_hidden_);
  AlignedVector dc = padded_state(args.dc_n, batch, hidden_size_, padded_hidden_);
  AlignedVector dgates[2] = {AlignedVector(static_cast<size_t>(chunk * step_gates)),
                             AlignedVector(static_cast<size_t>(chunk * step_gates))};
  AlignedVector x_h(static_cast<size_t>(chunk * batch * inputs), 1.0f);
  AlignedVector dw(static_cast<size_t>(gate_cols * inputs));  // [dW_ih | dW_hh | db], blocked rows
  const float* dgates_after = nullptr;
  for (int64_t t1 = steps, which = 0; t1 > 0; which ^= 1) {
    const int64_t t0 = std::max<int64_t>(0, t1 - chunk), rows = (t1 - t0) * batch;
    float* dg = dgates[which].data();
    detail::run_lstm_backward_steps(
        {t1 - t0, batch, hidden_size_, padded_hidden_, &w_hh_t_packed_, saved.gates_.data() + t0 * step_gates,
         saved.cells_.data() + t0 * batch * padded_hidden_,
         t0 == 0 ? c0.data() : saved.cells_.data() + (t0 - 1) * batch * padded_hidden_,
         args.dy.data() + t0 * batch * hidden_size_, dgates_after, dh.data(), dc.data(), dg, pool});
    const ConstView dg_view(dg, {rows, gate_cols});

    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = t0 * batch + r;  // (t, b) of the whole sequence
      std::memcpy(&x_h[r * inputs], args.x.data() + row * input_size_, input_size_ * sizeof(float));
      const float* h_prev = row >= batch  ? args.y.data() + (row - batch) * hidden_size_
                            : args.h0.empty() ? nullptr
                                              : args.h0.data() + row * hidden_size_;
      float* h_dst = &x_h[r * inputs + input_size_];
      if (h_prev) std::memcpy(h_dst, h_prev, hidden_size_ * sizeof(float));
      else std::fill(h_dst, h_dst + hidden_size_, 0.0f);
    }
    gemm(dg_view.transposed(), PackedMatrix(ConstView(x_h.data(), {rows, inputs}).transposed()),
         View(dw.data(), {gate_cols, inputs}), {.accumulate = t1 != steps}, pool);
    if (!args.dx.empty())
      gemm(dg_view, w_ih_t_packed_, View(args.dx.data() + t0 * batch * input_size_, {rows, input_size_}), {}, pool);

    dgates_after = dg;
    t1 = t0;
  }

  for (int64_t r = 0; r < gate_cols; ++r) {
    const int64_t source = gate_order_[static_cast<size_t>(r)];
    if (source < 0) continue;
    std::memcpy(grads.w_ih.data() + source * input_size_, &dw[r * inputs], input_size_ * sizeof(float));
    std::memcpy(grads.w_hh.data() + source * hidden_size_, &dw[r * inputs + input_size_],
                hidden_size_ * sizeof(float));
    grads.b_ih.data()[source] = grads.b_hh.data()[source] = dw[r * inputs + inputs - 1];
  }

  // dgates_after now holds the gate gradients of step 0.
  if (!args.dh0.empty()) gemm(ConstView(dgates_after, {batch, gate_cols}), w_hh_t_packed_, args.dh0, {}, pool);
  if (!args.dc0.empty()) unpad_state(dc.data(), batch, hidden_size_, padded_hidden_, args.dc0.data());
}

}  // namespace seqk
