// LSTM test problems shared by the CPU and Vulkan suites: sizes, random
// parameters and inputs (as floats for seqk, as doubles for the fp64
// reference), forward tolerances, finite-difference gradients and the
// gradient tolerance, and runners generic over the layer type.
#pragma once

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "reference.h"
#include "seqk/lstm.h"

namespace seqk_test {

using seqk::ConstView;
using seqk::LstmBackwardArgs;
using seqk::LstmForwardArgs;
using seqk::LstmGrads;
using seqk::LstmParams;
using seqk::View;

// ---------------------------------------------------------------------------
// A problem: sizes, parameters and inputs as floats (what seqk gets) and the
// same values in double (what the reference gets).

struct Problem {
  seqk::CellKind cell = seqk::CellKind::kLstm;
  int64_t D = 0, H = 0, B = 0, T = 0;
  std::vector<float> w_ih, w_hh, b_ih, b_hh, x, h0, c0;  // h0/c0 empty: zeros; c0 only for the LSTM

  int64_t G() const { return seqk::gates_per_unit(cell); }
  bool has_c() const { return seqk::has_cell_state(cell); }
  LstmParams params() const {
    return {ConstView(w_ih.data(), {G() * H, D}), ConstView(w_hh.data(), {G() * H, H}),
            ConstView(b_ih.data(), {G() * H}), ConstView(b_hh.data(), {G() * H})};
  }
  RefRecurrentParams ref_params() const {
    RefRecurrentParams p;
    p.cell = cell;
    p.D = D;
    p.H = H;
    p.w_ih = to_double(w_ih);
    p.w_hh = to_double(w_hh);
    p.b_ih = to_double(b_ih);
    p.b_hh = to_double(b_hh);
    return p;
  }
  ConstView x_view() const { return ConstView(x.data(), {T, B, D}); }
  ConstView h0_view() const { return h0.empty() ? ConstView() : ConstView(h0.data(), {B, H}); }
  ConstView c0_view() const { return c0.empty() ? ConstView() : ConstView(c0.data(), {B, H}); }
  RefRecurrentResult reference() const { return reference_recurrent_forward(ref_params(), to_double(x), T, B, to_double(h0), to_double(c0)); }
  std::string describe() const {
    std::ostringstream s;
    s << seqk::to_string(cell) << " D=" << D << " H=" << H << " B=" << B << " T=" << T
      << (h0.empty() ? " zero state" : " with initial state");
    return s.str();
  }
};

// PyTorch's initialisation, U(-1/sqrt(H), 1/sqrt(H)) for every parameter;
// inputs and h0 in U(-1, 1); c0 in U(-2, 2) (a cell state may exceed 1).
inline Problem make_problem(int64_t D, int64_t H, int64_t B, int64_t T, bool with_state, uint64_t seed = 1,
                            seqk::CellKind cell = seqk::CellKind::kLstm) {
  Problem p;
  p.cell = cell;
  p.D = D;
  p.H = H;
  p.B = B;
  p.T = T;
  const float k = 1.0f / std::sqrt(static_cast<float>(H));
  const uint64_t s = seed * 1000003 + static_cast<uint64_t>(((D * 131 + H) * 7 + B) * 11 + T);
  const int64_t G = p.G();
  p.w_ih = random_floats(G * H * D, s + 1, -k, k);
  p.w_hh = random_floats(G * H * H, s + 2, -k, k);
  p.b_ih = random_floats(G * H, s + 3, -k, k);
  p.b_hh = random_floats(G * H, s + 4, -k, k);
  p.x = random_floats(T * B * D, s + 5);
  if (with_state) {
    p.h0 = random_floats(B * H, s + 6);
    if (p.has_c()) p.c0 = random_floats(B * H, s + 7, -2.0f, 2.0f);
  }
  return p;
}

// Output buffers, pre-filled with the sentinel so a missing write shows.
struct Outputs {
  std::vector<float> y, h_n, c_n;
  Outputs(const Problem& p) : y(p.T * p.B * p.H, kSentinel), h_n(p.B * p.H, kSentinel), c_n(p.B * p.H, kSentinel) {}
  LstmForwardArgs args(const Problem& p, bool want_h_n = true, bool want_c_n = true) {
    LstmForwardArgs a;
    a.x = p.x_view();
    a.y = View(y.data(), {p.T, p.B, p.H});
    a.h0 = p.h0_view();
    a.c0 = p.c0_view();
    if (want_h_n) a.h_n = View(h_n.data(), {p.B, p.H});
    if (want_c_n && p.has_c()) a.c_n = View(c_n.data(), {p.B, p.H});
    return a;
  }
};

// Forward tolerance, absolute, for y, h_n and c_n:
//   tol = 8 · FLT_EPSILON · sqrt(D + H + 2) · T · (1 + |want|).
// Why: each gate pre-activation is a sum of D + H + 2 fp32 terms whose
// absolute values add up to at most (D + H + 2)/sqrt(H) · max|input| (PyTorch
// init), i.e. a few units here, so its rounding error is about
// sqrt(D + H + 2) · eps · (a few) with random-sign rounding; σ' ≤ 1/4,
// tanh' ≤ 1 and |f| < 1 keep the error from growing when it passes through
// a step, so it accumulates at most linearly over T steps; the kernels may
// use fast approximations of exp/tanh accurate to a few ulp, and |c| can
// exceed 1, hence the (1 + |want|). At the largest size (D = H = 129, T = 7)
// this is 8 · 1.19e-7 · 16.1 · 7 ≈ 1.1e-4 (the largest error seen on the
// x86 targets is 1/20 of the tolerance); a wrong gate order, a missing
// bias, a stale state or a tail-block indexing bug moves outputs by 1e-2 or
// more.
inline double forward_tol(const Problem& p) {
  return 8.0 * FLT_EPSILON * std::sqrt(static_cast<double>(p.D + p.H + 2)) * static_cast<double>(p.T);
}

inline testing::AssertionResult close_forward(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                                       const Problem& p) {
  const double base = forward_tol(p);
  std::vector<double> tol(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) tol[i] = base * (1.0 + std::fabs(want[i]));
  return close_elementwise(what, got.data(), want.data(), tol.data(), want.size());
}

inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs the inference and the training forward of `layer` on `p`: y, h_n and
// c_n must match the fp64 reference, the training forward must equal the
// inference forward bit for bit, and LstmSaved must record T and B. Reports
// each failure (with the problem's sizes) and returns whether all held.
// `Layer` is seqk::LstmLayer or seqk::vk::LstmLayer (same host API), `Saved`
// its LstmSaved.
template <typename Saved, typename Layer>
bool forward_matches_reference(Layer& layer, const Problem& p) {
  const RefRecurrentResult ref = p.reference();
  Outputs inf(p);
  layer.forward(inf.args(p));
  Outputs train(p);
  Saved saved;
  layer.forward(train.args(p), saved);

  const testing::AssertionResult ok_y = close_forward("y", inf.y, ref.y, p);
  const testing::AssertionResult ok_h = close_forward("h_n", inf.h_n, ref.h_n, p);
  const testing::AssertionResult ok_c =
      p.has_c() ? close_forward("c_n", inf.c_n, ref.c_n, p) : testing::AssertionSuccess();
  EXPECT_TRUE(ok_y) << p.describe();
  EXPECT_TRUE(ok_h) << p.describe();
  EXPECT_TRUE(ok_c) << p.describe();
  const bool same = bitwise_equal(inf.y, train.y) && bitwise_equal(inf.h_n, train.h_n) &&
                    bitwise_equal(inf.c_n, train.c_n);
  EXPECT_TRUE(same) << p.describe() << ": training forward differs from inference forward";
  EXPECT_EQ(saved.steps(), p.T);
  EXPECT_EQ(saved.batch(), p.B);
  return ok_y && ok_h && ok_c && same && saved.steps() == p.T && saved.batch() == p.B;
}

// ---------------------------------------------------------------------------
// Backward vs central finite differences of the fp64 reference loss
//   L = Σ w_y ⊙ y + Σ w_h ⊙ h_n + Σ w_c ⊙ c_n
// with random weights, i.e. backward fed dy = w_y, dh_n = w_h, dc_n = w_c.

struct GradCase {
  int64_t D, H, B, T;
  bool with_state;  // h0 (c0) given, dh0 (dc0) wanted, dh_n (dc_n) given; c only for the LSTM
  seqk::CellKind cell = seqk::CellKind::kLstm;
};

// The finite-difference gradients of one case, in double.
struct FdGradients {
  std::vector<double> x, h0, c0, w_ih, w_hh, b_ih, b_hh;
};

struct GradProblem {
  Problem p;
  LossWeights w;
  std::vector<float> w_y, w_h, w_c;  // the same weights as floats, fed to backward
};

inline GradProblem make_grad_problem(const GradCase& c) {
  GradProblem g;
  g.p = make_problem(c.D, c.H, c.B, c.T, c.with_state, 5, c.cell);
  g.w_y = random_floats(c.T * c.B * c.H, 51);
  g.w.w_y = to_double(g.w_y);
  if (c.with_state) {
    g.w_h = random_floats(c.B * c.H, 52);
    g.w.w_h = to_double(g.w_h);
    if (g.p.has_c()) {
      g.w_c = random_floats(c.B * c.H, 53);
      g.w.w_c = to_double(g.w_c);
    }
  }
  return g;
}

// FD step 1e-5 in double: truncation error ~ step² · |L'''| ≈ 1e-10 and
// cancellation error ~ 1e-16 · |L| / step ≈ 1e-10, both far below the fp32
// tolerance of the comparison, so the FD gradient counts as exact here.
constexpr double kFdStep = 1e-5;

// Computed once per case (the same for every SIMD target).
inline const FdGradients& fd_gradients(const GradCase& c) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, bool, seqk::CellKind>, FdGradients> cache;
  const auto key = std::make_tuple(c.D, c.H, c.B, c.T, c.with_state, c.cell);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const GradProblem g = make_grad_problem(c);
  RefRecurrentParams rp = g.p.ref_params();
  std::vector<double> x = to_double(g.p.x), h0 = to_double(g.p.h0), c0 = to_double(g.p.c0);
  FdGradients fd;
  const int64_t T = c.T, B = c.B;
  fd.x = finite_difference(&x, rp, x, T, B, h0, c0, g.w, kFdStep);
  if (c.with_state) {
    fd.h0 = finite_difference(&h0, rp, x, T, B, h0, c0, g.w, kFdStep);
    if (g.p.has_c()) fd.c0 = finite_difference(&c0, rp, x, T, B, h0, c0, g.w, kFdStep);
  }
  fd.w_ih = finite_difference(&rp.w_ih, rp, x, T, B, h0, c0, g.w, kFdStep);
  fd.w_hh = finite_difference(&rp.w_hh, rp, x, T, B, h0, c0, g.w, kFdStep);
  fd.b_ih = finite_difference(&rp.b_ih, rp, x, T, B, h0, c0, g.w, kFdStep);
  fd.b_hh = finite_difference(&rp.b_hh, rp, x, T, B, h0, c0, g.w, kFdStep);
  return cache.emplace(key, std::move(fd)).first->second;
}

