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

// bench/torch_lstm.py reads this list too.
inline constexpr RecurrentShape kStandardShapes[] = {
    {1, 512, 512, 256},   // latency-bound: one sequence, matrix-vector steps
    {64, 512, 512, 128},  // throughput: a training-sized batch
    {32, 256, 256, 128},  // a smaller layer whose weights stay in L2
};

enum class Pass { kForward, kForwardBackward };

// 2·T·B·G·H·(D+H) for the forward (G gates per unit); a backward costs about
// twice a forward (gradients of both the inputs and the weights), hence 3x
// for both.
inline double recurrent_flops(seqk::CellKind cell, const RecurrentShape& s, Pass pass) {
  const double forward = 2.0 * s.steps * s.batch * seqk::gates_per_unit(cell) * s.hidden * (s.input + s.hidden);
  return pass == Pass::kForward ? forward : 3 * forward;
}

inline std::string shape_name(const RecurrentShape& s) {
  return "B:" + std::to_string(s.batch) + "/D:" + std::to_string(s.input) + "/H:" + std::to_string(s.hidden) +
         "/T:" + std::to_string(s.steps);
}

// e.g. "lstm_fwd/seqk/B:64/D:512/H:512/T:128", "gru_fwdbwd/onednn/...".
inline std::string row_name(seqk::CellKind cell, Pass pass, const std::string& implementation,
                            const RecurrentShape& s) {
  return std::string(seqk::to_string(cell)) + (pass == Pass::kForward ? "_fwd/" : "_fwdbwd/") + implementation +
         "/" + shape_name(s);
}

}  // namespace seqk_bench
