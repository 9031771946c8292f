// The shapes every recurrent-layer and GEMM row is measured at, their flop
// counts and the row names a report script pairs seqk and peer rows by.
#pragma once

#include <cstdint>
#include <string>

#include "seqk/recurrent.h"

namespace seqk_bench {

struct RecurrentShape {
  int64_t batch;   // B
  int64_t input;   // D
  int64_t hidden;  // H
  int64_t steps;   // T
};

// bench/torch_recurrent.py reads this list too.
inline constexpr RecurrentShape kStandardShapes[] = {
    {1, 512, 512, 256},   // latency-bound: one sequence, matrix-vector steps
    {64, 512, 512, 128},  // throughput: a training-sized batch
    {32, 256, 256, 128},  // a smaller layer whose weights stay in L2
};

enum class Pass { kForward, kForwardBackward };

// Layers and directions of a stacked row; {1, false} is a single layer.
struct Stacking {
  int64_t layers = 1;
  bool bidirectional = false;
};

// The stacked rows: two layers, and one bidirectional layer, at the shape
// with D == H (which oneDNN needs for more than one layer).
inline constexpr RecurrentShape kStackShape = {32, 256, 256, 128};
inline constexpr Stacking kStackings[] = {{2, false}, {1, true}};

// 2·T·B·G·H·(D+H) for the forward of one layer and direction (G gates per
// unit); layers past the first read dirs·H inputs. A backward costs about
// twice a forward (gradients of both the inputs and the weights), hence 3x
// for both.
inline double recurrent_flops(seqk::CellKind cell, const RecurrentShape& s, Pass pass, Stacking stacking = {}) {
  const int64_t dirs = stacking.bidirectional ? 2 : 1;
  const double per_unit = 2.0 * s.steps * s.batch * seqk::gates_per_unit(cell) * s.hidden;
  double forward = 0;
  for (int64_t l = 0; l < stacking.layers; ++l) forward += dirs * per_unit * ((l == 0 ? s.input : dirs * s.hidden) + s.hidden);
  return pass == Pass::kForward ? forward : 3 * forward;
}

inline std::string shape_name(const RecurrentShape& s) {
  return "B:" + std::to_string(s.batch) + "/D:" + std::to_string(s.input) + "/H:" + std::to_string(s.hidden) +
         "/T:" + std::to_string(s.steps);
}

// e.g. "lstm_fwd/seqk/B:64/D:512/H:512/T:128", "gru_fwdbwd/onednn/...",
// and for stacks "lstm_l2_fwd/..." (two layers), "lstm_bi_fwd/..." (bidirectional).
inline std::string row_name(seqk::CellKind cell, Pass pass, const std::string& implementation,
                            const RecurrentShape& s, Stacking stacking = {}) {
  std::string family = seqk::to_string(cell);
  if (stacking.layers > 1) family += "_l" + std::to_string(stacking.layers);
  if (stacking.bidirectional) family += "_bi";
  return family + (pass == Pass::kForward ? "_fwd/" : "_fwdbwd/") + implementation + "/" + shape_name(s);
}

}  // namespace seqk_bench
