// The min-RNNs' elementwise gate math (kernels/cpu/min_rnn_gates.cc),
// dispatched to the best SIMD target and split over a thread pool by rows.
#pragma once

#include <cstddef>

#include "seqk/thread_pool.h"

namespace seqk::detail {

struct MinGateRows {
  bool lstm;  // minLSTM (gates f, i, h̃), else minGRU (z, h̃)
  size_t rows, hidden;
  const float* pre;             // (rows, G·H): the gates' pre-activations, as the GEMM gave them
  float *coefficient, *input;   // forward: (rows, H) each, the scan's a and b out
  const float *d_coefficient, *d_input;  // backward: (rows, H) each, the scan's da and db in
  float* dpre;                  // backward: (rows, G·H), the pre-activations' gradients out
  ThreadPool* pool;
};

void min_gates_forward(const MinGateRows& rows);
void min_gates_backward(const MinGateRows& rows);

}  // namespace seqk::detail
