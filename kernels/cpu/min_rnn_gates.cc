// The min-RNNs' elementwise gate math for each SIMD target, split over the
// thread pool by rows: forward from the GEMM's pre-activations to the scan's
// coefficient and input, backward from the scan's gradients (and the same
// pre-activations, the gates recomputed) to the pre-activations' gradients
// (seqk/min_rnn.h has the formulas).
#include "kernels/cpu/min_rnn_gates.h"

#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/min_rnn_gates.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/recurrent_cells-inl.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {

namespace {

// body(row) for every row, the rows split evenly over the pool's threads.
template <class Body>
void ForRows(const detail::MinGateRows& s, Body&& body) {
  s.pool->run([&](int thread_index, int num_threads) {
    const size_t rows = s.rows, t = static_cast<size_t>(thread_index), n = static_cast<size_t>(num_threads);
    for (size_t r = rows * t / n; r < rows * (t + 1) / n; ++r) body(r);
  });
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|); e^-|x| stops at
// e^-80 (Highway's Exp is valid above -104), an absolute error below 2e-35.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Softplus(D d, V x) {
  const V e = hn::Exp(d, hn::Max(hn::Neg(hn::Abs(x)), hn::Set(d, -80.0f)));
  return hn::Add(hn::Max(x, hn::Zero(d)), hn::Log1p(d, e));
}

float softplus(float x) { return std::max(x, 0.0f) + std::log1p(std::exp(-std::abs(x))); }
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// minLSTM's u = log f − log i = softplus(−k_i) − softplus(−k_f) from the
// gates' pre-activations, so that a = f / (f + i) = σ(u) stays accurate
// where f and i both underflow (the paper's log-space normalisation).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V LogRatio(D d, V k_f, V k_i) {
  return hn::Sub(Softplus(d, hn::Neg(k_i)), Softplus(d, hn::Neg(k_f)));
}
float log_ratio(float k_f, float k_i) { return softplus(-k_i) - softplus(-k_f); }

}  // namespace

void MinGatesForward(const detail::MinGateRows& s) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), H = s.hidden, G = s.lstm ? 3 : 2;
  ForRows(s, [&](size_t r) {
    const float* pre = s.pre + r * G * H;
    float* a = s.coefficient + r * H;
    float* b = s.input + r * H;
    size_t j = 0;
    for (; j + lanes <= H; j += lanes) {
      if (!s.lstm) {
        const auto z = FastSigmoid(d, hn::LoadU(d, pre + j)), candidate = hn::LoadU(d, pre + H + j);
        hn::StoreU(hn::Sub(hn::Set(d, 1.0f), z), d, a + j);
        hn::StoreU(hn::Mul(z, candidate), d, b + j);
      } else {
        const auto u = LogRatio(d, hn::LoadU(d, pre + j), hn::LoadU(d, pre + H + j));
        hn::StoreU(FastSigmoid(d, u), d, a + j);
        hn::StoreU(hn::Mul(FastSigmoid(d, hn::Neg(u)), hn::LoadU(d, pre + 2 * H + j)), d, b + j);
      }
    }
    for (; j < H; ++j) {
      if (!s.lstm) {
        const float z = sigmoid(pre[j]);
        a[j] = 1.0f - z;
        b[j] = z * pre[H + j];
      } else {
        const float u = log_ratio(pre[j], pre[H + j]);
        a[j] = sigmoid(u);
        b[j] = sigmoid(-u) * pre[2 * H + j];
      }
    }
  });
}

// minGRU: dz = db ⊙ h̃ − da, dh̃ = db ⊙ z, dz through σ.
// minLSTM: with a = σ(u), u = log f − log i as above, and ā = 1 − a = σ(−u):
// du = (da − db ⊙ h̃) ⊙ a ⊙ ā, and du/dk_f = σ(−k_f), du/dk_i = −σ(−k_i);
// dh̃ = db ⊙ ā.
void MinGatesBackward(const detail::MinGateRows& s) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), H = s.hidden, G = s.lstm ? 3 : 2;
  const auto one = hn::Set(d, 1.0f);
  ForRows(s, [&](size_t r) {
    const float* pre = s.pre + r * G * H;
    const float* da = s.d_coefficient + r * H;
    const float* db = s.d_input + r * H;
    float* dg = s.dpre + r * G * H;
    size_t j = 0;
    for (; j + lanes <= H; j += lanes) {
      const auto d_coef = hn::LoadU(d, da + j), d_input = hn::LoadU(d, db + j);
      if (!s.lstm) {
        const auto z = FastSigmoid(d, hn::LoadU(d, pre + j));
        const auto dz = hn::MulSub(d_input, hn::LoadU(d, pre + H + j), d_coef);
        hn::StoreU(hn::Mul(dz, hn::Mul(z, hn::Sub(one, z))), d, dg + j);
        hn::StoreU(hn::Mul(d_input, z), d, dg + H + j);
      } else {
        const auto k_f = hn::LoadU(d, pre + j), k_i = hn::LoadU(d, pre + H + j);
        const auto u = LogRatio(d, k_f, k_i);
        const auto a = FastSigmoid(d, u), a_rest = FastSigmoid(d, hn::Neg(u));
        const auto du = hn::Mul(hn::NegMulAdd(d_input, hn::LoadU(d, pre + 2 * H + j), d_coef), hn::Mul(a, a_rest));
        hn::StoreU(hn::Mul(du, FastSigmoid(d, hn::Neg(k_f))), d, dg + j);
        hn::StoreU(hn::Neg(hn::Mul(du, FastSigmoid(d, hn::Neg(k_i)))), d, dg + H + j);
        hn::StoreU(hn::Mul(d_input, a_rest), d, dg + 2 * H + j);
      }
    }
    for (; j < H; ++j) {
      if (!s.lstm) {
        const float z = sigmoid(pre[j]);
        dg[j] = (db[j] * pre[H + j] - da[j]) * z * (1.0f - z);
        dg[H + j] = db[j] * z;
      } else {
        const float u = log_ratio(pre[j], pre[H + j]), a = sigmoid(u), a_rest = sigmoid(-u);
        const float du = (da[j] - db[j] * pre[2 * H + j]) * a * a_rest;
        dg[j] = du * sigmoid(-pre[j]);
        dg[H + j] = -du * sigmoid(-pre[H + j]);
        dg[2 * H + j] = db[j] * a_rest;
      }
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk::detail {

HWY_EXPORT(MinGatesForward);
HWY_EXPORT(MinGatesBackward);

void min_gates_forward(const MinGateRows& rows) { HWY_DYNAMIC_DISPATCH(MinGatesForward)(rows); }
void min_gates_backward(const MinGateRows& rows) { HWY_DYNAMIC_DISPATCH(MinGatesBackward)(rows); }

}  // namespace seqk::detail
#endif  // HWY_ONCE
