// Argument checks shared by the CPU and Vulkan LSTM layers, so both reject
// bad input with the same messages before touching anything.
#pragma once

#include <cstdint>

#include "seqk/lstm.h"

namespace seqk::detail {

struct LstmSizes {
  int64_t input, hidden;  // D, H
};

// Shapes (4H, D), (4H, H), (4H), (4H), all values finite.
void check_lstm_params(const LstmParams& params, LstmSizes sizes);
// x (T, B, D) with T, B > 0, y (T, B, H), optional (B, H) states.
void check_lstm_forward(const LstmForwardArgs& args, LstmSizes sizes);
// The sequence as for forward, `saved` (of T', B', D', H') matching it, and
// the shapes of every gradient.
void check_lstm_backward(const LstmBackwardArgs& args, const LstmGrads& grads, LstmSizes sizes, int64_t saved_steps,
                         int64_t saved_batch, LstmSizes saved_sizes);

}  // namespace seqk::detail