// Gradient tolerance for one tensor, absolute, the same for all its elements:
//   tol = 1e-5 · (max |fd| over the tensor) + 1e-7.
// Why: each gradient element is a sum over T·B (weights) or 4H (inputs,
// states) fp32 products of back-propagated quantities that are themselves
// fp32 results of at most T = 4 steps; with T·B ≤ 12 and 4H ≤ 132 here the
// rounding error is ~eps·sqrt(terms)·scale ≈ 1e-6 of the tensor's scale at
// worst (observed: up to 6e-7 on the x86 targets), so 1e-5 of the scale leaves
// a 10x margin for other CPUs and approximate activations; the 1e-7 floor
// covers tensors whose gradient is ~0. The FD reference is good to ~1e-10.
// A wrong derivative (gate order, a missing σ' or tanh' factor, a dropped
// dh_n/dc_n, an off-by-one step) changes elements by a sizeable fraction of
// the scale, ≥ 1e-2.
inline testing::AssertionResult close_gradient(const char* what, const std::vector<float>& got, const std::vector<double>& fd) {
  if (got.size() != fd.size()) return testing::AssertionFailure() << what << ": size mismatch";
  const double tol = 1e-5 * max_abs(fd) + 1e-7;
  return close_uniform(what, got.data(), fd.data(), tol, fd.size());
}

