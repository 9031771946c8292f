// The recurrence of every cell, forward and backward, for each SIMD target.
// Each thread owns a contiguous range of 16-unit blocks for the whole
// sequence: per step it runs the recurrent GEMM tile of its blocks, then
// their fused cell, then waits at the one barrier of the step (the next
// step's product needs every block's h_t). The cell is a template parameter,
// so each cell gets its own compiled loop and nothing is decided per block.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/recurrent_steps.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/recurrent_steps.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/gemm-inl.h"
#include "kernels/cpu/recurrent_cells-inl.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {

namespace {
struct BlockRange {
  size_t begin, end;
};
BlockRange BlocksOfThread(size_t blocks, int thread_index, int num_threads) {
  const size_t t = static_cast<size_t>(thread_index), n = static_cast<size_t>(num_threads);
  return {blocks * t / n, blocks * (t + 1) / n};
}

// The block's `valid` values of an unpadded (B, H) row, zero beyond: the
// row itself where the block is full, else a padded copy in `scratch`.
const float* BlockOf(const float* row, size_t valid, float* HWY_RESTRICT scratch) {
  if (valid == kUnits) return row;
  for (size_t j = 0; j < kUnits; ++j) scratch[j] = j < valid ? row[j] : 0.0f;
  return scratch;
}

// dh = dy + recurrent + last over a block of units, each of the last two
// optional (null), for the block's `valid` units, zero beyond. A full block
// goes by vectors: this runs for every (step, sequence, block) of the
// backward, and its loads of dy miss the cache.
void SumBlock(const float* dy, const float* recurrent, const float* last, size_t valid, float* HWY_RESTRICT dh) {
  if (valid == kUnits) {
    const hn::ScalableTag<float> d;
    for (size_t j = 0; j < kUnits; j += hn::Lanes(d)) {
      auto sum = hn::LoadU(d, dy + j);
      if (recurrent) sum = hn::Add(sum, hn::LoadU(d, recurrent + j));
      if (last) sum = hn::Add(sum, hn::LoadU(d, last + j));
      hn::Store(sum, d, dh + j);
    }
    return;
  }
  for (size_t j = 0; j < kUnits; ++j)
    dh[j] = j < valid ? dy[j] + (recurrent ? recurrent[j] : 0.0f) + (last ? last[j] : 0.0f) : 0.0f;
}

// Row b at step t of the run is past the end of its padded sequence.
bool Masked(const detail::StepRows& layout, size_t t, size_t b) {
  return layout.lengths && layout.first_step + static_cast<int64_t>(t) >= layout.lengths[b];
}

// Step t is the last one of row b's sequence.
bool LastStep(const detail::StepRows& layout, size_t steps, size_t t, size_t b) {
  if (layout.lengths) return layout.first_step + static_cast<int64_t>(t) + 1 == layout.lengths[b];
  const int64_t next = t + 1 < steps ? layout.batch(static_cast<int64_t>(t) + 1) : layout.next_batch;
  return static_cast<int64_t>(b) >= next;
}

// Starts fetching every line the backward cell (t, b, u) reads or writes.
template <CellKind kCell>
HWY_INLINE void PrefetchBackwardCell(const detail::RecurrentBackwardSteps& s, size_t t, size_t b, size_t u) {
  constexpr size_t kGates = gates_per_unit(kCell);
  const size_t hidden = s.hidden, padded = s.padded_hidden, dstride = static_cast<size_t>(s.dgates_stride);
  const size_t row = s.layout.rows[t] + b, gate = u * kGates * kUnits;
  for (size_t line = 0; line < kGates * kUnits; line += kFloatsPerLine) {
    hwy::Prefetch(s.gates + row * kGates * padded + gate + line);
    hwy::Prefetch(s.dgates + row * dstride + gate + line);
    if (kCell == CellKind::kGru) hwy::Prefetch(s.dgates_hidden + row * dstride + gate + line);
  }
  hwy::Prefetch(s.dy + row * hidden + u * kUnits);
  if (s.cells) hwy::Prefetch(s.cells + row * padded + u * kUnits);
  const size_t before = t == 0 ? b : s.layout.rows[t - 1] + b;  // row b of the step before, or of the state before
  if (kCell == CellKind::kLstm) hwy::Prefetch((t == 0 ? s.c_before : s.cells) + before * padded + u * kUnits);
  if (kCell == CellKind::kGru) hwy::Prefetch((t == 0 ? s.h_before : s.y) + before * hidden + u * kUnits);
}
}  // namespace

