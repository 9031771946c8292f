// The min-RNNs' elementwise gate math for each SIMD target, split over the
// thread pool by rows: forward from the GEMM's pre-activations to the scan's
// coefficient and input, backward from the scan's gradients to the
// pre-activations' (seqk/min_rnn.h has the formulas).
#include "kernels/cpu/min_rnn_gates.h"

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

}  // namespace

void MinGatesForward(const detail::MinGateRows& s) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), H = s.hidden, G = s.lstm ? 3 : 2;
  ForRows(s, [&](size_t r) {
    const float* pre = s.gates + r * G * H;
    float* g = s.activated + r * G * H;
    float* a = s.a + r * H;
    float* b = s.b + r * H;
    size_t j = 0;
    for (; j + lanes <= H; j += lanes) {
      if (!s.lstm) {
        const auto z = FastSigmoid(d, hn::LoadU(d, pre + j)), candidate = hn::LoadU(d, pre + H + j);
        hn::StoreU(z, d, g + j);
        hn::StoreU(candidate, d, g + H + j);
        hn::StoreU(hn::Sub(hn::Set(d, 1.0f), z), d, a + j);
        hn::StoreU(hn::Mul(z, candidate), d, b + j);
      } else {
        const auto f = FastSigmoid(d, hn::LoadU(d, pre + j)), i = FastSigmoid(d, hn::LoadU(d, pre + H + j));
        const auto candidate = hn::LoadU(d, pre + 2 * H + j);
        hn::StoreU(f, d, g + j);
        hn::StoreU(i, d, g + H + j);
        hn::StoreU(candidate, d, g + 2 * H + j);
        const auto inv = hn::Div(hn::Set(d, 1.0f), hn::Add(f, i));
        hn::StoreU(hn::Mul(f, inv), d, a + j);
        hn::StoreU(hn::Mul(hn::Mul(i, inv), candidate), d, b + j);
      }
    }
    for (; j < H; ++j) {
      auto sigmoid = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
      if (!s.lstm) {
        g[j] = sigmoid(pre[j]);
        g[H + j] = pre[H + j];
        a[j] = 1.0f - g[j];
        b[j] = g[j] * g[H + j];
      } else {
        g[j] = sigmoid(pre[j]);
        g[H + j] = sigmoid(pre[H + j]);
        g[2 * H + j] = pre[2 * H + j];
        const float sum = g[j] + g[H + j];
        a[j] = g[j] / sum;
        b[j] = g[H + j] / sum * g[2 * H + j];
      }
    }
  });
}

void MinGatesBackward(const detail::MinGateRows& s) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d), H = s.hidden, G = s.lstm ? 3 : 2;
  const auto one = hn::Set(d, 1.0f);
  ForRows(s, [&](size_t r) {
    const float* g = s.gates + r * G * H;
    const float* da = s.a + r * H;  // the scan's gradients: of its coefficient
    const float* db = s.b + r * H;  // and of its input
    float* dg = s.dpre + r * G * H;
    size_t j = 0;
    for (; j + lanes <= H; j += lanes) {
      const auto d_coef = hn::LoadU(d, da + j), d_input = hn::LoadU(d, db + j);
      if (!s.lstm) {
        const auto z = hn::LoadU(d, g + j);
        const auto dz = hn::MulSub(d_input, hn::LoadU(d, g + H + j), d_coef);
        hn::StoreU(hn::Mul(dz, hn::Mul(z, hn::Sub(one, z))), d, dg + j);
        hn::StoreU(hn::Mul(d_input, z), d, dg + H + j);
      } else {
        const auto f = hn::LoadU(d, g + j), i = hn::LoadU(d, g + H + j), candidate = hn::LoadU(d, g + 2 * H + j);
        const auto inv = hn::Div(one, hn::Add(f, i));
        const auto inv2 = hn::Mul(inv, inv);
        const auto d_i_norm = hn::Mul(d_input, candidate);
        const auto df = hn::Mul(hn::Mul(hn::Sub(d_coef, d_i_norm), i), inv2);
        const auto di = hn::Mul(hn::Mul(hn::Sub(d_i_norm, d_coef), f), inv2);
        hn::StoreU(hn::Mul(df, hn::Mul(f, hn::Sub(one, f))), d, dg + j);
        hn::StoreU(hn::Mul(di, hn::Mul(i, hn::Sub(one, i))), d, dg + H + j);
        hn::StoreU(hn::Mul(d_input, hn::Mul(i, inv)), d, dg + 2 * H + j);
      }
    }
    for (; j < H; ++j) {
      if (!s.lstm) {
        const float z = g[j];
        dg[j] = (db[j] * g[H + j] - da[j]) * z * (1.0f - z);
        dg[H + j] = db[j] * z;
      } else {
        const float f = g[j], i = g[H + j], sum = f + i, d_i_norm = db[j] * g[2 * H + j];
        const float df = (da[j] - d_i_norm) * i / (sum * sum), di = (d_i_norm - da[j]) * f / (sum * sum);
        dg[j] = df * f * (1.0f - f);
        dg[H + j] = di * i * (1.0f - i);
        dg[2 * H + j] = db[j] * i / sum;
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
