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

struct LstmForwardSteps {
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh;  // (4Hp, H), blocked rows
  // (T, B, 4Hp): the input projection plus both biases on entry; with
  // save_gates the activated gates on return.
  float* gates;
  bool save_gates;
  const float* h0;        // (B, H), or null for zeros
  const float* c0;        // (B, Hp): c_0, padded with zeros
  float* cells;           // save_gates: (T, B, Hp) c_1..c_T; else (B, Hp) c_t in place (may equal c0)
  float* y;               // (T, B, H)
  bool specialized;
  ThreadPool* pool;
};

struct LstmBackwardSteps {
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh_t;  // (H, 4Hp): W_hh transposed, blocked columns
  const float* gates;          // (T, B, 4Hp) activated, from the training forward
  const float* cells;          // (T, B, Hp) c_1..c_T
  const float* c0;             // (B, Hp)
  const float* dy;             // (T, B, H)
  // (B, Hp): on entry dL/dh_T from outside the sequence (zeros if none); used
  // as scratch for the recurrent part of dL/dh_t.
  float* dh;
  float* dc;                   // (B, Hp): on entry dL/dc_T, on return dL/dc_0
  float* dgates;               // (T, B, 4Hp): dL/d(pre-activation gates)
  bool specialized;
  ThreadPool* pool;
};

}  // namespace seqk::detail

namespace seqk::detail {
void run_lstm_forward_steps(const LstmForwardSteps& steps);
void run_lstm_backward_steps(const LstmBackwardSteps& steps);
}  // namespace seqk::detail
