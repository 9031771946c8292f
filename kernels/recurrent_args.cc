#include "kernels/recurrent_args.h"

#include <cmath>

namespace seqk::detail {
namespace {

void require_finite(const ConstView& v, const char* name) {
  for (int64_t i = 0; i < v.numel(); ++i)
    require(std::isfinite(v.data()[i]), name, " has a non-finite value at flat index ", i);
}

void require_optional_state(const ConstView& v, const char* name, int64_t batch, int64_t hidden) {
  if (!v.empty()) require_shape(v, name, {batch, hidden});
}

// The cell state's arguments exist only for the LSTM.
void require_no_cell_state(const ConstView& v, const char* name, CellKind cell) {
  require(v.empty() || has_cell_state(cell), name, " is given, but a ", to_string(cell),
          " layer has no cell state (only the LSTM has)");
}

}  // namespace

SequenceShape sequence_shape(const ConstView& x, std::span<const int64_t> lengths,
                             std::span<const int64_t> batch_sizes, LayerShape sizes) {
  require(x.data() != nullptr, "x is null");
  require(lengths.empty() || batch_sizes.empty(), "give lengths (padded sequences) or batch_sizes (packed), not both");
  SequenceShape shape;
  if (!batch_sizes.empty()) {
    require(x.rank() == 2, "packed x must be (N, D), got shape ", x.shape_string());
    shape.steps = static_cast<int64_t>(batch_sizes.size());
    shape.batch = batch_sizes[0];
    shape.offsets.assign(1, 0);
    for (int64_t t = 0; t < shape.steps; ++t) {
      const int64_t size = batch_sizes[t];
      require(size > 0, "batch_sizes[", t, "] = ", size, ": every step needs at least one sequence");
      require(t == 0 || size <= batch_sizes[t - 1], "batch_sizes[", t, "] = ", size, " > batch_sizes[", t - 1,
              "] = ", batch_sizes[t - 1], ": packed sequences must be sorted by length, longest first");
      shape.offsets.push_back(shape.offsets.back() + size);
    }
    shape.rows = shape.offsets.back();
    require_shape(x, "x", {shape.rows, sizes.input});
    return shape;
  }
  require(x.rank() == 3, "x must be (T, B, D), got shape ", x.shape_string());
  shape.steps = x.dim(0);
  shape.batch = x.dim(1);
  require(shape.steps > 0, "x has T = 0 time steps");
  require(shape.batch > 0, "x has batch size B = 0");
  require_shape(x, "x", {shape.steps, shape.batch, sizes.input});
  if (!lengths.empty()) {
    require(static_cast<int64_t>(lengths.size()) == shape.batch, "lengths has ", lengths.size(),
            " entries for B = ", shape.batch, " sequences");
    for (int64_t b = 0; b < shape.batch; ++b) {
      require(lengths[b] >= 1 && lengths[b] <= shape.steps, "lengths[", b, "] = ", lengths[b],
              ": a length must be between 1 and T = ", shape.steps);
    }
  }
  shape.rows = shape.steps * shape.batch;
  for (int64_t t = 0; t <= shape.steps; ++t) shape.offsets.push_back(t * shape.batch);
  return shape;
}

namespace {

// y (or dy) with x's layout and H columns.
void require_like_x(const ConstView& v, const char* name, const SequenceShape& shape, bool packed, int64_t width) {
  if (packed) {
    require_shape(v, name, {shape.rows, width});
  } else {
    require_shape(v, name, {shape.steps, shape.batch, width});
  }
}

SequenceShape check_sequence(const ConstView& x, const ConstView& y, const ConstView& h0, const ConstView& c0,
                             std::span<const int64_t> lengths, std::span<const int64_t> batch_sizes,
                             LayerShape sizes) {
  SequenceShape shape = sequence_shape(x, lengths, batch_sizes, sizes);
  require_like_x(y, "y", shape, !batch_sizes.empty(), sizes.hidden);
  require_optional_state(h0, "h0", shape.batch, sizes.hidden);
  require_no_cell_state(c0, "c0", sizes.cell);
  require_optional_state(c0, "c0", shape.batch, sizes.hidden);
  return shape;
}

}  // namespace

std::vector<int64_t> mirrored_rows(const SequenceShape& s, std::span<const int64_t> lengths, bool packed) {
  std::vector<int64_t> mirrored(static_cast<std::size_t>(s.rows));
  for (int64_t t = 0; t < s.steps; ++t) {
    for (int64_t b = 0; b < s.offsets[t + 1] - s.offsets[t]; ++b) {
      int64_t length = lengths.empty() ? s.steps : lengths[b];  // steps sequence b runs for
      if (packed) {
        length = 0;
        while (length < s.steps && s.offsets[length + 1] - s.offsets[length] > b) ++length;
      }
      mirrored[s.offsets[t] + b] = t < length ? s.offsets[length - 1 - t] + b : s.offsets[t] + b;
    }
  }
  return mirrored;
}

void check_recurrent_params(const RecurrentParams& params, LayerShape sizes) {
  const int64_t gates = gates_per_unit(sizes.cell) * sizes.hidden;
  require_shape(params.w_ih, "w_ih", {gates, sizes.input});
  require_shape(params.w_hh, "w_hh", {gates, sizes.hidden});
  require_shape(params.b_ih, "b_ih", {gates});
  require_shape(params.b_hh, "b_hh", {gates});
  require_finite(params.w_ih, "w_ih");
  require_finite(params.w_hh, "w_hh");
  require_finite(params.b_ih, "b_ih");
  require_finite(params.b_hh, "b_hh");
}

SequenceShape check_recurrent_forward(const RecurrentForwardArgs& args, LayerShape sizes) {
  SequenceShape shape = check_sequence(args.x, args.y, args.h0, args.c0, args.lengths, args.batch_sizes, sizes);
  require_no_cell_state(args.c_n, "c_n", sizes.cell);
  require_optional_state(args.h_n, "h_n", shape.batch, sizes.hidden);
  require_optional_state(args.c_n, "c_n", shape.batch, sizes.hidden);
  return shape;
}

SequenceShape check_recurrent_backward(const RecurrentBackwardArgs& args, const RecurrentGrads& grads,
                                       LayerShape sizes, int64_t saved_steps, int64_t saved_batch,
                                       LayerShape saved_sizes) {
  SequenceShape shape = check_sequence(args.x, args.y, args.h0, args.c0, args.lengths, args.batch_sizes, sizes);
  require_no_cell_state(args.dc_n, "dc_n", sizes.cell);
  require_no_cell_state(args.dc0, "dc0", sizes.cell);
  const int64_t steps = shape.steps, batch = shape.batch, gates = gates_per_unit(sizes.cell) * sizes.hidden;
  const bool packed = !args.batch_sizes.empty();
  require(saved_steps > 0, "saved is empty: run the training forward (with LstmSaved) first");
  require(saved_steps == steps && saved_batch == batch, "saved comes from a forward with T = ", saved_steps,
          ", B = ", saved_batch, ", but x has T = ", steps, ", B = ", batch);
  require(saved_sizes.cell == sizes.cell && saved_sizes.input == sizes.input && saved_sizes.hidden == sizes.hidden,
          "saved comes from a ", to_string(saved_sizes.cell), " layer with D = ", saved_sizes.input, ", H = ",
          saved_sizes.hidden, ", but this is a ", to_string(sizes.cell), " layer with D = ", sizes.input, ", H = ",
          sizes.hidden);
  require_like_x(args.dy, "dy", shape, packed, sizes.hidden);
  require_optional_state(args.dh_n, "dh_n", batch, sizes.hidden);
  require_optional_state(args.dc_n, "dc_n", batch, sizes.hidden);
  if (!args.dx.empty()) require_like_x(args.dx, "dx", shape, packed, sizes.input);
  require_optional_state(args.dh0, "dh0", batch, sizes.hidden);
  require_optional_state(args.dc0, "dc0", batch, sizes.hidden);
  require_shape(grads.w_ih, "grads.w_ih", {gates, sizes.input});
  require_shape(grads.w_hh, "grads.w_hh", {gates, sizes.hidden});
  require_shape(grads.b_ih, "grads.b_ih", {gates});
  require_shape(grads.b_hh, "grads.b_hh", {gates});
  return shape;
}

}  // namespace seqk::detail
