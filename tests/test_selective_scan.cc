// The selective scan (S6): forward against a sequential fp64 loop, backward
// against central finite differences of it, for every input and with every
// optional input on and off, on every SIMD target, on 1-3 threads and with
// chunks that do not divide L; L = 100k; the decode step against the
// forward; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/selective_scan.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;

struct Shape {
  int64_t B, D, L, N, chunk;
};

// Which optional inputs a problem has.
struct Options {
  bool skip, gate, bias_softplus, h0;
};
constexpr Options kNone{false, false, false, false}, kAll{true, true, true, true};

// One problem's inputs in float (what the kernel sees) and the same values
// in double (what the reference computes with); optional ones are empty.
struct Problem {
  Shape s;
  bool softplus = false;
  std::vector<float> u, delta, A, B, C, D, z, bias, h0;

  Problem(Shape shape, Options o, uint64_t seed) : s(shape), softplus(o.bias_softplus) {
    const int64_t BDL = s.B * s.D * s.L, BNL = s.B * s.N * s.L;
    u = random_floats(BDL, seed + 1);
    // δ > 0 as a step size must be: a raw Δ through softplus, or given directly.
    delta = o.bias_softplus ? random_floats(BDL, seed + 2, -2.0f, 1.0f) : random_floats(BDL, seed + 2, 0.01f, 0.6f);
    A = random_floats(s.D * s.N, seed + 3, -2.0f, -0.2f);  // Mamba's A = -exp(A_log) < 0
    B = random_floats(BNL, seed + 4);
    C = random_floats(BNL, seed + 5);
    if (o.skip) D = random_floats(s.D, seed + 6);
    if (o.gate) z = random_floats(BDL, seed + 7, -2.0f, 2.0f);
    if (o.bias_softplus) bias = random_floats(s.D, seed + 8, -1.0f, 0.5f);
    if (o.h0) h0 = random_floats(s.B * s.D * s.N, seed + 9);
  }

  seqk::SelectiveScanInputs inputs() const {
    auto view = [](const std::vector<float>& v, std::initializer_list<int64_t> shape) {
      return v.empty() ? ConstView() : ConstView(v.data(), shape);
    };
    return {view(u, {s.B, s.D, s.L}), view(delta, {s.B, s.D, s.L}), view(A, {s.D, s.N}),
            view(B, {s.B, s.N, s.L}), view(C, {s.B, s.N, s.L}),       view(D, {s.D}),
            view(z, {s.B, s.D, s.L}), view(bias, {s.D}),               softplus,
            view(h0, {s.B, s.D, s.N})};
  }
};

struct Result {
  std::vector<double> y, h_last;
};

double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

// The recurrence exactly as selective_scan.h writes it, in double, over the
// problem's float inputs (any of which a finite difference may have moved).
Result reference_selective_scan(const Problem& p, const std::vector<double>* moved = nullptr,
                                const std::vector<float>* which = nullptr) {
  const Shape& s = p.s;
  // An input is read from `moved` (double) when it is `which`, else from its floats.
  auto at = [&](const std::vector<float>& v, int64_t i) {
    return &v == which ? (*moved)[static_cast<size_t>(i)] : static_cast<double>(v[static_cast<size_t>(i)]);
  };
  Result r{std::vector<double>(s.B * s.D * s.L), std::vector<double>(s.B * s.D * s.N)};
  std::vector<double> h(s.N);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t d = 0; d < s.D; ++d) {
      for (int64_t n = 0; n < s.N; ++n) h[n] = p.h0.empty() ? 0.0 : at(p.h0, (b * s.D + d) * s.N + n);
      for (int64_t t = 0; t < s.L; ++t) {
        const int64_t i = (b * s.D + d) * s.L + t;
        double delta = at(p.delta, i) + (p.bias.empty() ? 0.0 : at(p.bias, d));
        if (p.softplus) delta = softplus(delta);
        double y = 0;
        for (int64_t n = 0; n < s.N; ++n) {
          const int64_t bn = (b * s.N + n) * s.L + t;
          h[n] = std::exp(delta * at(p.A, d * s.N + n)) * h[n] + delta * at(p.u, i) * at(p.B, bn);
          y += at(p.C, bn) * h[n];
        }
        if (!p.D.empty()) y += at(p.D, d) * at(p.u, i);
        if (!p.z.empty()) y *= at(p.z, i) / (1.0 + std::exp(-at(p.z, i)));
        r.y[i] = y;
      }
      for (int64_t n = 0; n < s.N; ++n) r.h_last[(b * s.D + d) * s.N + n] = h[n];
    }
  return r;
}

