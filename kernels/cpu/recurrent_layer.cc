// RecurrentLayer: argument checks, the PyTorch <-> blocked parameter
// layouts, the sequence-wide GEMMs (input projection; weight, input and
// initial-state gradients), and the hand-off to the per-target recurrence.
#include "seqk/recurrent_layer.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/cpu/gemm_panels.h"
#include "kernels/cpu/recurrent_steps.h"
#include "kernels/recurrent_args.h"

namespace seqk {
namespace {

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

RecurrentLayer::RecurrentLayer(CellKind cell, int64_t input_size, int64_t hidden_size)
    : cell_(cell),
      input_size_(input_size),
      hidden_size_(hidden_size),
      padded_hidden_((hidden_size + kPanelWidth - 1) / kPanelWidth * kPanelWidth) {
  require(input_size > 0, to_string(cell), " input_size must be positive, got ", input_size);
  require(hidden_size > 0, to_string(cell), " hidden_size must be positive, got ", hidden_size);
  // Blocked row r = block u, gate q, unit j  <-  PyTorch row q·H + 16u + j.
  const int64_t block_cols = gates() * kPanelWidth;
  gate_order_.resize(static_cast<size_t>(gates() * padded_hidden_));
  for (int64_t r = 0; r < gates() * padded_hidden_; ++r) {
    const int64_t block = r / block_cols, gate = r % block_cols / kPanelWidth;
    const int64_t unit = block * kPanelWidth + r % kPanelWidth;
    gate_order_[static_cast<size_t>(r)] = unit < hidden_size ? gate * hidden_size + unit : -1;
  }
}

RnnLayer::RnnLayer(int64_t input_size, int64_t hidden_size, CellKind nonlinearity)
    : RecurrentLayer(nonlinearity, input_size, hidden_size) {
  require(nonlinearity == CellKind::kRnnTanh || nonlinearity == CellKind::kRnnRelu,
          "RnnLayer's nonlinearity must be CellKind::kRnnTanh or kRnnRelu, got ", to_string(nonlinearity));
}

int64_t RecurrentLayer::parameter_count() const {
  return gates() * (hidden_size_ * input_size_ + hidden_size_ * hidden_size_ + 2 * hidden_size_);
}

void RecurrentLayer::set_parameters(const RecurrentParams& params) {
  detail::check_recurrent_params(params, {cell_, input_size_, hidden_size_});

  const int64_t rows = gates() * padded_hidden_;
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
  // The GRU adds b_hh on the hidden side (r scales its n part); the other
  // cells add both biases to the input projection.
  const bool separate = cell_ == CellKind::kGru;
  input_bias_.assign(static_cast<size_t>(rows), 0.0f);
  hidden_bias_.assign(separate ? static_cast<size_t>(rows) : 0, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t source = gate_order_[static_cast<size_t>(r)];
    if (source < 0) continue;
    input_bias_[r] = params.b_ih.data()[source] + (separate ? 0.0f : params.b_hh.data()[source]);
    if (separate) hidden_bias_[r] = params.b_hh.data()[source];
  }
  has_parameters_ = true;
}

void RecurrentLayer::set_workspace_limit(int64_t bytes) {
  require(bytes > 0, "workspace limit must be positive, got ", bytes);
  workspace_limit_ = bytes;
}

int64_t RecurrentLayer::chunk_steps(int64_t steps, int64_t batch) const {
  const int64_t step_bytes = batch * gates() * padded_hidden_ * int64_t{sizeof(float)};
  const int64_t chunk = std::clamp<int64_t>(workspace_limit_ / step_bytes, 1, steps);
  // The backward's weight-gradient GEMMs take a chunk's rows as their depth:
  // whole depth blocks keep them on the specialised kernels (a GRU at B=64,
  // H=512 would otherwise take 21 steps, 1344 rows: a generic 320-deep block).
  const int64_t block_steps = kGemmDepthBlock / std::gcd(batch, kGemmDepthBlock);
  return chunk < steps && chunk >= block_steps ? chunk - chunk % block_steps : chunk;
}

namespace {

// The row (of y, and of per-step saved state) holding sequence b's last step.
int64_t last_row(const detail::SequenceShape& shape, std::span<const int64_t> lengths, int64_t b) {
  if (!lengths.empty()) return (lengths[b] - 1) * shape.batch + b;
  int64_t t = shape.steps - 1;  // packed: the last step sequence b still runs in
  while (shape.offsets[t + 1] - shape.offsets[t] <= b) --t;
  return shape.offsets[t] + b;
}

// Steps [t0, t1) as a run for the recurrence drivers.
struct Run {
  std::vector<int64_t> rows;  // relative to the run's first row
  detail::StepRows layout;
};
Run make_run(const detail::SequenceShape& shape, std::span<const int64_t> lengths, int64_t t0, int64_t t1) {
  Run run;
  for (int64_t t = t0; t <= t1; ++t) run.rows.push_back(shape.offsets[t] - shape.offsets[t0]);
  const int64_t next_batch = t1 < shape.steps ? shape.offsets[t1 + 1] - shape.offsets[t1] : 0;
  run.layout = {run.rows.data(), next_batch, lengths.empty() ? nullptr : lengths.data(), t0};
  return run;
}

}  // namespace

void RecurrentLayer::forward(const RecurrentForwardArgs& args, ThreadPool* pool) const {
  require(has_parameters_, to_string(cell_), " parameters are not set (call set_parameters first)");
  const detail::SequenceShape shape = detail::check_recurrent_forward(args, {cell_, input_size_, hidden_size_});
  run_forward(args, shape, nullptr, nullptr, pool);
}

void RecurrentLayer::forward(const RecurrentForwardArgs& args, RecurrentSaved& saved, ThreadPool* pool) const {
  require(has_parameters_, to_string(cell_), " parameters are not set (call set_parameters first)");
  const detail::SequenceShape shape = detail::check_recurrent_forward(args, {cell_, input_size_, hidden_size_});
  saved.cell_ = cell_;
  saved.steps_ = shape.steps;
  saved.batch_ = shape.batch;
  saved.rows_ = shape.rows;
  saved.input_size_ = input_size_;
  saved.hidden_size_ = hidden_size_;
  saved.gates_.resize(static_cast<size_t>(shape.rows * gates() * padded_hidden_));
  // Per step: the LSTM's c_t, the GRU's hidden side of n; nothing for the RNN.
  const bool per_step_state = cell_ == CellKind::kLstm || cell_ == CellKind::kGru;
  saved.cells_.resize(per_step_state ? static_cast<size_t>(shape.rows * padded_hidden_) : 0);
  run_forward(args, shape, saved.gates_.data(), per_step_state ? saved.cells_.data() : nullptr, pool);
}

void RecurrentLayer::run_forward(const RecurrentForwardArgs& args, const detail::SequenceShape& shape,
                                 float* saved_gates, float* saved_cells, ThreadPool* pool) const {
  pool = pool ? pool : &ThreadPool::global();
  const int64_t steps = shape.steps, batch = shape.batch, hidden = hidden_size_, padded = padded_hidden_;
  const int64_t gate_cols = gates() * padded;
  const bool save = saved_gates != nullptr;
  // The input projection runs a chunk of steps ahead of the recurrence, so
  // the gates the recurrence accumulates into are still in cache, and
  // inference needs only a chunk of scratch, not (T, B, G·H).
  const int64_t chunk = chunk_steps(steps, batch);
  AlignedVector own_gates;
  std::unique_lock<std::mutex> lease;
  AlignedVector& scratch_gates = save ? own_gates : inference_gates_.take(lease, own_gates);
  if (!save) scratch_gates.resize(static_cast<size_t>(chunk * batch * gate_cols));

  // The GRU's hidden-side scratch, and the zero state it needs where h0 is
  // absent (its hidden side is b_hh even then); the other cells skip the
  // recurrent product at a zero state.
  const bool gru = cell_ == CellKind::kGru;
  AlignedVector hidden_gates(gru ? static_cast<size_t>(batch * gate_cols) : 0);
  AlignedVector zero_h(gru && args.h0.empty() ? static_cast<size_t>(batch * hidden) : 0, 0.0f);
  const float* h0 = args.h0.empty() ? (gru ? zero_h.data() : nullptr) : args.h0.data();
  AlignedVector c0 = padded_state(args.c0, batch, hidden, padded);
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t t1 = std::min(steps, t0 + chunk), row0 = shape.offsets[t0], rows = shape.offsets[t1] - row0;
    const Run run = make_run(shape, args.lengths, t0, t1);
    float* gates = save ? saved_gates + row0 * gate_cols : scratch_gates.data();
    gemm(ConstView(args.x.data() + row0 * input_size_, {rows, input_size_}), w_ih_packed_,
         View(gates, {rows, gate_cols}), {.bias = input_bias_.data()}, pool);
    const float* h_prev = t0 == 0 ? h0 : args.y.data() + shape.offsets[t0 - 1] * hidden;
    // LSTM: c before the run; GRU and RNN: unused.
    const float* c_prev = !saved_cells || t0 == 0 ? c0.data() : saved_cells + shape.offsets[t0 - 1] * padded;
    float* cells = saved_cells ? saved_cells + row0 * padded : c0.data();
    detail::run_recurrent_forward_steps({cell_, t1 - t0, hidden, padded, run.layout, &w_hh_packed_, gates,
                                         save, hidden_gates.data(), hidden_bias_.data(), h_prev, c_prev, cells,
                                         args.y.data() + row0 * hidden, pool});
  }

