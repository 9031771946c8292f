#include "kernels/min_rnn_args.h"

#include <cmath>
#include <utility>

#include "seqk/error.h"

namespace seqk::detail {

void check_min_rnn_params(const MinRnnParams& params, MinRnnShape shape) {
  const int64_t rows = shape.gates() * shape.hidden;
  require_shape(params.w, "w", {rows, shape.input});
  require_shape(params.b, "b", {rows});
  for (const auto& [view, name] : {std::pair{params.w, "w"}, {params.b, "b"}})
    for (int64_t i = 0; i < view.numel(); ++i)
      require(std::isfinite(view.data()[i]), name, " has a non-finite value at flat index ", i);
}

MinRnnSteps check_min_rnn_forward(ConstView x, ConstView h0, ConstView y, MinRnnShape shape) {
  require(x.data() != nullptr && x.rank() == 3, "x must be (T, B, D), got ", x.shape_string());
  const int64_t T = x.dim(0), B = x.dim(1);
  require(T > 0 && B > 0, "x has an empty dimension: ", x.shape_string());
  require_shape(x, "x", {T, B, shape.input});
  require_shape(y, "y", {T, B, shape.hidden});
  if (!h0.empty()) require_shape(h0, "h0", {B, shape.hidden});
  return {T, B};
}

MinRnnSteps check_min_rnn_backward(ConstView x, ConstView h0, ConstView y, ConstView dy, View dx, View dh0,
                                   const MinRnnGrads& grads, MinRnnShape shape) {
  const MinRnnSteps s = check_min_rnn_forward(x, h0, y, shape);
  const int64_t T = s.steps, B = s.batch, D = shape.input, H = shape.hidden, G = shape.gates();
  require_shape(dy, "dy", {T, B, H});
  if (!dx.empty()) require_shape(dx, "dx", {T, B, D});
  if (!dh0.empty()) require_shape(dh0, "dh0", {B, H});
  require_shape(grads.w, "grads.w", {G * H, D});
  require_shape(grads.b, "grads.b", {G * H});
  return s;
}

}  // namespace seqk::detail