// |got - want| <= relative·max|want| + relative·|want| elementwise: the
// kernel's exp and sigmoid are a few ulp off, and a state sums N terms.
testing::AssertionResult close_to(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                                  double relative) {
  const double scale = max_abs(want);
  std::vector<double> tol(want.size());
  for (size_t i = 0; i < want.size(); ++i) tol[i] = relative * (scale + std::fabs(want[i])) + 1e-7;
  return close_elementwise(what, got.data(), want.data(), tol.data(), want.size());
}

class SelectiveScan : public TargetTest {};

TEST_P(SelectiveScan, ForwardMatchesSequentialFp64) {
  // N = 1 .. 64: state groups of 4, 2 and 1; D = 37 fills blocks of 16, 8, 4
  // and 1 channels and leaves a partial one; chunks dividing L and not.
  for (const Shape& s : {Shape{1, 1, 1, 1, 64}, Shape{2, 3, 9, 5, 4}, Shape{1, 5, 130, 16, 64},
                         Shape{3, 2, 33, 17, 7}, Shape{2, 3, 20, 40, 8}, Shape{1, 2, 10, 64, 3},
                         Shape{2, 37, 6, 4, 4}}) {
    for (const Options& o : {kNone, kAll, Options{true, true, false, false}, Options{false, false, true, true}}) {
      const Problem p(s, o, 100);
      const Result want = reference_selective_scan(p);
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(testing::Message() << "B=" << s.B << " D=" << s.D << " L=" << s.L << " N=" << s.N
                                        << " chunk=" << s.chunk << " skip/gate/bias/h0=" << o.skip << o.gate
                                        << o.bias_softplus << o.h0 << " threads=" << threads);
        seqk::ThreadPool pool(threads);
        std::vector<float> y(s.B * s.D * s.L, kSentinel), h_last(s.B * s.D * s.N, kSentinel);
        std::vector<float> y_train(y.size(), kSentinel);
        seqk::selective_scan(p.inputs(), View(y.data(), {s.B, s.D, s.L}), View(h_last.data(), {s.B, s.D, s.N}),
                             nullptr, &pool, s.chunk);
        EXPECT_TRUE(close_to("y", y, want.y, 2e-6));
        EXPECT_TRUE(close_to("h_last", h_last, want.h_last, 2e-6));
        seqk::SelectiveScanSaved saved;
        seqk::selective_scan(p.inputs(), View(y_train.data(), {s.B, s.D, s.L}), View(), &saved, &pool, s.chunk);
        EXPECT_EQ(y, y_train) << "a training forward must give the inference forward's y";
      }
    }
  }
}

