// minGRU and minLSTM: forward against an fp64 loop of their recurrences,
// backward against central finite differences of that loop, for every input
// and parameter, and against the fp64 backward of min_rnn_problem.h (which
// test_vulkan_min_rnn.cc relies on); and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "min_rnn_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/min_rnn.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::MinRnnKind;
using seqk::View;

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
      MinRnnProblem p = make_min_rnn_problem(kind, T, B, D, H);
      const int64_t G = p.G();
      seqk::MinRnnLayer layer(kind, D, H);
      layer.set_parameters(p.params());
      std::vector<float> y(T * B * H);
      seqk::MinRnnSaved saved;
      layer.forward(p.x_view(), p.h0_view(), View(y.data(), {T, B, H}), &saved);
      const MinRnnReference want = reference_min_rnn(p);
      EXPECT_TRUE(close("y", y, want.y));

      std::vector<float> dx(T * B * D), dh0(B * H), dw(G * H * D), db(G * H);
      layer.backward(p.x_view(), p.h0_view(), ConstView(y.data(), {T, B, H}), p.dy_view(), saved,
                     View(dx.data(), {T, B, D}), View(dh0.data(), {B, H}),
                     {View(dw.data(), {G * H, D}), View(db.data(), {G * H})});
      EXPECT_TRUE(close("dx", dx, min_rnn_fd(p, p.x)));
      EXPECT_TRUE(close("dh0", dh0, min_rnn_fd(p, p.h0)));
      EXPECT_TRUE(close("dw", dw, min_rnn_fd(p, p.w)));
      EXPECT_TRUE(close("db", db, min_rnn_fd(p, p.b)));
      EXPECT_TRUE(close("dx (fp64 backward)", dx, want.dx));
      EXPECT_TRUE(close("dh0 (fp64 backward)", dh0, want.dh0));
      EXPECT_TRUE(close("dw (fp64 backward)", dw, want.dw));
      EXPECT_TRUE(close("db (fp64 backward)", db, want.db));
    }
  }
}

// minLSTM's gates both near 0 (pre-activations near −100, where σ is below
// fp32's smallest normal): f / (f + i) is still σ(k_f − k_i), finite.
TEST(MinRnn, MinLstmWithVanishingGatesStaysFinite) {
  MinRnnProblem p = make_min_rnn_problem(MinRnnKind::kLstm, 5, 2, 3, 20);
  for (int64_t j = 0; j < 2 * p.H; ++j) p.b[j] -= 100.0f;
  seqk::MinRnnLayer layer(MinRnnKind::kLstm, p.D, p.H);
  layer.set_parameters(p.params());
  const int64_t T = p.T, B = p.B, D = p.D, H = p.H;
  std::vector<float> y(T * B * H), dx(T * B * D), dh0(B * H), dw(3 * H * D), db(3 * H);
  seqk::MinRnnSaved saved;
  layer.forward(p.x_view(), p.h0_view(), View(y.data(), {T, B, H}), &saved);
  layer.backward(p.x_view(), p.h0_view(), ConstView(y.data(), {T, B, H}), p.dy_view(), saved,
                 View(dx.data(), {T, B, D}), View(dh0.data(), {B, H}),
                 {View(dw.data(), {3 * H, D}), View(db.data(), {3 * H})});
  const MinRnnReference want = reference_min_rnn(p);
  EXPECT_TRUE(close("y", y, want.y));
  EXPECT_TRUE(close("dx", dx, want.dx));
  EXPECT_TRUE(close("dh0", dh0, want.dh0));
  EXPECT_TRUE(close("dw", dw, want.dw));
  EXPECT_TRUE(close("db", db, want.db));
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
