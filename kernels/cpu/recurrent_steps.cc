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

// The block's `valid` values of an unpadded (B, H) row, zero beyond.
void LoadBlock(const float* row, size_t valid, float* HWY_RESTRICT block) {
  for (size_t j = 0; j < kUnits; ++j) block[j] = j < valid ? row[j] : 0.0f;
}
}  // namespace

template <CellKind kCell>
void ForwardRecurrence(const detail::RecurrentForwardSteps& s) {
  constexpr size_t kGates = gates_per_unit(kCell);
  const size_t batch = s.batch, hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = kGates * padded;
  const size_t blocks = padded / kUnits;
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float h_block[kUnits];
    HWY_ALIGN float h_prev_block[kUnits];
    for (size_t t = 0; t < static_cast<size_t>(s.steps); ++t) {
      float* gates = s.gates + t * batch * gate_cols;
      const float* h_prev = t == 0 ? s.h_before : s.y + (t - 1) * batch * hidden;
      float* y = s.y + t * batch * hidden;
      for (size_t u = mine.begin; u < mine.end; ++u) {
        // The GRU keeps the hidden side apart: r multiplies its n part.
        if constexpr (kCell == CellKind::kGru) {
          GemmPanels({h_prev, hidden, 1, batch, s.w_hh, kGates * u, kGates * (u + 1), s.hidden_gates, gate_cols,
                      s.hidden_bias, /*accumulate=*/false, /*specialized=*/true});
        } else if (h_prev) {
          GemmPanels({h_prev, hidden, 1, batch, s.w_hh, kGates * u, kGates * (u + 1), gates, gate_cols, nullptr,
                      /*accumulate=*/true, /*specialized=*/true});
        }
        const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
        for (size_t b = 0; b < batch; ++b) {
          float* block_gates = gates + b * gate_cols + u * kGates * kUnits;
          const size_t unit = b * padded + u * kUnits;
          if constexpr (kCell == CellKind::kLstm) {
            const float* c_prev = t == 0 ? s.c_before : s.save ? s.cells + (t - 1) * batch * padded : s.cells;
            float* c_next = s.save ? s.cells + t * batch * padded : s.cells;
            LstmCellForward(block_gates, s.save, c_prev + unit, c_next + unit, h_block);
          } else if constexpr (kCell == CellKind::kGru) {
            LoadBlock(h_prev + b * hidden + u * kUnits, valid, h_prev_block);
            float* hn_saved = s.save ? s.cells + t * batch * padded + unit : nullptr;
            GruCellForward(block_gates, s.hidden_gates + b * gate_cols + u * kGates * kUnits, s.save, h_prev_block,
                           hn_saved, h_block);
          } else {
            RnnCellForward<kCell == CellKind::kRnnRelu>(block_gates, s.save, h_block);
          }
          std::memcpy(y + b * hidden + u * kUnits, h_block, valid * sizeof(float));
        }
      }
      s.pool->barrier();
    }
  });
}

template <CellKind kCell>
void BackwardRecurrence(const detail::RecurrentBackwardSteps& s) {
  constexpr size_t kGates = gates_per_unit(kCell);
  const size_t batch = s.batch, hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = kGates * padded;
  const size_t blocks = padded / kUnits;
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float dh_block[kUnits];
    HWY_ALIGN float h_prev_block[kUnits];
    for (size_t t = static_cast<size_t>(s.steps); t-- > 0;) {
      const float* gates = s.gates + t * batch * gate_cols;
      float* dgates = s.dgates + t * batch * gate_cols;
      float* dgates_hidden = s.dgates_hidden + t * batch * gate_cols;
      const float* dy = s.dy + t * batch * hidden;
      // The recurrent part of dL/dh_t for this thread's units, in one GEMM so
      // the tiles span several panels; at the end of the sequence s.dh
      // already holds dL/dh_T.
      const float* dgates_after =
          t + 1 < static_cast<size_t>(s.steps) ? dgates_hidden + batch * gate_cols : s.dgates_after;
      if (dgates_after && mine.begin < mine.end) {
        GemmPanels({dgates_after, gate_cols, 1, batch, s.w_hh_t, mine.begin, mine.end, s.dh, padded, nullptr,
                    /*accumulate=*/false, /*specialized=*/true});
      }
      for (size_t u = mine.begin; u < mine.end; ++u) {
        const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
        for (size_t b = 0; b < batch; ++b) {
          const size_t unit = b * padded + u * kUnits, gate = b * gate_cols + u * kGates * kUnits;
          const float* dh_rec = s.dh + unit;
          const float* dy_b = dy + b * hidden + u * kUnits;
          for (size_t j = 0; j < kUnits; ++j) dh_block[j] = j < valid ? dy_b[j] + dh_rec[j] : 0.0f;
          if constexpr (kCell == CellKind::kLstm) {
            const float* c_prev = t == 0 ? s.c_before : s.cells + (t - 1) * batch * padded;
            LstmCellBackward(gates + gate, c_prev + unit, s.cells + t * batch * padded + unit, dh_block,
                             s.carry + unit, dgates + gate);
          } else if constexpr (kCell == CellKind::kGru) {
            for (size_t j = 0; j < kUnits; ++j) dh_block[j] += s.carry[unit + j];
            const float* h_prev = t == 0 ? s.h_before : s.y + (t - 1) * batch * hidden;
            LoadBlock(h_prev + b * hidden + u * kUnits, valid, h_prev_block);
            GruCellBackward(gates + gate, s.cells + t * batch * padded + unit, h_prev_block, dh_block, dgates + gate,
                            dgates_hidden + gate, s.carry + unit);
          } else {
            RnnCellBackward<kCell == CellKind::kRnnRelu>(gates + gate, dh_block, dgates + gate);
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
