// minGRU and minLSTM: forward against an fp64 loop of their recurrences,
// backward against central finite differences of that loop, for every input
// and parameter; and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/min_rnn.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::MinRnnKind;
using seqk::View;

struct Problem {
  MinRnnKind kind;
  int64_t T, B, D, H;
  std::vector<float> w, b, x, h0, w_y;  // w_y: loss weights, L = Σ w_y ⊙ y
  int64_t G() const { return kind == MinRnnKind::kGru ? 2 : 3; }
};

Problem make(MinRnnKind kind, int64_t T, int64_t B, int64_t D, int64_t H) {
  const float k = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t G = kind == MinRnnKind::kGru ? 2 : 3;
  return {kind,
          T,
          B,
          D,
          H,
          random_floats(G * H * D, 61, -k, k),
          random_floats(G * H, 62, -k, k),
          random_floats(T * B * D, 65),
          random_floats(B * H, 66),
          random_floats(T * B * H, 67)};
}

std::vector<double> reference(const Problem& p) {
  std::vector<double> y(p.T * p.B * p.H), h(p.h0.begin(), p.h0.end()), pre(p.G());
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t b = 0; b < p.B; ++b) {
      for (int64_t j = 0; j < p.H; ++j) {
        for (int64_t g = 0; g < p.G(); ++g) {
          double sum = p.b[g * p.H + j];
          for (int64_t d = 0; d < p.D; ++d) sum += p.w[(g * p.H + j) * p.D + d] * p.x[(t * p.B + b) * p.D + d];
          pre[g] = sum;
        }
        auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
        double& state = h[b * p.H + j];
        if (p.kind == MinRnnKind::kGru) {
          const double z = sigmoid(pre[0]);
          state = (1.0 - z) * state + z * pre[1];
        } else {
          const double f = sigmoid(pre[0]), i = sigmoid(pre[1]);
          state = f / (f + i) * state + i / (f + i) * pre[2];
        }
        y[(t * p.B + b) * p.H + j] = state;
      }
    }
  }
  return y;
}

double loss(const Problem& p) {
  const std::vector<double> y = reference(p);
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += p.w_y[i] * y[i];
  return sum;
}

std::vector<double> fd(Problem& p, std::vector<float>& v) {
  std::vector<double> grad(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const float saved = v[i];
    v[i] = saved + 1e-3f;
    const double plus = loss(p);
    v[i] = saved - 1e-3f;
    const double minus = loss(p);
    v[i] = saved;
    grad[i] = (plus - minus) / (static_cast<double>(saved + 1e-3f) - static_cast<double>(saved - 1e-3f));
  }
  return grad;
}

// fp32 through one GEMM and the scan against fp64, and FD steps of 1e-3 on a
// loss whose curvature (through σ) is O(1): both well under 1e-4 of the scale.
testing::AssertionResult close(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  return close_uniform(what, got.data(), want.data(), 1e-4 * max_abs(want) + 1e-6, want.size());
}

TEST(MinRnn, ForwardAndBackwardMatchReference) {
  for (MinRnnKind kind : {MinRnnKind::kGru, MinRnnKind::kLstm}) {
    for (const auto& [T, B, D, H] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {6, 2, 3, 5},
                                     {9, 3, 17, 20}}) {
      SCOPED_TRACE(testing::Message() << (kind == MinRnnKind::kGru ? "minGRU" : "minLSTM") << " T=" << T << " B=" << B
                                      << " D=" << D << " H=" << H);
      Problem p = make(kind, T, B, D, H);
      const int64_t G = p.G();
      seqk::MinRnnLayer layer(kind, D, H);
      layer.set_parameters({ConstView(p.w.data(), {G * H, D}), ConstView(p.b.data(), {G * H})});
      std::vector<float> y(T * B * H);
      seqk::MinRnnSaved saved;
      layer.forward(ConstView(p.x.data(), {T, B, D}), ConstView(p.h0.data(), {B, H}), View(y.data(), {T, B, H}),
                    &saved);
      EXPECT_TRUE(close("y", y, reference(p)));

      std::vector<float> dx(T * B * D), dh0(B * H), dw(G * H * D), db(G * H);
      layer.backward(ConstView(p.x.data(), {T, B, D}), ConstView(p.h0.data(), {B, H}), ConstView(y.data(), {T, B, H}),
                     ConstView(p.w_y.data(), {T, B, H}), saved, View(dx.data(), {T, B, D}), View(dh0.data(), {B, H}),
                     {View(dw.data(), {G * H, D}), View(db.data(), {G * H})});
      EXPECT_TRUE(close("dx", dx, fd(p, p.x)));
      EXPECT_TRUE(close("dh0", dh0, fd(p, p.h0)));
      EXPECT_TRUE(close("dw", dw, fd(p, p.w)));
      EXPECT_TRUE(close("db", db, fd(p, p.b)));
    }
  }
}

TEST(MinRnn, RejectsBadInput) {
  seqk::MinRnnLayer layer(MinRnnKind::kLstm, 3, 4);
  std::vector<float> x(2 * 1 * 3), y(2 * 1 * 4, kSentinel);
  EXPECT_THROW(layer.forward(ConstView(x.data(), {2, 1, 3}), {}, View(y.data(), {2, 1, 4})), seqk::Error);  // no parameters
  std::vector<float> w(36, 0.1f), b(12, 0.0f), bad(36, NAN);
  EXPECT_THROW(layer.set_parameters({ConstView(bad.data(), {12, 3}), ConstView(b.data(), {12})}), seqk::Error);
  EXPECT_THROW(layer.set_parameters({ConstView(w.data(), {8, 3}), ConstView(b.data(), {8})}), seqk::Error);  // minGRU's shape
  layer.set_parameters({ConstView(w.data(), {12, 3}), ConstView(b.data(), {12})});
  EXPECT_THROW(layer.forward(ConstView(x.data(), {2, 1, 3}), {}, View(y.data(), {2, 2, 2})), seqk::Error);
  EXPECT_TRUE(all_sentinel(y.data(), y.size()));
}

}  // namespace
}  // namespace seqk_test