template <CellKind kCell>
void ForwardRecurrence(const detail::RecurrentForwardSteps& s) {
  constexpr size_t kGates = gates_per_unit(kCell);
  const size_t hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = kGates * padded;
  const size_t blocks = padded / kUnits;
  const detail::BPanels w_hh = detail::PanelsOf(*s.w_hh);
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float h_block[kUnits];
    HWY_ALIGN float h_prev_block[kUnits];
    for (size_t t = 0; t < static_cast<size_t>(s.steps); ++t) {
      const size_t rows = s.layout.rows[t], step_batch = s.layout.batch(t);
      float* gates = s.gates + rows * gate_cols;
      // The previous step's rows start with this step's sequences.
      const float* h_prev = t == 0 ? s.h_before : s.y + s.layout.rows[t - 1] * hidden;
      float* y = s.y + rows * hidden;
      // LSTM: c by row; with save one set per step, else one set updated in place.
      const float* c_prev = t == 0 ? s.c_before : s.save ? s.cells + s.layout.rows[t - 1] * padded : s.cells;
      float* c_next = s.save ? s.cells + rows * padded : s.cells;
      for (size_t u = mine.begin; u < mine.end; ++u) {
        // The lines the block's cells write (y, and the saved state) are
        // cold: fetched now, they arrive while the GEMM runs.
        for (size_t b = 0; b < step_batch; ++b) {
          hwy::Prefetch(y + b * hidden + u * kUnits);
          if (s.save && s.cells) hwy::Prefetch(s.cells + rows * padded + b * padded + u * kUnits);
        }
        // The GRU keeps the hidden side apart: r multiplies its n part.
        if constexpr (kCell == CellKind::kGru) {
          GemmPanels({h_prev, hidden, 1, step_batch, w_hh, kGates * u, kGates * (u + 1), s.hidden_gates, gate_cols,
                      s.hidden_bias, /*accumulate=*/false, /*specialized=*/true});
        } else if (h_prev) {
          GemmPanels({h_prev, hidden, 1, step_batch, w_hh, kGates * u, kGates * (u + 1), gates, gate_cols, nullptr,
                      /*accumulate=*/true, /*specialized=*/true});
        }
        const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
        for (size_t b = 0; b < step_batch; ++b) {
          float* block_gates = gates + b * gate_cols + u * kGates * kUnits;
          const size_t unit = b * padded + u * kUnits;
          if (Masked(s.layout, t, b)) {
            // Past the sequence's end: no output, the state stays as it was.
            if (kCell == CellKind::kLstm && c_next != c_prev) std::memcpy(c_next + unit, c_prev + unit, kUnits * sizeof(float));
            std::memset(y + b * hidden + u * kUnits, 0, valid * sizeof(float));
            continue;
          }
          // A full block's outputs go straight to y; a partial one's past H
          // would overrun the row.
          float* y_block = y + b * hidden + u * kUnits;
          float* h_out = valid == kUnits ? y_block : h_block;
          if constexpr (kCell == CellKind::kLstm) {
            LstmCellForward(block_gates, s.save, c_prev + unit, c_next + unit, h_out);
          } else if constexpr (kCell == CellKind::kGru) {
            const float* h_prev_b = BlockOf(h_prev + b * hidden + u * kUnits, valid, h_prev_block);
            float* hn_saved = s.save ? s.cells + rows * padded + unit : nullptr;
            GruCellForward(block_gates, s.hidden_gates + b * gate_cols + u * kGates * kUnits, s.save, h_prev_b,
                           hn_saved, h_out);
          } else {
            RnnCellForward<kCell == CellKind::kRnnRelu>(block_gates, s.save, h_out);
          }
          if (h_out == h_block) std::memcpy(y_block, h_block, valid * sizeof(float));
        }
      }
      s.pool->barrier();
    }
  });
}

