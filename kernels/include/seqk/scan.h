// The diagonal linear recurrence of state-space layers, on the CPU:
//   h_t = a_t ⊙ h_{t-1} + b_t,   t = 1 .. T,   h_0 given (or zero),
// over (T, B, D) time-major tensors (every (b, d) an independent channel),
// and its backward, a reverse scan:
//   g_t = dL/dh_t + a_{t+1} ⊙ g_{t+1},   da_t = g_t ⊙ h_{t-1},   db_t = g_t,
//   dh_0 = a_1 ⊙ g_1.
//
// SIMD runs across channels, several vectors of them per row at a time, so
// the rows stream through memory in order. Threads split the channels when
// rows are wide (≥ 1024 channels per thread). Otherwise a long scan goes in
// cache-sized chunks of steps dealt to the threads in turn: each chunk is
// first reduced to its end state and the product of its a's, then scanned
// again from cache once the state leaving the chunk before it is handed on,
// so every input is read from memory once. Small scans run on the calling
// thread. The results are those of the sequential loop up to fp32 rounding
// (the chunked form reassociates).
#pragma once

#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

struct LinearScanArgs {
  ConstView a, b;  // (T, B, D)
  ConstView h0;    // (B, D); empty means zeros
  View h;          // (T, B, D): h_1 .. h_T
};

struct LinearScanBackwardArgs {
  ConstView a, h0, h;  // exactly as given to / produced by the forward
  ConstView dh;        // (T, B, D): dL/dh_t from outside the recurrence
  View da, db;         // (T, B, D); overwritten
  View dh0;            // (B, D); empty means not wanted
};

void linear_scan(const LinearScanArgs& args, ThreadPool* pool = nullptr);
void linear_scan_backward(const LinearScanBackwardArgs& args, ThreadPool* pool = nullptr);

}  // namespace seqk
