// The min-RNNs' elementwise gate math (kernels/cpu/min_rnn_gates.cc),
// dispatched to the best SIMD target and split over a thread pool by rows.
#pragma once

#include <cstddef>

#include "seqk/thread_pool.h"

namespace seqk::detail {

struct MinGateRows {
  bool lstm;         // minLSTM (gates f, i, h̃), else minGRU (z, h̃)
  size_t rows, hidden;
  const float* gates;  // (rows, G·H): forward: the pre-activations; backward: the activated gates
  float* activated;    // forward: (rows, G·H) the activated gates out (may be `gates`); backward: unused
  float* a;          // (rows, H): forward: the scan's coefficient out; backward: its gradient in
  float* b;          // (rows, H): forward: the scan's input out; backward: its gradient in
  float* dpre;       // backward: (rows, G·H) the pre-activations' gradients out
  ThreadPool* pool;
};

void min_gates_forward(const MinGateRows& rows);
void min_gates_backward(const MinGateRows& rows);

}  // namespace seqk::detail