template <CellKind kCell>
void BackwardRecurrence(const detail::RecurrentBackwardSteps& s) {
  constexpr size_t kGates = gates_per_unit(kCell);
  const size_t hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = kGates * padded, dstride = static_cast<size_t>(s.dgates_stride);
  const size_t blocks = padded / kUnits;
  const detail::BPanels w_hh_t = detail::PanelsOf(*s.w_hh_t);
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float dh_block[kUnits];
    HWY_ALIGN float h_prev_block[kUnits];
    const size_t steps = static_cast<size_t>(s.steps);
    for (size_t t = steps; t-- > 0;) {
      const size_t rows = s.layout.rows[t], step_batch = s.layout.batch(t);
      const float* gates = s.gates + rows * gate_cols;
      float* dgates = s.dgates + rows * dstride;
      float* dgates_hidden = s.dgates_hidden + rows * dstride;
      const float* dy = s.dy + rows * hidden;
      // The recurrent part of dL/dh_t, then the cells, a group of blocks at a
      // time: a group spans the panels of one GEMM tile, and while its GEMM
      // runs, the lines its cells need (fetched by the group before, from
      // memory the forward wrote long ago) arrive. Only the sequences that
      // run on at t + 1 (a prefix of this step's) get a recurrent part.
      const bool more = t + 1 < steps;
      const float* dgates_after = more ? s.dgates_hidden + s.layout.rows[t + 1] * dstride : s.dgates_after;
      const size_t after_batch = more ? s.layout.batch(t + 1) : s.layout.next_batch;
      const float* c_prev = t == 0 ? s.c_before : s.cells ? s.cells + s.layout.rows[t - 1] * padded : nullptr;
      const float* h_prev = t == 0 ? s.h_before : s.y + s.layout.rows[t - 1] * hidden;
      for (size_t group = mine.begin; group < mine.end; group += kTilePanels) {
        const size_t group_end = HWY_MIN(mine.end, group + kTilePanels);
        if (dgates_after && after_batch > 0) {
          GemmPanels({dgates_after, dstride, 1, after_batch, w_hh_t, group, group_end, s.dh, padded, nullptr,
                      /*accumulate=*/false, /*specialized=*/true});
        }
        for (size_t u = group; u < group_end; ++u) {
          const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
          // This thread owns the block's bias sums.
          float* dbias = s.dbias + u * kGates * kUnits;
          float* dbias_hidden = s.dbias_hidden + u * kGates * kUnits;
          for (size_t b = 0; b < step_batch; ++b) {
            const size_t unit = b * padded + u * kUnits, gate = b * gate_cols + u * kGates * kUnits;
            const size_t dgate = b * dstride + u * kGates * kUnits;
            // The cell a group on, in this step or past its end in the step
            // before: the same place in the order (block, row) of the cells.
            if (u + kTilePanels < mine.end) {
              PrefetchBackwardCell<kCell>(s, t, b, u + kTilePanels);
            } else if (t > 0) {
              const size_t order = (u + kTilePanels - mine.end) * step_batch + b;
              const size_t batch_before = static_cast<size_t>(s.layout.batch(static_cast<int64_t>(t) - 1));
              const size_t ahead_u = mine.begin + order / batch_before;  // past mine.end with fewer than a group
              if (ahead_u < mine.end) PrefetchBackwardCell<kCell>(s, t - 1, order % batch_before, ahead_u);
            }
            if (Masked(s.layout, t, b)) {
              // Past the sequence's end nothing flowed forward; the carried
              // gradients pass through to its last step untouched.
              std::memset(dgates + dgate, 0, kGates * kUnits * sizeof(float));
              if (kCell == CellKind::kGru) std::memset(dgates_hidden + dgate, 0, kGates * kUnits * sizeof(float));
              continue;
            }
            const float* dy_b = dy + b * hidden + u * kUnits;
            const bool recurrent = dgates_after && b < after_batch;
            const float* dh_last =
                s.dh_last && LastStep(s.layout, steps, t, b) ? s.dh_last + b * hidden + u * kUnits : nullptr;
            SumBlock(dy_b, recurrent ? s.dh + unit : nullptr, dh_last, valid, dh_block);
            if constexpr (kCell == CellKind::kLstm) {
              LstmCellBackward(gates + gate, c_prev + unit, s.cells + rows * padded + unit, dh_block, s.carry + unit,
                               dgates + dgate, dbias);
            } else if constexpr (kCell == CellKind::kGru) {
              for (size_t j = 0; j < kUnits; ++j) dh_block[j] += s.carry[unit + j];
              const float* h_prev_b = BlockOf(h_prev + b * hidden + u * kUnits, valid, h_prev_block);
              GruCellBackward(gates + gate, s.cells + rows * padded + unit, h_prev_b, dh_block, dgates + dgate,
                              dgates_hidden + dgate, s.carry + unit, dbias, dbias_hidden);
            } else {
              RnnCellBackward<kCell == CellKind::kRnnRelu>(gates + gate, dh_block, dgates + dgate, dbias);
            }
          }
        }
      }
      s.pool->barrier();
    }
  });
}

void RecurrentForward(const detail::RecurrentForwardSteps& s) {
  switch (s.cell) {
    case CellKind::kLstm: return ForwardRecurrence<CellKind::kLstm>(s);
    case CellKind::kGru: return ForwardRecurrence<CellKind::kGru>(s);
    case CellKind::kRnnTanh: return ForwardRecurrence<CellKind::kRnnTanh>(s);
    case CellKind::kRnnRelu: return ForwardRecurrence<CellKind::kRnnRelu>(s);
  }
}

void RecurrentBackward(const detail::RecurrentBackwardSteps& s) {
  switch (s.cell) {
    case CellKind::kLstm: return BackwardRecurrence<CellKind::kLstm>(s);
    case CellKind::kGru: return BackwardRecurrence<CellKind::kGru>(s);
    case CellKind::kRnnTanh: return BackwardRecurrence<CellKind::kRnnTanh>(s);
    case CellKind::kRnnRelu: return BackwardRecurrence<CellKind::kRnnRelu>(s);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk::detail {

HWY_EXPORT(RecurrentForward);
HWY_EXPORT(RecurrentBackward);

void run_recurrent_forward_steps(const RecurrentForwardSteps& steps) { HWY_DYNAMIC_DISPATCH(RecurrentForward)(steps); }
void run_recurrent_backward_steps(const RecurrentBackwardSteps& steps) {
  HWY_DYNAMIC_DISPATCH(RecurrentBackward)(steps);
}

}  // namespace seqk::detail
#endif  // HWY_ONCE
