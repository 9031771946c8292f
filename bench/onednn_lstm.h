// oneDNN's LSTM primitive as the peer of the seqk LSTM rows.
#pragma once

#include <cstdint>
#include <vector>

#include "bench/lstm_shapes.h"

namespace seqk_bench {

// Builds oneDNN's LSTM (forward_inference, or forward_training followed by
// backward) for `shape` in fp32 with the weight layouts the primitive
// prefers (reordered once, untimed), runs one warm-up iteration, then returns
// the wall seconds of each of `iterations` timed iterations, on `threads`
// OpenMP threads. Initialises oneDNN and OpenMP in the calling process, so
// call it only inside time_in_child() (child_process.h).
std::vector<double> onednn_lstm_iteration_seconds(const LstmShape& shape, LstmPass pass, int64_t iterations,
                                                  int threads);

// The oneDNN version the binary was compiled against, e.g. "2.6.3".
const char* onednn_version();

}  // namespace seqk_bench
