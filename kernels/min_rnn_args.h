// Argument checks shared by the CPU and Vulkan min-RNN layers
// (seqk/min_rnn.h, seqk/vulkan_min_rnn.h), so both reject bad input with the
// same messages before touching anything.
#pragma once

#include <cstdint>

#include "seqk/min_rnn.h"

namespace seqk::detail {

struct MinRnnShape {
  MinRnnKind kind;
  int64_t input, hidden;  // D, H
  int64_t gates() const { return kind == MinRnnKind::kGru ? 2 : 3; }
};

struct MinRnnSteps {
  int64_t steps, batch;  // T, B
};

// w (G·H, D), b (G·H), all values finite.
void check_min_rnn_params(const MinRnnParams& params, MinRnnShape shape);
// x (T, B, D) with T, B > 0, y (T, B, H), h0 (B, H) or empty.
MinRnnSteps check_min_rnn_forward(ConstView x, ConstView h0, ConstView y, MinRnnShape shape);
// As the forward, plus dy (T, B, H), dx (T, B, D) or empty, dh0 (B, H) or
// empty, grads.w (G·H, D), grads.b (G·H).
MinRnnSteps check_min_rnn_backward(ConstView x, ConstView h0, ConstView y, ConstView dy, View dx, View dh0,
                                   const MinRnnGrads& grads, MinRnnShape shape);

}  // namespace seqk::detail
