// The sequential part of the recurrent layers: what the per-target
// recurrence loops (recurrent_steps.cc) need, described independently of the
// SIMD target. One driver serves every cell (seqk/recurrent.h).
//
// Internal layout: hidden units are grouped in blocks of 16 (kPanelWidth);
// gate columns are ordered block by block, the G gates of a block side by
// side ([i f g o] for the LSTM, [r z n] for the GRU, one for the RNN), so a
// block's gates are G consecutive B panels. H is padded to Hp, a multiple of
// 16; padded units have zero weights and stay zero.
#pragma once

#include <cstdint>

#include "seqk/gemm.h"
#include "seqk/recurrent.h"
#include "seqk/thread_pool.h"

namespace seqk::detail {

// A run of consecutive time steps (a chunk of the sequence or all of it).
struct RecurrentForwardSteps {
  CellKind cell;
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh;  // (G·Hp, H), blocked rows
  // (steps, B, G·Hp): the input projection on entry, plus both biases except
  // for the GRU (b_ih only); with save the activated gates on return.
  float* gates;
  bool save;
  // GRU only: (B, G·Hp) scratch for the hidden side h·W_hhᵀ + b_hh, and that bias.
  float* hidden_gates;
  const float* hidden_bias;
  // (B, H): h before the first step; null for zeros, except for the GRU.
  const float* h_before;
  // LSTM: (B, Hp) c before the first step, padded with zeros; else unused.
  const float* c_before;
  // LSTM: with save (steps, B, Hp) c_t, else (B, Hp) c_t in place (may equal
  // c_before). GRU with save: (steps, B, Hp) the hidden side of n. RNN: unused.
  float* cells;
  float* y;  // (steps, B, H)
  ThreadPool* pool;
};

// A run of consecutive time steps, processed from the last to the first.
struct RecurrentBackwardSteps {
  CellKind cell;
  int64_t steps, batch, hidden, padded_hidden;
  const PackedMatrix* w_hh_t;  // (H, G·Hp): W_hh transposed, blocked columns
  const float* gates;          // (steps, B, G·Hp) activated, from the training forward
  const float* cells;          // (steps, B, Hp) as RecurrentForwardSteps::cells with save
  const float* c_before;       // LSTM: (B, Hp) c before the first step
  const float* h_before;       // GRU: (B, H) h before the first step (not null)
  const float* y;              // GRU: (steps, B, H) the outputs of these steps
  const float* dy;             // (steps, B, H)
  // (B, G·Hp): the hidden-side gate gradients of the step after the last
  // one, or null when the last step is the end of the sequence.
  const float* dgates_after;
  // (B, Hp): scratch for the recurrent part of dL/dh_t; on entry, when
  // dgates_after is null, dL/dh of the last step from outside the sequence.
  float* dh;
  // (B, Hp), carried from step to step: LSTM dL/dc (on entry that of the
  // last step, on return that before the first); GRU the part of dL/dh_{t-1}
  // that skips the weights, dh_t·z_t (zero on entry at the sequence's end).
  float* carry;
  float* dgates;         // (steps, B, G·Hp): dL/d(input-side pre-activations)
  float* dgates_hidden;  // GRU: (steps, B, G·Hp) the hidden side; else equal to dgates
  ThreadPool* pool;
};

void run_recurrent_forward_steps(const RecurrentForwardSteps& steps);
void run_recurrent_backward_steps(const RecurrentBackwardSteps& steps);

}  // namespace seqk::detail