  // Each sequence's state after its own last step: y there, and c (kept in
  // place, or saved per step).
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t last = last_row(shape, args.lengths, b);
    if (!args.h_n.empty())
      std::memcpy(args.h_n.data() + b * hidden, args.y.data() + last * hidden, hidden * sizeof(float));
    if (!args.c_n.empty()) {
      const float* c = saved_cells ? saved_cells + last * padded : c0.data() + b * padded;
      std::memcpy(args.c_n.data() + b * hidden, c, hidden * sizeof(float));
    }
  }
}

void RecurrentLayer::backward(const RecurrentBackwardArgs& args, const RecurrentSaved& saved,
                              const RecurrentGrads& grads, ThreadPool* pool) const {
  require(has_parameters_, to_string(cell_), " parameters are not set (call set_parameters first)");
  const detail::SequenceShape shape =
      detail::check_recurrent_backward(args, grads, {cell_, input_size_, hidden_size_},
                                       saved.gates_.empty() ? 0 : saved.steps_, saved.batch_,
                                       {saved.cell_, saved.input_size_, saved.hidden_size_});
  require(saved.rows_ == shape.rows, "saved comes from a forward over ", saved.rows_, " rows of x, but x has ",
          shape.rows, " (padded and packed sequences differ)");
  const int64_t steps = shape.steps, batch = shape.batch, hidden = hidden_size_, input = input_size_;
  const int64_t padded = padded_hidden_, gate_cols = gates() * padded;
  pool = pool ? pool : &ThreadPool::global();
  const bool gru = cell_ == CellKind::kGru;

  // From the last chunk of steps to the first: the recurrence over the
  // chunk, then, while its gate gradients are in cache, their share of dx
  // and of the weight gradients. The recurrence of a chunk needs the
  // hidden-side gate gradients of the step after it, so two chunk buffers
  // alternate. The GRU's input and hidden sides differ (in n), so it has a
  // second pair; its weight-gradient GEMM takes dW_ih from the input side
  // and x, dW_hh from the hidden side and h (the other cells' one side
  // serves both).
  const int64_t chunk = chunk_steps(steps, batch), chunk_rows = chunk * batch;
  // The weight gradients' second operand, x_t and h_{t-1} per row, is read
  // where it lies when its rows are whole panels (16 floats) and the SIMD
  // target's GEMM reads such rows well: x as the chunk's rows, h_{t-1} as
  // y's rows a step back where every step has the same batch (not packed
  // sequences), or h0 before step 0. What is not is packed a row at a time.
  const bool in_place = !detail::gemm_packs_row_major_b();
  const bool x_in_place = in_place && input % kPanelWidth == 0;
  const bool h_in_place = in_place && hidden % kPanelWidth == 0 && shape.rows == steps * batch;
  // h0, or zeros without one (read by the GRU's recurrence and by the weight gradients).
  AlignedVector zero_h(args.h0.empty() ? static_cast<size_t>(batch * hidden) : 0, 0.0f);
  const float* h0 = args.h0.empty() ? zero_h.data() : args.h0.data();
  AlignedVector c0 = padded_state(args.c0, batch, hidden, padded);
  AlignedVector dh(static_cast<size_t>(batch * padded));
  AlignedVector carry = padded_state(args.dc_n, batch, hidden, padded);  // LSTM: dc_n; GRU: zeros
  // Rows of gate gradients are kept a panel longer than they need: at G·Hp a
  // multiple of 1024 (an LSTM of 256 units), the weight-gradient GEMM, which
  // reads them down the columns, would find every row in the same L1 set
  // (182 against 203 GFLOP/s at 1024 × 513 × 2048 on the development VM).
  const int64_t dg_stride = gate_cols + kPanelWidth;
  // The scratch buffers are kept from call to call and only resized: every
  // value the backward reads from them it has written first (each row of
  // the gate gradients in the recurrence, the weight gradients by the first
  // chunk's GEMM, which does not accumulate).
  RecurrentSaved::BackwardScratch& scratch = saved.scratch_;
  AlignedVector* dgates = scratch.dgates;
  AlignedVector* dgates_hidden = scratch.dgates_hidden;
  for (int which = 0; which < 2; ++which) {
    dgates[which].resize(static_cast<size_t>(chunk_rows * dg_stride));
    dgates_hidden[which].resize(static_cast<size_t>(gru ? chunk_rows * dg_stride : 0));
  }

  const int64_t x_cols = (input + kPanelWidth - 1) / kPanelWidth * kPanelWidth, h_cols = padded;
  PackedMatrix& packed_x = scratch.packed_x;
  PackedMatrix& packed_h = scratch.packed_h;
  // Weight gradients in blocked rows, at panel-padded widths: [dW_ih | dW_hh].
  const int64_t dw_cols = x_cols + h_cols;
  AlignedVector& dw = scratch.weight_grads;
  dw.resize(static_cast<size_t>(gate_cols * dw_cols));
  // The bias gradients, summed by the recurrence as it writes the gate
  // gradients (a column of ones in the GEMMs' operands would cost them a
  // whole panel of 16, the GEMM at N = H + D + 1 running 2-3% slower).
  AlignedVector dbias(static_cast<size_t>(gate_cols), 0.0f);
  AlignedVector dbias_hidden(static_cast<size_t>(gru ? gate_cols : 0), 0.0f);
  // Per-step states (LSTM c_t, GRU hidden side of n) from row `row`; the RNN has none.
  auto cells_at = [&](int64_t row) { return saved.cells_.empty() ? nullptr : saved.cells_.data() + row * padded; };

  const float* dgates_after = nullptr;
  for (int64_t t1 = steps, which = 0; t1 > 0; which ^= 1) {
    const int64_t t0 = std::max<int64_t>(0, t1 - chunk), row0 = shape.offsets[t0], rows = shape.offsets[t1] - row0;
    const Run run = make_run(shape, args.lengths, t0, t1);
    float* dg = dgates[which].data();
    float* dg_hidden = gru ? dgates_hidden[which].data() : dg;
    const int64_t before = t0 == 0 ? 0 : shape.offsets[t0 - 1];  // row of the step before the run
    detail::run_recurrent_backward_steps(
        {cell_, t1 - t0, hidden, padded, run.layout, &w_hh_t_packed_, saved.gates_.data() + row0 * gate_cols,
         cells_at(row0), t0 == 0 ? c0.data() : cells_at(before), t0 == 0 ? h0 : args.y.data() + before * hidden,
         args.y.data() + row0 * hidden, args.dy.data() + row0 * hidden, dgates_after,
         args.dh_n.empty() ? nullptr : args.dh_n.data(), dh.data(), carry.data(), dg, dg_hidden, dg_stride,
         dbias.data(), gru ? dbias_hidden.data() : dbias.data(), pool});

    // Row (t, b) pairs x_t with h_{t-1} of the same sequence: row b of step t - 1, or h0.
    if (!x_in_place) packed_x.reset(input, rows);
    if (!h_in_place) packed_h.reset(hidden, rows);
    if (!x_in_place || !h_in_place) {
      pool->run([&](int thread_index, int num_threads) {
        const int64_t r0 = rows * thread_index / num_threads, r1 = rows * (thread_index + 1) / num_threads;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t row = row0 + r;
          if (!x_in_place) packed_x.set_column(r, 0, args.x.data() + row * input, input);
          if (h_in_place) continue;
          const int64_t t = std::upper_bound(shape.offsets.begin() + t0, shape.offsets.begin() + t1 + 1, row) -
                            shape.offsets.begin() - 1;
          const int64_t b = row - shape.offsets[t];
          const float* h_prev = t > 0 ? args.y.data() + (shape.offsets[t - 1] + b) * hidden : h0 + b * hidden;
          packed_h.set_column(r, 0, h_prev, hidden);
        }
      });
    }
    // The chunk's rows [k0, k1) of each operand as panels.
    auto x_panels = [&](int64_t k0) -> detail::PanelSource {
      if (x_in_place) return {args.x.data() + (row0 + k0) * input, kPanelWidth, static_cast<size_t>(input)};
      return detail::SourceOf(packed_x, static_cast<size_t>(k0));
    };
    auto h_panels = [&](int64_t k0) -> detail::PanelSource {
      if (!h_in_place) return detail::SourceOf(packed_h, static_cast<size_t>(k0));
      const int64_t row = row0 + k0;  // its h_{t-1}: y a step back, or before step 0 h0's rows
      const float* h = row < batch ? h0 + row * hidden : args.y.data() + (row - batch) * hidden;
      return {h, kPanelWidth, static_cast<size_t>(hidden)};
    };
    // [dW_ih | dW_hh] (+)= [dGᵀ·x | dG_hiddenᵀ·h] over rows [k0, k1), which read h_{t-1} from one place.
    auto add_weight_gradients = [&](int64_t k0, int64_t k1, bool accumulate) {
      if (k1 == k0) return;
      const detail::BPanels x_h{x_panels(k0), h_panels(k0), static_cast<size_t>(x_cols / kPanelWidth),
                                static_cast<size_t>(dw_cols), static_cast<size_t>(k1 - k0)};
      detail::gemm_panels(
          {dg + k0 * dg_stride, 1, static_cast<size_t>(dg_stride), static_cast<size_t>(gate_cols), x_h, 0, x_h.panels(),
           dw.data(), static_cast<size_t>(dw_cols), nullptr, accumulate, true, dg_hidden + k0 * dg_stride},
          pool);
    };
    // With h read in place, step 0's rows take h0 from elsewhere: a GEMM of their own.
    const bool accumulate = t1 != steps;
    const int64_t split = h_in_place && t0 == 0 ? batch : 0;
    if (split > 0) add_weight_gradients(0, split, accumulate);
    add_weight_gradients(split, rows, accumulate || split > 0);
    if (!args.dx.empty())
      gemm(ConstView(dg, {rows, gate_cols}, {dg_stride, 1}), w_ih_t_packed_,
           View(args.dx.data() + row0 * input, {rows, input}), {}, pool);

    dgates_after = dg_hidden;
    t1 = t0;
  }

  for (int64_t r = 0; r < gate_cols; ++r) {
    const int64_t source = gate_order_[static_cast<size_t>(r)];
    if (source < 0) continue;
    std::memcpy(grads.w_ih.data() + source * input, &dw[r * dw_cols], input * sizeof(float));
    std::memcpy(grads.w_hh.data() + source * hidden, &dw[r * dw_cols + x_cols], hidden * sizeof(float));
    grads.b_ih.data()[source] = dbias[r];
    grads.b_hh.data()[source] = gru ? dbias_hidden[r] : dbias[r];
  }

  // dgates_after now holds the hidden-side gate gradients of step 0.
  if (!args.dh0.empty()) {
    gemm(ConstView(dgates_after, {batch, gate_cols}, {dg_stride, 1}), w_hh_t_packed_, args.dh0, {}, pool);
    // The GRU's h0 also reaches h_1 directly, through z.
    if (gru)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t j = 0; j < hidden; ++j) args.dh0.data()[b * hidden + j] += carry[b * padded + j];
  }
  if (!args.dc0.empty()) unpad_state(carry.data(), batch, hidden, padded, args.dc0.data());
}

}  // namespace seqk
