// Argument checks shared by the CPU and Vulkan recurrent layers, so both
// reject bad input with the same messages before touching anything.
#pragma once

#include <cstdint>
#include <vector>

#include "seqk/recurrent_layer.h"

namespace seqk::detail {

struct LayerShape {
  CellKind cell;
  int64_t input, hidden;  // D, H
};

// The steps of a batch of sequences: T steps of B sequences in `rows` (N)
// rows of x, step t in rows [offsets[t], offsets[t+1]).
struct SequenceShape {
  int64_t steps, batch, rows;
  std::vector<int64_t> offsets;  // T + 1
};

// The steps and rows of x (T, B, D), or packed (N, D) with batch_sizes, with
// lengths / batch_sizes checked.
SequenceShape sequence_shape(const ConstView& x, std::span<const int64_t> lengths,
                             std::span<const int64_t> batch_sizes, LayerShape shape);

// For each row (t, b) of `shape`, the row of the same sequence at its
// mirrored step len_b − 1 − t (padding rows past a length map to
// themselves): the reverse direction of a bidirectional layer reads its
// sequences through this permutation, which is its own inverse.
std::vector<int64_t> mirrored_rows(const SequenceShape& shape, std::span<const int64_t> lengths, bool packed);

// Shapes (G·H, D), (G·H, H), (G·H), (G·H), all values finite.
void check_recurrent_params(const RecurrentParams& params, LayerShape shape);
// x (T, B, D) with T, B > 0 (or packed (N, D) with batch_sizes), y likewise,
// lengths or batch_sizes valid, optional (B, H) states; c0 and c_n only for
// the LSTM.
SequenceShape check_recurrent_forward(const RecurrentForwardArgs& args, LayerShape shape);
// The sequence as for forward, `saved` (of T', B' and a layer of `saved_shape`)
// matching it, and the shapes of every gradient.
SequenceShape check_recurrent_backward(const RecurrentBackwardArgs& args, const RecurrentGrads& grads,
                                       LayerShape shape, int64_t saved_steps, int64_t saved_batch,
                                       LayerShape saved_shape);

}  // namespace seqk::detail
