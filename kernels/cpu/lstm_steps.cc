// The LSTM recurrence, forward and backward, for each SIMD target. Each
// thread owns a contiguous range of 16-unit blocks for the whole sequence:
// per step it runs the recurrent GEMM tile of its blocks, then their fused
// cell, then waits at the one barrier of the step (the next step's product
// needs every block's h_t).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/lstm_steps.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/lstm_steps.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/gemm-inl.h"
#include "kernels/cpu/lstm_cell-inl.h"

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
}  // namespace

void LstmForwardRecurrence(const detail::LstmForwardSteps& s) {
  const size_t batch = s.batch, hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = detail::kGatesPerUnit * padded;
  const size_t blocks = padded / kUnits;
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float h_block[kUnits];
    for (size_t t = 0; t < static_cast<size_t>(s.steps); ++t) {
      float* gates = s.gates + t * batch * gate_cols;
      const float* h_prev = t == 0 ? s.h_before : s.y + (t - 1) * batch * hidden;
      const float* c_prev = t == 0 ? s.c_before : s.save_gates ? s.cells + (t - 1) * batch * padded : s.cells;
      float* c_next = s.save_gates ? s.cells + t * batch * padded : s.cells;
      float* y = s.y + t * batch * hidden;
      for (size_t u = mine.begin; u < mine.end; ++u) {
        if (h_prev) {
          GemmPanels({h_prev, hidden, 1, batch, s.w_hh, detail::kGatesPerUnit * u, detail::kGatesPerUnit * (u + 1),
                      gates, gate_cols, nullptr, /*accumulate=*/true, /*specialized=*/true});
        }
        const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
        for (size_t b = 0; b < batch; ++b) {
          LstmCellForward(gates + b * gate_cols + u * detail::kBlockGateCols, s.save_gates,
                          c_prev + b * padded + u * kUnits, c_next + b * padded + u * kUnits, h_block);
          std::memcpy(y + b * hidden + u * kUnits, h_block, valid * sizeof(float));
        }
      }
      s.pool->barrier();
    }
  });
}

void LstmBackwardRecurrence(const detail::LstmBackwardSteps& s) {
  const size_t batch = s.batch, hidden = s.hidden, padded = s.padded_hidden;
  const size_t gate_cols = detail::kGatesPerUnit * padded;
  const size_t blocks = padded / kUnits;
  s.pool->run([&](int thread_index, int num_threads) {
    const BlockRange mine = BlocksOfThread(blocks, thread_index, num_threads);
    HWY_ALIGN float dh_block[kUnits];
    for (size_t t = static_cast<size_t>(s.steps); t-- > 0;) {
      const float* gates = s.gates + t * batch * gate_cols;
      float* dgates = s.dgates + t * batch * gate_cols;
      const float* c_t = s.cells + t * batch * padded;
      const float* c_prev = t == 0 ? s.c_before : s.cells + (t - 1) * batch * padded;
      const float* dy = s.dy + t * batch * hidden;
      // The recurrent part of dL/dh_t for this thread's units, in one GEMM so
      // the tiles span several panels; at the end of the sequence s.dh
      // already holds dL/dh_T.
      const float* dgates_after = t + 1 < static_cast<size_t>(s.steps) ? dgates + batch * gate_cols : s.dgates_after;
      if (dgates_after && mine.begin < mine.end) {
        GemmPanels({dgates_after, gate_cols, 1, batch, s.w_hh_t, mine.begin, mine.end, s.dh, padded, nullptr,
                    /*accumulate=*/false, /*specialized=*/true});
      }
      for (size_t u = mine.begin; u < mine.end; ++u) {
        const size_t valid = HWY_MIN(kUnits, hidden - u * kUnits);
        for (size_t b = 0; b < batch; ++b) {
          const float* dh_rec = s.dh + b * padded + u * kUnits;
          const float* dy_b = dy + b * hidden + u * kUnits;
          for (size_t j = 0; j < kUnits; ++j) dh_block[j] = j < valid ? dy_b[j] + dh_rec[j] : 0.0f;
          LstmCellBackward(gates + b * gate_cols + u * detail::kBlockGateCols, c_prev + b * padded + u * kUnits,
                           c_t + b * padded + u * kUnits, dh_block, s.dc + b * padded + u * kUnits,
                           dgates + b * gate_cols + u * detail::kBlockGateCols);
        }
      }
      s.pool->barrier();
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk::detail {

HWY_EXPORT(LstmForwardRecurrence);
HWY_EXPORT(LstmBackwardRecurrence);

void run_lstm_forward_steps(const LstmForwardSteps& steps) { HWY_DYNAMIC_DISPATCH(LstmForwardRecurrence)(steps); }
void run_lstm_backward_steps(const LstmBackwardSteps& steps) {
  HWY_DYNAMIC_DISPATCH(LstmBackwardRecurrence)(steps);
}

}  // namespace seqk::detail
#endif  // HWY_ONCE
