// A minGRU / minLSTM problem on random data and its plain fp64 reference:
// the forward as a loop over steps, the backward derived by hand through
// the same loop (not through the scan's coefficients, as the layers do),
// and central finite differences of the loss L = Σ w_y ⊙ y. Shared by
// test_min_rnn.cc and test_vulkan_min_rnn.cc.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "reference.h"
#include "seqk/min_rnn.h"

namespace seqk_test {

struct MinRnnProblem {
  seqk::MinRnnKind kind;
  int64_t T, B, D, H;
  std::vector<float> w, b, x, h0, w_y;  // w_y: loss weights, dL/dy
  bool with_h0 = true;                  // false: h0 is zeros, and given to the layers as empty
  int64_t G() const { return kind == seqk::MinRnnKind::kGru ? 2 : 3; }
  seqk::MinRnnParams params() const {
    return {seqk::ConstView(w.data(), {G() * H, D}), seqk::ConstView(b.data(), {G() * H})};
  }
  seqk::ConstView x_view() const { return seqk::ConstView(x.data(), {T, B, D}); }
  seqk::ConstView h0_view() const { return with_h0 ? seqk::ConstView(h0.data(), {B, H}) : seqk::ConstView(); }
  seqk::ConstView dy_view() const { return seqk::ConstView(w_y.data(), {T, B, H}); }
};

inline MinRnnProblem make_min_rnn_problem(seqk::MinRnnKind kind, int64_t T, int64_t B, int64_t D, int64_t H,
                                          bool with_h0 = true) {
  const float k = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t G = kind == seqk::MinRnnKind::kGru ? 2 : 3;
  return {kind,
          T,
          B,
          D,
          H,
          random_floats(G * H * D, 61, -k, k),
          random_floats(G * H, 62, -k, k),
          random_floats(T * B * D, 65),
          with_h0 ? random_floats(B * H, 66) : std::vector<float>(B * H, 0.0f),
          random_floats(T * B * H, 67),
          with_h0};
}

struct MinRnnReference {
  std::vector<double> y, dx, dh0, dw, db;
};

// y, and the gradients of L = Σ w_y ⊙ y.
inline MinRnnReference reference_min_rnn(const MinRnnProblem& p) {
  const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G();
  const bool gru = p.kind == seqk::MinRnnKind::kGru;
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  // gate[(t·B + b)·G·H + g·H + j]: the activated gates, kept for the backward.
  std::vector<double> gate(T * B * G * H), states((T + 1) * B * H);
  for (int64_t i = 0; i < B * H; ++i) states[i] = p.h0[i];
  MinRnnReference r{std::vector<double>(T * B * H), std::vector<double>(T * B * D), std::vector<double>(B * H),
                    std::vector<double>(G * H * D), std::vector<double>(G * H)};
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < H; ++j) {
        double* g = &gate[(t * B + b) * G * H + j];
        for (int64_t k = 0; k < G; ++k) {
          double sum = p.b[k * H + j];
          for (int64_t d = 0; d < D; ++d) sum += p.w[(k * H + j) * D + d] * p.x[(t * B + b) * D + d];
          g[k * H] = k + 1 < G ? sigmoid(sum) : sum;  // the last gate is the candidate h̃
        }
        const double before = states[(t * B + b) * H + j];
        double& state = states[((t + 1) * B + b) * H + j];
        if (gru) {
          state = (1.0 - g[0]) * before + g[0] * g[H];
        } else {
          const double s = g[0] + g[H];
          state = g[0] / s * before + g[H] / s * g[2 * H];
        }
        r.y[(t * B + b) * H + j] = state;
      }
    }
  }
  // Backward: carry = dL/dh_t from the end, through each step by hand.
  std::vector<double> carry(B * H, 0.0), dpre(G);
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < H; ++j) {
        const double* g = &gate[(t * B + b) * G * H + j];
        double& dh = carry[b * H + j];
        dh += p.w_y[(t * B + b) * H + j];
        const double before = states[(t * B + b) * H + j];
        if (gru) {
          const double z = g[0], candidate = g[H];
          dpre[0] = dh * (candidate - before) * z * (1.0 - z);
          dpre[1] = dh * z;
          dh *= 1.0 - z;
        } else {
          const double f = g[0], i = g[H], candidate = g[2 * H], s = f + i;
          const double d_forget_share = dh * before, d_input_share = dh * candidate;  // of f / s and i / s
          const double df = (d_forget_share * i - d_input_share * i) / (s * s);
          const double di = (d_input_share * f - d_forget_share * f) / (s * s);
          dpre[0] = df * f * (1.0 - f);
          dpre[1] = di * i * (1.0 - i);
          dpre[2] = dh * i / s;
          dh *= f / s;
        }
        for (int64_t k = 0; k < G; ++k) {
          r.db[k * H + j] += dpre[k];
          for (int64_t d = 0; d < D; ++d) {
            r.dw[(k * H + j) * D + d] += dpre[k] * p.x[(t * B + b) * D + d];
            r.dx[(t * B + b) * D + d] += dpre[k] * p.w[(k * H + j) * D + d];
          }
        }
      }
    }
  }
  r.dh0 = carry;
  return r;
}

inline double min_rnn_loss(const MinRnnProblem& p) {
  const std::vector<double> y = reference_min_rnn(p).y;
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += p.w_y[i] * y[i];
  return sum;
}

// dL/dv by central differences, v one of p's vectors.
inline std::vector<double> min_rnn_fd(MinRnnProblem& p, std::vector<float>& v) {
  std::vector<double> grad(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float saved = v[i];
    v[i] = saved + 1e-3f;
    const double plus = min_rnn_loss(p);
    v[i] = saved - 1e-3f;
    const double minus = min_rnn_loss(p);
    v[i] = saved;
    grad[i] = (plus - minus) / (static_cast<double>(saved + 1e-3f) - static_cast<double>(saved - 1e-3f));
  }
  return grad;
}

}  // namespace seqk_test
