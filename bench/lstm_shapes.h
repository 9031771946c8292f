// The LSTM shapes every LSTM and GEMM row is measured at, their flop counts
// and the row names a report script pairs seqk and peer rows by.
#pragma once

#include <cstdint>
#include <string>

namespace seqk_bench {

struct LstmShape {
  int64_t batch;   // B
  int64_t input;   // D
  int64_t hidden;  // H
  int64_t steps;   // T
};

inline constexpr LstmShape kStandardLstmShapes[] = {
    {1, 512, 512, 256},   // latency-bound: one sequence, matrix-vector steps
    {64, 512, 512, 128},  // throughput: a training-sized batch
    {32, 256, 256, 128},  // a smaller layer whose weights stay in L2
};

enum class LstmPass { kForward, kForwardBackward };

// 2·T·B·4H·(D+H) for the forward; a backward costs about twice a forward
// (gradients of both the inputs and the weights), hence 3x for both.
inline double lstm_flops(const LstmShape& s, LstmPass pass) {
  const double forward = 2.0 * s.steps * s.batch * 4 * s.hidden * (s.input + s.hidden);
  return pass == LstmPass::kForward ? forward : 3 * forward;
}

inline std::string lstm_shape_name(const LstmShape& s) {
  return "B:" + std::to_string(s.batch) + "/D:" + std::to_string(s.input) + "/H:" + std::to_string(s.hidden) +
         "/T:" + std::to_string(s.steps);
}

// e.g. "lstm_fwd/seqk/B:64/D:512/H:512/T:128".
inline std::string lstm_row_name(LstmPass pass, const std::string& implementation, const LstmShape& s) {
  return std::string(pass == LstmPass::kForward ? "lstm_fwd/" : "lstm_fwdbwd/") + implementation + "/" +
         lstm_shape_name(s);
}

}  // namespace seqk_bench