// seqk's analytic gradients for one case, every output pre-filled with
// `fill` (NaN by default: backward must overwrite, not accumulate).
struct Analytic {
  std::vector<float> dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

// Runs `layer`'s training forward and backward on g (extra: arguments both
// calls take after their own, e.g. a thread pool).
template <typename Saved, typename Layer, typename... Extra>
Analytic run_backward_on(Layer& layer, const GradProblem& g, const GradCase& c, bool want_dx, float fill,
                         Analytic* reuse, Extra... extra) {
  const Problem& p = g.p;
  const int64_t D = p.D, H = p.H, B = p.B, T = p.T, G = p.G();
  Outputs out(p);
  Saved saved;
  layer.forward(out.args(p, c.with_state, c.with_state), saved, extra...);

  Analytic a;
  if (reuse) {
    a = *reuse;
  } else {
    a.dx.assign(T * B * D, fill);
    a.dh0.assign(B * H, fill);
    a.dc0.assign(B * H, fill);
    a.dw_ih.assign(G * H * D, fill);
    a.dw_hh.assign(G * H * H, fill);
    a.db_ih.assign(G * H, fill);
    a.db_hh.assign(G * H, fill);
  }
  LstmBackwardArgs args;
  args.x = p.x_view();
  args.y = ConstView(out.y.data(), {T, B, H});
  args.h0 = p.h0_view();
  args.c0 = p.c0_view();
  args.dy = ConstView(g.w_y.data(), {T, B, H});
  if (c.with_state) {
    args.dh_n = ConstView(g.w_h.data(), {B, H});
    args.dh0 = View(a.dh0.data(), {B, H});
    if (p.has_c()) {
      args.dc_n = ConstView(g.w_c.data(), {B, H});
      args.dc0 = View(a.dc0.data(), {B, H});
    }
  }
  if (want_dx) args.dx = View(a.dx.data(), {T, B, D});
  const LstmGrads grads{View(a.dw_ih.data(), {G * H, D}), View(a.dw_hh.data(), {G * H, H}),
                        View(a.db_ih.data(), {G * H}), View(a.db_hh.data(), {G * H})};
  layer.backward(args, saved, grads, extra...);
  return a;
}

// dh0/dc0 (when the case has an initial state) and every parameter gradient
// against the finite differences.
inline void expect_gradients_close(const Analytic& a, const FdGradients& fd, bool with_state) {
  if (with_state) {
    EXPECT_TRUE(close_gradient("dh0", a.dh0, fd.h0));
    if (!fd.c0.empty()) {
      EXPECT_TRUE(close_gradient("dc0", a.dc0, fd.c0));
    }
  }
  EXPECT_TRUE(close_gradient("dw_ih", a.dw_ih, fd.w_ih));
  EXPECT_TRUE(close_gradient("dw_hh", a.dw_hh, fd.w_hh));
  EXPECT_TRUE(close_gradient("db_ih", a.db_ih, fd.b_ih));
  EXPECT_TRUE(close_gradient("db_hh", a.db_hh, fd.b_hh));
}

}  // namespace seqk_test
