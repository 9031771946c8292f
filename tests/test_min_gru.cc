// The minGRU layer: forward against an fp64 loop of its recurrence, backward
// against central finite differences of that loop, for every input and
// parameter; and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/min_gru.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;

struct MinGruProblem {
  int64_t T, B, D, H;
  std::vector<float> w_z, b_z, w_h, b_h, x, h0, w_y;  // w_y: loss weights, L = Σ w_y ⊙ y
};

MinGruProblem make(int64_t T, int64_t B, int64_t D, int64_t H) {
  const float k = 1.0f / std::sqrt(static_cast<float>(D));
  return {T,
          B,
          D,
          H,
          random_floats(H * D, 61, -k, k),
          random_floats(H, 62, -k, k),
          random_floats(H * D, 63, -k, k),
          random_floats(H, 64, -k, k),
          random_floats(T * B * D, 65),
          random_floats(B * H, 66),
          random_floats(T * B * H, 67)};
}

std::vector<double> reference(const MinGruProblem& p) {
  std::vector<double> y(p.T * p.B * p.H), h(p.h0.begin(), p.h0.end());
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t b = 0; b < p.B; ++b) {
      for (int64_t j = 0; j < p.H; ++j) {
        double zs = p.b_z[j], cs = p.b_h[j];
        for (int64_t d = 0; d < p.D; ++d) {
          const double xv = p.x[(t * p.B + b) * p.D + d];
          zs += p.w_z[j * p.D + d] * xv;
          cs += p.w_h[j * p.D + d] * xv;
        }
        const double z = 1.0 / (1.0 + std::exp(-zs));
        double& state = h[b * p.H + j];
        state = (1.0 - z) * state + z * cs;
        y[(t * p.B + b) * p.H + j] = state;
      }
    }
  }
  return y;
}

double loss(const MinGruProblem& p) {
  const std::vector<double> y = reference(p);
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) sum += p.w_y[i] * y[i];
  return sum;
}

std::vector<double> fd(MinGruProblem& p, std::vector<float>& v) {
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

testing::AssertionResult close(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  // fp32 through one GEMM and the scan against fp64, and FD steps of 1e-3 on
  // a loss whose curvature (through σ) is O(1): both ~1e-5 of the scale.
  return close_uniform(what, got.data(), want.data(), 1e-4 * max_abs(want) + 1e-6, want.size());
}

TEST(MinGru, ForwardAndBackwardMatchReference) {
  for (const auto& [T, B, D, H] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {6, 2, 3, 5},
                                   {9, 3, 17, 20}}) {
    SCOPED_TRACE(testing::Message() << "T=" << T << " B=" << B << " D=" << D << " H=" << H);
    MinGruProblem p = make(T, B, D, H);
    seqk::MinGruLayer layer(D, H);
    layer.set_parameters({ConstView(p.w_z.data(), {H, D}), ConstView(p.b_z.data(), {H}),
                          ConstView(p.w_h.data(), {H, D}), ConstView(p.b_h.data(), {H})});
    std::vector<float> y(T * B * H);
    seqk::MinGruSaved saved;
    layer.forward(ConstView(p.x.data(), {T, B, D}), ConstView(p.h0.data(), {B, H}), View(y.data(), {T, B, H}),
                  &saved);
    EXPECT_TRUE(close("y", y, reference(p)));

    std::vector<float> dx(T * B * D), dh0(B * H), dw_z(H * D), db_z(H), dw_h(H * D), db_h(H);
    layer.backward(ConstView(p.x.data(), {T, B, D}), ConstView(p.h0.data(), {B, H}), ConstView(y.data(), {T, B, H}),
                   ConstView(p.w_y.data(), {T, B, H}), saved, View(dx.data(), {T, B, D}), View(dh0.data(), {B, H}),
                   {View(dw_z.data(), {H, D}), View(db_z.data(), {H}), View(dw_h.data(), {H, D}),
                    View(db_h.data(), {H})});
    EXPECT_TRUE(close("dx", dx, fd(p, p.x)));
    EXPECT_TRUE(close("dh0", dh0, fd(p, p.h0)));
    EXPECT_TRUE(close("dw_z", dw_z, fd(p, p.w_z)));
    EXPECT_TRUE(close("db_z", db_z, fd(p, p.b_z)));
    EXPECT_TRUE(close("dw_h", dw_h, fd(p, p.w_h)));
    EXPECT_TRUE(close("db_h", db_h, fd(p, p.b_h)));
  }
}

TEST(MinGru, RejectsBadInput) {
  seqk::MinGruLayer layer(3, 4);
  std::vector<float> x(2 * 1 * 3), y(2 * 1 * 4, kSentinel);
  EXPECT_THROW(layer.forward(ConstView(x.data(), {2, 1, 3}), {}, View(y.data(), {2, 1, 4})), seqk::Error);  // no parameters
  std::vector<float> w(12, 0.1f), b(4, 0.0f), bad(12, NAN);
  EXPECT_THROW(layer.set_parameters({ConstView(bad.data(), {4, 3}), ConstView(b.data(), {4}), ConstView(w.data(), {4, 3}),
                                     ConstView(b.data(), {4})}),
               seqk::Error);
  layer.set_parameters({ConstView(w.data(), {4, 3}), ConstView(b.data(), {4}), ConstView(w.data(), {4, 3}),
                        ConstView(b.data(), {4})});
  EXPECT_THROW(layer.forward(ConstView(x.data(), {2, 1, 3}), {}, View(y.data(), {2, 2, 2})), seqk::Error);
  EXPECT_TRUE(all_sentinel(y.data(), y.size()));
}

}  // namespace
}  // namespace seqk_test
