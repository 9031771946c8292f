// The sequential part of the LSTM layer: what the per-target recurrence
// loops (lstm_steps.cc) need, described independently of the SIMD target.
//
// Internal layout: hidden units are grouped in blocks of 16 (kPanelWidth);
// gate columns are ordered block by block as [i(16) f(16) g(16) o(16)], so a
// block's four gates are four consecutive B panels. H is padded to Hp, a
// multiple of 16; padded units have zero weights and stay zero.
#pragma once

#include <cstdint>

#include "seqk/gemm.h"
#include "seqk/thread_pool.h"

namespace seqk::detail {

inline constexpr int64_t kGatesPerUnit = 4;
inline constexpr int64_t kBlockGateCols = kGatesPerUnit * kPanelWidth;

// A run of consecutive time steps (a chunk of the sequence or all of it).
struct LstmForwardSteps {
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh;  // (4Hp, H), blocked rows
  // (steps, B, 4Hp): the input projection plus both biases on entry; with
  // save_gates the activated gates on return.
  float* gates;
  bool save_gates;
  const float* h_before;  // (B, H): h before the first step, or null for zeros
  const float* c_before;  // (B, Hp): c before the first step, padded with zeros
  float* cells;           // save_gates: (steps, B, Hp) c_t; else (B, Hp) c_t in place (may equal c_before)
  float* y;               // (steps, B, H)
  ThreadPool* pool;
};

// A run of consecutive time steps, processed from the last to the first.
struct LstmBackwardSteps {
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh_t;  // (H, 4Hp): W_hh transposed, blocked columns
  const float* gates;          // (steps, B, 4Hp) activated, from the training forward
  const float* cells;          // (steps, B, Hp) c_t
  const float* c_before;       // (B, Hp): c before the first step
  const float* dy;             // (steps, B, H)
  // (B, 4Hp): dL/d(gates) of the step after the last one, or null when the
  // last step is the end of the sequence.
  const float* dgates_after;
  // (B, Hp): scratch for the recurrent part of dL/dh_t; on entry, when
  // dgates_after is null, dL/dh of the last step from outside the sequence.
  float* dh;
  float* dc;      // (B, Hp): on entry dL/dc of the last step, on return dL/dc before the first
  float* dgates;  // (steps, B, 4Hp): dL/d(pre-activation gates)
  ThreadPool* pool;
};

}  // namespace seqk::detail

namespace seqk::detail {
void run_lstm_forward_steps(const LstmForwardSteps& steps);
void run_lstm_backward_steps(const LstmBackwardSteps& steps);
}  // namespace seqk::detail