// L = Σ w_y ⊙ y + Σ w_h ⊙ h_last, so dy = w_y and dh_last = w_h; every
// input's gradient against central differences of the fp64 loop.
TEST_P(SelectiveScan, BackwardMatchesFiniteDifferences) {
  for (const Shape& s : {Shape{2, 3, 9, 5, 4}, Shape{1, 2, 17, 20, 5}, Shape{2, 2, 6, 3, 1}, Shape{2, 19, 4, 3, 2}}) {
    for (const Options& o : {kNone, kAll}) {
      const Problem p(s, o, 200);
      const std::vector<float> w_y = random_floats(s.B * s.D * s.L, 301), w_h = random_floats(s.B * s.D * s.N, 302);
      auto loss = [&](const std::vector<double>* moved, const std::vector<float>* which) {
        const Result r = reference_selective_scan(p, moved, which);
        double sum = 0;
        for (size_t i = 0; i < r.y.size(); ++i) sum += w_y[i] * r.y[i];
        for (size_t i = 0; i < r.h_last.size(); ++i) sum += w_h[i] * r.h_last[i];
        return sum;
      };
      auto finite_difference = [&](const std::vector<float>& input) {
        std::vector<double> moved = to_double(input), grad(input.size());
        for (size_t i = 0; i < input.size(); ++i) {
          const double step = 1e-5 * std::max(1.0, std::fabs(moved[i]));
          moved[i] = input[i] + step;
          const double plus = loss(&moved, &input);
          moved[i] = input[i] - step;
          const double minus = loss(&moved, &input);
          moved[i] = input[i];
          grad[i] = (plus - minus) / (2 * step);
        }
        return grad;
      };
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(testing::Message() << "B=" << s.B << " D=" << s.D << " L=" << s.L << " N=" << s.N
                                        << " chunk=" << s.chunk << (o.skip ? " all options" : " no options")
                                        << " threads=" << threads);
        seqk::ThreadPool pool(threads);
        const int64_t BDL = s.B * s.D * s.L, BNL = s.B * s.N * s.L, BDN = s.B * s.D * s.N;
        std::vector<float> y(BDL);
        seqk::SelectiveScanSaved saved;
        seqk::selective_scan(p.inputs(), View(y.data(), {s.B, s.D, s.L}), View(), &saved, &pool, s.chunk);
        std::vector<float> du(BDL, kSentinel), ddelta(BDL, kSentinel), dA(s.D * s.N, kSentinel), dB(BNL, kSentinel),
            dC(BNL, kSentinel), dD(s.D, kSentinel), dz(BDL, kSentinel), dbias(s.D, kSentinel), dh0(BDN, kSentinel);
        auto grad = [](std::vector<float>& v, bool wanted, std::initializer_list<int64_t> shape) {
          return wanted ? View(v.data(), shape) : View();
        };
        const seqk::SelectiveScanGrads grads{View(du.data(), {s.B, s.D, s.L}), View(ddelta.data(), {s.B, s.D, s.L}),
                                             View(dA.data(), {s.D, s.N}),      View(dB.data(), {s.B, s.N, s.L}),
                                             View(dC.data(), {s.B, s.N, s.L}), grad(dD, o.skip, {s.D}),
                                             grad(dz, o.gate, {s.B, s.D, s.L}), grad(dbias, o.bias_softplus, {s.D}),
                                             grad(dh0, o.h0, {s.B, s.D, s.N})};
        seqk::selective_scan_backward(p.inputs(), saved, ConstView(w_y.data(), {s.B, s.D, s.L}),
                                      ConstView(w_h.data(), {s.B, s.D, s.N}), grads, &pool);
        EXPECT_TRUE(close_to("du", du, finite_difference(p.u), 2e-5));
        EXPECT_TRUE(close_to("ddelta", ddelta, finite_difference(p.delta), 2e-5));
        EXPECT_TRUE(close_to("dA", dA, finite_difference(p.A), 2e-5));
        EXPECT_TRUE(close_to("dB", dB, finite_difference(p.B), 2e-5));
        EXPECT_TRUE(close_to("dC", dC, finite_difference(p.C), 2e-5));
        if (o.skip) {
          EXPECT_TRUE(close_to("dD", dD, finite_difference(p.D), 2e-5));
        }
        if (o.gate) {
          EXPECT_TRUE(close_to("dz", dz, finite_difference(p.z), 2e-5));
        }
        if (o.bias_softplus) {
          EXPECT_TRUE(close_to("ddelta_bias", dbias, finite_difference(p.bias), 2e-5));
        }
        if (o.h0) {
          EXPECT_TRUE(close_to("dh0", dh0, finite_difference(p.h0), 2e-5));
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, SelectiveScan, testing::ValuesIn(seqk::available_simd_targets()),
                         target_test_name);

// L = 100,000 steps on 2 threads, δ·A small so the state remembers ~1000
// steps back: the chunk checkpoints and carries over 1563 chunks. Tolerance
// 1e-5 of the largest |y|.
TEST(SelectiveScanLong, HundredThousandStepsMatchFp64) {
  const Shape s{1, 3, 100000, 16, 64};
  Problem p(s, Options{true, false, false, true}, 400);
  for (float& a : p.A) a *= 0.01f;
  const Result want = reference_selective_scan(p);
  std::vector<float> y(s.B * s.D * s.L), h_last(s.B * s.D * s.N);
  seqk::ThreadPool pool(2);
  seqk::selective_scan(p.inputs(), View(y.data(), {s.B, s.D, s.L}), View(h_last.data(), {s.B, s.D, s.N}), nullptr,
                       &pool);
  EXPECT_TRUE(close_uniform("y", y.data(), want.y.data(), 1e-5 * max_abs(want.y), y.size()));
  EXPECT_TRUE(close_uniform("h_last", h_last.data(), want.h_last.data(), 1e-5 * max_abs(want.h_last),
                            h_last.size()));
}

// L decoding steps from h0 give the forward's outputs and final state.
TEST(SelectiveScanStep, StepsEqualTheForward) {
  const Shape s{2, 5, 12, 17, 64};
  const Problem p(s, kAll, 500);
  const Result want = reference_selective_scan(p);
  std::vector<float> h = p.h0, y(s.B * s.D * s.L);
  std::vector<float> u(s.B * s.D), delta(s.B * s.D), z(s.B * s.D), Bt(s.B * s.N), Ct(s.B * s.N), y_t(s.B * s.D);
  for (int64_t t = 0; t < s.L; ++t) {
    for (int64_t r = 0; r < s.B * s.D; ++r) {
      u[r] = p.u[r * s.L + t];
      delta[r] = p.delta[r * s.L + t];
      z[r] = p.z[r * s.L + t];
    }
    for (int64_t r = 0; r < s.B * s.N; ++r) {
      Bt[r] = p.B[r * s.L + t];
      Ct[r] = p.C[r * s.L + t];
    }
    seqk::selective_scan_step({ConstView(u.data(), {s.B, s.D}), ConstView(delta.data(), {s.B, s.D}),
                               ConstView(p.A.data(), {s.D, s.N}), ConstView(Bt.data(), {s.B, s.N}),
                               ConstView(Ct.data(), {s.B, s.N}), ConstView(p.D.data(), {s.D}),
                               ConstView(z.data(), {s.B, s.D}), ConstView(p.bias.data(), {s.D}), true},
                              View(h.data(), {s.B, s.D, s.N}), View(y_t.data(), {s.B, s.D}));
    for (int64_t r = 0; r < s.B * s.D; ++r) y[r * s.L + t] = y_t[r];
  }
  EXPECT_TRUE(close_to("y", y, want.y, 2e-6));
  EXPECT_TRUE(close_to("h", h, want.h_last, 2e-6));
}

// Each bad argument is rejected with an error naming it, y left untouched.
TEST(SelectiveScanErrors, BadInputIsRejectedAndNothingWritten) {
  const Shape s{2, 3, 5, 4, 64};
  const Problem p(s, kAll, 600);
  std::vector<float> y(s.B * s.D * s.L, kSentinel);
  const View y_view(y.data(), {s.B, s.D, s.L});
  auto expect_error = [&](seqk::SelectiveScanInputs in, const char* fragment, View out, int64_t chunk = 64) {
    try {
      seqk::selective_scan(in, out, View(), nullptr, nullptr, chunk);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_TRUE(all_sentinel(y.data(), y.size())) << fragment;
  };
  auto in = p.inputs();
  in.delta = ConstView(p.delta.data(), {s.B, s.D, s.L - 1});
  expect_error(in, "delta", y_view);
  in = p.inputs();
  in.B = ConstView(p.B.data(), {s.B, s.N - 1, s.L});
  expect_error(in, "B has shape", y_view);
  in = p.inputs();
  in.z = ConstView(p.z.data(), {s.B, s.D});
  expect_error(in, "z", y_view);
  in = p.inputs();
  in.A = ConstView(p.A.data(), {s.D, 0});
  expect_error(in, "N (A's second dimension)", y_view);
  in = p.inputs();
  std::vector<float> big_a(s.D * 257, -1.0f);
  in.A = ConstView(big_a.data(), {s.D, 257});
  expect_error(in, "must be 1..256", y_view);
  in = p.inputs();
  in.u = ConstView(p.u.data(), {s.B, s.D, 0});
  expect_error(in, "empty dimension", y_view);
  std::vector<float> nan_a = p.A;
  nan_a[3] = std::nanf("");
  in = p.inputs();
  in.A = ConstView(nan_a.data(), {s.D, s.N});
  expect_error(in, "A has a non-finite value at index 3", y_view);
  expect_error(p.inputs(), "chunk_steps", y_view, 0);
  expect_error(p.inputs(), "y has shape", View(y.data(), {s.B, s.D, s.L - 1}));
  // y over u: the output would overwrite inputs still to be read.
  std::vector<float> shared = p.u;
  in = p.inputs();
  in.u = ConstView(shared.data(), {s.B, s.D, s.L});
  try {
    seqk::selective_scan(in, View(shared.data(), {s.B, s.D, s.L}), View());
    ADD_FAILURE() << "no error for y over u";
  } catch (const seqk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("y overlaps an input"), std::string::npos) << e.what();
  }
  EXPECT_EQ(shared, p.u);
}

TEST(SelectiveScanErrors, BackwardChecksSavedAndGradients) {
  const Shape s{1, 2, 6, 3, 4};
  const Problem p(s, kNone, 700);
  std::vector<float> y(s.B * s.D * s.L), dy = random_floats(y.size(), 701);
  seqk::SelectiveScanSaved saved;
  std::vector<float> du(y.size(), kSentinel), ddelta(y.size(), kSentinel), dA(s.D * s.N, kSentinel),
      dB(s.B * s.N * s.L, kSentinel), dC(dB.size(), kSentinel), dD(s.D, kSentinel);
  seqk::SelectiveScanGrads grads{View(du.data(), {s.B, s.D, s.L}), View(ddelta.data(), {s.B, s.D, s.L}),
                                 View(dA.data(), {s.D, s.N}), View(dB.data(), {s.B, s.N, s.L}),
                                 View(dC.data(), {s.B, s.N, s.L})};
  const ConstView dy_view(dy.data(), {s.B, s.D, s.L});
  auto expect_error = [&](const seqk::SelectiveScanGrads& g, const char* fragment) {
    try {
      seqk::selective_scan_backward(p.inputs(), saved, dy_view, ConstView(), g);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_TRUE(all_sentinel(du.data(), du.size())) << fragment;
  };
  expect_error(grads, "saved does not come from a training forward");
  seqk::selective_scan(p.inputs(), View(y.data(), {s.B, s.D, s.L}), View(), &saved, nullptr, s.chunk);
  seqk::SelectiveScanGrads with_dD = grads;
  with_dD.dD = View(dD.data(), {s.D});
  expect_error(with_dD, "dD given for an input that was not");
  seqk::SelectiveScanGrads bad_dC = grads;
  bad_dC.dC = View(dC.data(), {s.B, s.N, s.L - 1});
  expect_error(bad_dC, "dC has shape");
  seqk::SelectiveScanGrads aliased = grads;
  aliased.dC = View(dB.data(), {s.B, s.N, s.L});
  expect_error(aliased, "dC overlaps dB");
  // The saved state of another problem's shape.
  const Problem other({1, 2, 7, 3, 4}, kNone, 702);
  std::vector<float> other_y(s.B * s.D * 7);
  seqk::selective_scan(other.inputs(), View(other_y.data(), {1, 2, 7}), View(), &saved, nullptr, 4);
  expect_error(grads, "saved does not come from a training forward");
}

}  // namespace
}  // namespace seqk_test
