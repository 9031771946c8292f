// oneDNN's RNN primitives as the peers of the seqk recurrent-layer rows:
// lstm, lbr_gru (the GRU PyTorch and cuDNN compute: the hidden side of n,
// with its own bias, inside r ⊙ (...)) and vanilla_rnn (tanh or relu).
#pragma once

#include <cstdint>
#include <vector>

#include "bench/recurrent_shapes.h"
#include "seqk/recurrent.h"

namespace seqk_bench {

// Builds oneDNN's primitive for `cell` (forward_inference, or
// forward_training followed by backward) for `shape` in fp32 with the weight
// layouts the primitive prefers (reordered once, untimed), runs one warm-up
// iteration, then returns the wall seconds of each of `iterations` timed
// iterations, on `threads` OpenMP threads. Initialises oneDNN and OpenMP in
// the calling process, so call it only inside time_in_child()
// (child_process.h).
// `stacking`: layers (oneDNN needs D == H for more than one) and direction.
std::vector<double> onednn_iteration_seconds(seqk::CellKind cell, const RecurrentShape& shape,
                                             const Stacking& stacking, Pass pass, int64_t iterations, int threads);

// The oneDNN version the binary was compiled against, e.g. "2.6.3".
const char* onednn_version();

}  // namespace seqk_bench
