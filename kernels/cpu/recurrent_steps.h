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

// Where the rows of each step are, for steps [0, steps) of a run; the
// same for forward and backward. Step t is rows [rows[t], rows[t+1]) of the
// run's buffers, one per sequence still running, sequences in the same order
// every step: a step's batch is a prefix of the one before (all of it for
// the regular (T, B) layout, a shrinking prefix for packed sequences).
struct StepRows {
  const int64_t* rows;  // steps + 1 offsets, rows[0] = 0
  // The batch of the step after the run (0 at the end of the sequences): a
  // row b of the last step whose sequence stops there has b >= next_batch.
  int64_t next_batch;
  // Padded sequences with a mask: length of each row's sequence (null: all
  // rows run every step), and the absolute index of the run's first step.
  // Steps at or past a row's length are masked: y = 0, states kept.
  const int64_t* lengths;
  int64_t first_step;

  int64_t batch(int64_t t) const { return rows[t + 1] - rows[t]; }
};

// A run of consecutive time steps (a chunk of the sequence or all of it).
struct RecurrentForwardSteps {
  CellKind cell;
  int64_t steps, hidden, padded_hidden;
  StepRows layout;
  const PackedMatrix* w_hh;  // (G·Hp, H), blocked rows
  // (rows, G·Hp): the input projection on entry, plus both biases except
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
  // LSTM: with save (rows, Hp) c_t, else (B, Hp) c_t in place (may equal
  // c_before). GRU with save: (rows, Hp) the hidden side of n. RNN: unused.
  float* cells;
  float* y;  // (rows, H)
  ThreadPool* pool;
};

// A run of consecutive time steps, processed from the last to the first.
struct RecurrentBackwardSteps {
  CellKind cell;
  int64_t steps, hidden, padded_hidden;
  StepRows layout;
  const PackedMatrix* w_hh_t;  // (H, G·Hp): W_hh transposed, blocked columns
  const float* gates;          // (rows, G·Hp) activated, from the training forward
  const float* cells;          // (rows, Hp) as RecurrentForwardSteps::cells with save
  const float* c_before;       // LSTM: (B, Hp) c before the first step
  const float* h_before;       // GRU: (B, H) h before the first step (not null)
  const float* y;              // GRU: (rows, H) the outputs of these steps
  const float* dy;             // (rows, H)
  // (next_batch, G·Hp): the hidden-side gate gradients of the step after the
  // run, or null at the end of the sequences.
  const float* dgates_after;
  // (B, H): dL/dh of each sequence's last state from outside (h_n), added at
  // the step where the sequence ends; null: zero.
  const float* dh_last;
  float* dh;  // (B, Hp): scratch for the recurrent part of dL/dh_t
  // (B, Hp), carried from step to step: LSTM dL/dc (on entry that of the
  // last step, on return that before the first); GRU the part of dL/dh_{t-1}
  // that skips the weights, dh_t·z_t (zero on entry at the sequence's end).
  float* carry;
  float* dgates;         // (rows, G·Hp): dL/d(input-side pre-activations); 0 where masked
  float* dgates_hidden;  // GRU: (rows, G·Hp) the hidden side; else equal to dgates
  int64_t dgates_stride;  // floats between rows of dgates, dgates_hidden and dgates_after (≥ G·Hp)
  // (G·Hp): the run's rows of dgates, and of dgates_hidden, are added to
  // these, which sums the bias gradients; dbias_hidden equals dbias except
  // for the GRU.
  float* dbias;
  float* dbias_hidden;
  ThreadPool* pool;
};

void run_recurrent_forward_steps(const RecurrentForwardSteps& steps);
void run_recurrent_backward_steps(const RecurrentBackwardSteps& steps);

}  // namespace seqk::detail
