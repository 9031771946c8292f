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

void check_sequence(const ConstView& x, const ConstView& y, const ConstView& h0, const ConstView& c0,
                    LayerShape sizes) {
  require(x.data() != nullptr, "x is null");
  require(x.rank() == 3, "x must be (T, B, D), got shape ", x.shape_string());
  const int64_t steps = x.dim(0), batch = x.dim(1);
  require(steps > 0, "x has T = 0 time steps");
  require(batch > 0, "x has batch size B = 0");
  require_shape(x, "x", {steps, batch, sizes.input});
  require_shape(y, "y", {steps, batch, sizes.hidden});
  require_optional_state(h0, "h0", batch, sizes.hidden);
  require_no_cell_state(c0, "c0", sizes.cell);
  require_optional_state(c0, "c0", batch, sizes.hidden);
}

}  // namespace

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

void check_recurrent_forward(const RecurrentForwardArgs& args, LayerShape sizes) {
  check_sequence(args.x, args.y, args.h0, args.c0, sizes);
  require_no_cell_state(args.c_n, "c_n", sizes.cell);
  require_optional_state(args.h_n, "h_n", args.x.dim(1), sizes.hidden);
  require_optional_state(args.c_n, "c_n", args.x.dim(1), sizes.hidden);
}

void check_recurrent_backward(const RecurrentBackwardArgs& args, const RecurrentGrads& grads, LayerShape sizes,
                              int64_t saved_steps, int64_t saved_batch, LayerShape saved_sizes) {
  check_sequence(args.x, args.y, args.h0, args.c0, sizes);
  require_no_cell_state(args.dc_n, "dc_n", sizes.cell);
  require_no_cell_state(args.dc0, "dc0", sizes.cell);
  const int64_t steps = args.x.dim(0), batch = args.x.dim(1), gates = gates_per_unit(sizes.cell) * sizes.hidden;
  require(saved_steps > 0, "saved is empty: run the training forward (with LstmSaved) first");
  require(saved_steps == steps && saved_batch == batch, "saved comes from a forward with T = ", saved_steps,
          ", B = ", saved_batch, ", but x has T = ", steps, ", B = ", batch);
  require(saved_sizes.cell == sizes.cell && saved_sizes.input == sizes.input && saved_sizes.hidden == sizes.hidden,
          "saved comes from a ", to_string(saved_sizes.cell), " layer with D = ", saved_sizes.input, ", H = ",
          saved_sizes.hidden, ", but this is a ", to_string(sizes.cell), " layer with D = ", sizes.input, ", H = ",
          sizes.hidden);
  require_shape(args.dy, "dy", {steps, batch, sizes.hidden});
  require_optional_state(args.dh_n, "dh_n", batch, sizes.hidden);
  require_optional_state(args.dc_n, "dc_n", batch, sizes.hidden);
  if (!args.dx.empty()) require_shape(args.dx, "dx", {steps, batch, sizes.input});
  require_optional_state(args.dh0, "dh0", batch, sizes.hidden);
  require_optional_state(args.dc0, "dc0", batch, sizes.hidden);
  require_shape(grads.w_ih, "grads.w_ih", {gates, sizes.input});
  require_shape(grads.w_hh, "grads.w_hh", {gates, sizes.hidden});
  require_shape(grads.b_ih, "grads.b_ih", {gates});
  require_shape(grads.b_hh, "grads.b_hh", {gates});
}

}  // namespace seqk::detail
