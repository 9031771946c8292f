// Plain fp64 references the kernel tests compare against, plus random-fill
// and comparison helpers. Everything here is written for clarity, not speed:
// straightforward loops with double accumulation, so that a disagreement
// points at the kernel under test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "seqk/recurrent.h"
#include "seqk/simd.h"
#include "seqk/tensor.h"

namespace seqk_test {

// ---------------------------------------------------------------------------
// Random data (fixed seeds: every run sees the same numbers).

// n floats uniform in [lo, hi), from a generator seeded with `seed`.
std::vector<float> random_floats(std::size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

std::vector<double> to_double(const std::vector<float>& v);

// A float that no kernel produces from the random inputs used here; written
// into buffers that must stay untouched and compared bit for bit.
inline constexpr float kSentinel = -12345.6789f;

// True when every element of `v` in [begin, end) is bit-identical to kSentinel.
bool all_sentinel(const float* v, std::size_t n);

// ---------------------------------------------------------------------------
// GEMM: C (M, N) = A (M, K) · B (N, K)ᵀ (+ bias) (+ C_in), in double.

struct GemmReference {
  std::vector<double> c;          // (M, N) row-major
  std::vector<double> magnitude;  // (M, N): Σ_k |a_ik·b_jk| + |bias_j| + |c_in_ij|
};

// `a` and `b` may have any strides; `b_order` (if non-null) selects rows of b
// as PackedMatrix(b, order) does (row r = b[order[r]], zero where < 0).
// `c_in` (M, N row-major, may be null) is added when accumulating.
GemmReference reference_gemm(seqk::ConstView a, seqk::ConstView b, const float* bias, const double* c_in,
                             const std::vector<int64_t>* b_order = nullptr);

// ---------------------------------------------------------------------------
// Recurrent layers: LSTM, GRU and vanilla RNN in PyTorch's formulation
// (seqk/recurrent.h), two bias vectors each.

struct RefRecurrentParams {
  seqk::CellKind cell = seqk::CellKind::kLstm;
  int64_t D = 0, H = 0;
  std::vector<double> w_ih;  // (G·H, D), G = gates_per_unit(cell)
  std::vector<double> w_hh;  // (G·H, H)
  std::vector<double> b_ih;  // (G·H)
  std::vector<double> b_hh;  // (G·H)
};

struct RefRecurrentResult {
  std::vector<double> y;         // (T, B, H)
  std::vector<double> h_n, c_n;  // (B, H)
};

// x (T, B, D); h0, c0 (B, H) each, or empty for zeros.
// c0 and c_n only for the LSTM (empty otherwise).
RefRecurrentResult reference_recurrent_forward(const RefRecurrentParams& p, const std::vector<double>& x, int64_t T,
                                               int64_t B, const std::vector<double>& h0, const std::vector<double>& c0);

// The scalar loss used for gradient checks:
//   L = Σ w_y ⊙ y + Σ w_h ⊙ h_n + Σ w_c ⊙ c_n
// so dL/dy = w_y, dL/dh_n = w_h, dL/dc_n = w_c (which is what the analytic
// backward is fed). Empty weight vectors count as zeros.
struct LossWeights {
  std::vector<double> w_y, w_h, w_c;
};
double reference_recurrent_loss(const RefRecurrentParams& p, const std::vector<double>& x, int64_t T, int64_t B,
                           const std::vector<double>& h0, const std::vector<double>& c0, const LossWeights& w);

// Central finite difference of the loss with respect to every element of
// *target (which must be one of p's vectors, x, h0 or c0): element i gets
// (L(v_i + step) - L(v_i - step)) / (2·step), everything in double.
std::vector<double> finite_difference(std::vector<double>* target, RefRecurrentParams& p, std::vector<double>& x,
                                      int64_t T, int64_t B, std::vector<double>& h0, std::vector<double>& c0,
                                      const LossWeights& w, double step);

// ---------------------------------------------------------------------------
// Comparison.

// Compares got[i] with want[i] for i < n; element i passes when
// |got - want| <= tol[i] (tol has n entries) and got is finite. On failure
// the message names `what`, the number of bad elements, the worst one (index,
// got, want, tolerance) and the first one.
testing::AssertionResult close_elementwise(const char* what, const float* got, const double* want,
                                           const double* tol, std::size_t n);
// Same with one tolerance for all elements.
testing::AssertionResult close_uniform(const char* what, const float* got, const double* want, double tol,
                                       std::size_t n);

double max_abs(const std::vector<double>& v);

// ---------------------------------------------------------------------------
// SIMD targets as a test parameter.

// "AVX3_ZEN4" -> "AVX3_ZEN4"; anything not [A-Za-z0-9_] becomes '_'.
std::string target_test_name(const testing::TestParamInfo<seqk::SimdTarget>& info);

// Pins dispatch to GetParam()'s target for the duration of each test.
class TargetTest : public testing::TestWithParam<seqk::SimdTarget> {
 protected:
  void SetUp() override;
  void TearDown() override;

 private:
  seqk::ScopedSimdTarget* scope_ = nullptr;
};

}  // namespace seqk_test

// Also lets gtest print the parameter of a failing test readably.
namespace seqk {
void PrintTo(const SimdTarget& target, std::ostream* os);
}  // namespace seqk
