// seqk::LstmLayer forward (inference and training) against the fp64
// reference, backward against central finite differences of the fp64
// reference loss, on every SIMD target; thread-count independence; bad
// input.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "lstm_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/lstm.h"
#include "seqk/simd.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::LstmBackwardArgs;
using seqk::LstmForwardArgs;
using seqk::LstmGrads;
using seqk::LstmLayer;
using seqk::LstmParams;
using seqk::LstmSaved;
using seqk::View;

constexpr int64_t kSizes[] = {1, 3, 17, 64, 129};  // D and H

class Lstm : public TargetTest {};

// Every combination of D, H in {1, 3, 17, 64, 129}, B in {1, 5}, T in {1, 7},
// with and without h0/c0: inference forward vs the reference, and the
// training forward bit-identical to inference.
TEST_P(Lstm, ForwardMatchesReferenceAllSizes) {
  int failures = 0;
  for (int64_t D : kSizes) {
    for (int64_t H : kSizes) {
      LstmLayer layer(D, H);
      for (int64_t B : {1, 5}) {
        for (int64_t T : {1, 7}) {
          for (bool with_state : {false, true}) {
            const Problem p = make_problem(D, H, B, T, with_state);
            // Parameters are set per problem (each has its own random ones).
            layer.set_parameters(p.params());
            if (!forward_matches_reference<LstmSaved>(layer, p) && ++failures >= 8) {
              FAIL() << "stopping after 8 failing sizes";
            }
          }
        }
      }
    }
  }
}

// The layer computes the input projection in chunks of time steps just
// ahead of the recurrence. With B = 64 and H = 129 a step's gates take
// 147 KiB, so with a 2 MiB limit T = 40 spans three chunks (14, 14, 12):
// chunk boundaries must carry h, c and the saved gates/cells over exactly.
TEST_P(Lstm, ForwardAcrossInputProjectionChunks) {
  const Problem p = make_problem(17, 129, 64, 40, /*with_state=*/true);
  LstmLayer layer(p.D, p.H);
  layer.set_parameters(p.params());
  layer.set_workspace_limit(int64_t{2} << 20);
  forward_matches_reference<LstmSaved>(layer, p);
}

// h_n / c_n are optional outputs; h0 / c0 optional inputs (zeros); each one
// on its own.
TEST_P(Lstm, OptionalStatesAndOutputs) {
  for (auto [D, H] : {std::pair<int64_t, int64_t>{3, 17}, {17, 3}, {64, 129}}) {
    const int64_t B = 5, T = 7;
    Problem full = make_problem(D, H, B, T, true, 2);
    LstmLayer layer(D, H);
    layer.set_parameters(full.params());
    for (int mask = 0; mask < 4; ++mask) {  // bit 0: h0 given, bit 1: c0 given
      Problem p = full;
      if (!(mask & 1)) p.h0.clear();
      if (!(mask & 2)) p.c0.clear();
      const RefRecurrentResult ref = p.reference();
      for (int outputs = 0; outputs < 4; ++outputs) {  // bit 0: h_n wanted, bit 1: c_n wanted
        const bool want_h = outputs & 1, want_c = outputs & 2;
        for (bool training : {false, true}) {
          Outputs out(p);
          LstmSaved saved;
          if (training) {
            layer.forward(out.args(p, want_h, want_c), saved);
          } else {
            layer.forward(out.args(p, want_h, want_c));
          }
          SCOPED_TRACE(p.describe() + " h0 " + std::to_string(mask & 1) + " c0 " + std::to_string(mask >> 1) +
                       " want h_n " + std::to_string(want_h) + " want c_n " + std::to_string(want_c) +
                       (training ? " training" : " inference"));
          EXPECT_TRUE(close_forward("y", out.y, ref.y, p));
          if (want_h) { EXPECT_TRUE(close_forward("h_n", out.h_n, ref.h_n, p)); }
          if (want_c) { EXPECT_TRUE(close_forward("c_n", out.c_n, ref.c_n, p)); }
          // Unwanted outputs are not views at all, so their buffers stay as they were.
          if (!want_h) { EXPECT_TRUE(all_sentinel(out.h_n.data(), out.h_n.size())); }
          if (!want_c) { EXPECT_TRUE(all_sentinel(out.c_n.data(), out.c_n.size())); }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Backward vs central finite differences (lstm_problem.h).

// workspace_limit > 0 makes the layer work in chunks of that many bytes of
// gates (see LstmLayer::set_workspace_limit).
Analytic run_backward(const GradProblem& g, const GradCase& c, bool want_dx, float fill,
                      Analytic* reuse = nullptr, int64_t workspace_limit = 0, seqk::ThreadPool* pool = nullptr) {
  LstmLayer layer(g.p.D, g.p.H);
  layer.set_parameters(g.p.params());
  if (workspace_limit > 0) layer.set_workspace_limit(workspace_limit);
  return run_backward_on<LstmSaved>(layer, g, c, want_dx, fill, reuse, pool);
}

// D and H multiples of 16 (the last two): the weight gradients read x and
// h_{t-1} where they lie, not packed.
const GradCase kGradCases[] = {
    {3, 5, 2, 4, true},  {3, 17, 2, 4, true},  {1, 1, 1, 1, true},   {7, 33, 3, 3, true},
    {3, 5, 2, 4, false}, {4, 17, 1, 3, false}, {16, 32, 2, 4, true}, {32, 16, 3, 3, false},
};

std::string describe(const GradCase& c) {
  std::ostringstream s;
  s << "D=" << c.D << " H=" << c.H << " B=" << c.B << " T=" << c.T
    << (c.with_state ? " (h0, c0, dh_n, dc_n given)" : " (no h0/c0/dh_n/dc_n)");
  return s.str();
}

TEST_P(Lstm, BackwardMatchesFiniteDifferences) {
  for (const GradCase& c : kGradCases) {
    SCOPED_TRACE(describe(c));
    const GradProblem g = make_grad_problem(c);
    const FdGradients& fd = fd_gradients(c);
    const Analytic a = run_backward(g, c, /*want_dx=*/true, NAN);
    EXPECT_TRUE(close_gradient("dx", a.dx, fd.x));
    expect_gradients_close(a, fd, c.with_state);
    if (!c.with_state) {
      // Not wanted: never written.
      EXPECT_TRUE(std::all_of(a.dh0.begin(), a.dh0.end(), [](float v) { return std::isnan(v); }));
      EXPECT_TRUE(std::all_of(a.dc0.begin(), a.dc0.end(), [](float v) { return std::isnan(v); }));
    }
  }
}

// dx is optional: parameter gradients must not depend on whether it is wanted.
// Forward and backward work through the sequence in chunks of steps; with a
// tiny workspace limit every chunk is 1 step, and with 2 steps' worth of
// gates (B·4Hp floats a step, Hp = H rounded up to 16) the chunks are 2, 2 or
// 2, 1: chunk boundaries must pass dh, dc and the gate gradients of the step
// after the chunk, and accumulate the weight gradients across chunks.
TEST_P(Lstm, BackwardInChunksMatchesFiniteDifferences) {
  for (const GradCase& c : {GradCase{3, 17, 2, 4, true}, GradCase{7, 33, 3, 3, true}, GradCase{3, 5, 2, 4, false},
                            GradCase{16, 16, 2, 4, true}, GradCase{16, 16, 2, 4, false}}) {
    const int64_t step_bytes = c.B * 4 * ((c.H + 15) / 16 * 16) * int64_t{sizeof(float)};
    for (int64_t limit : {int64_t{1}, 2 * step_bytes}) {
      SCOPED_TRACE(describe(c) + " workspace limit " + std::to_string(limit) + " bytes");
      const GradProblem g = make_grad_problem(c);
      const FdGradients& fd = fd_gradients(c);
      const Analytic a = run_backward(g, c, /*want_dx=*/true, NAN, nullptr, limit);
      EXPECT_TRUE(close_gradient("dx", a.dx, fd.x));
      expect_gradients_close(a, fd, c.with_state);
    }
  }
}

// Explicit pools of 1, 2 and 3 threads give bit-identical forward results
// and gradients (each output element is computed by exactly one thread in
// the same order whatever the split; the reductions over time and batch are
// split by output element, not by summation index).
TEST_P(Lstm, SameResultsWithOneTwoThreeThreads) {
  for (const GradCase& c : {GradCase{17, 129, 5, 7, true}, GradCase{3, 17, 2, 4, true}, GradCase{64, 64, 1, 3, true},
                            GradCase{5, 40, 3, 2, true}}) {
    const GradProblem g = make_grad_problem(c);
    LstmLayer layer(c.D, c.H);
    layer.set_parameters(g.p.params());
    std::vector<Outputs> forward;
    std::vector<Analytic> backward;
    for (int threads : {1, 2, 3}) {
      seqk::ThreadPool pool(threads);
      forward.emplace_back(g.p);
      layer.forward(forward.back().args(g.p), &pool);
      backward.push_back(run_backward(g, c, /*want_dx=*/true, kSentinel, nullptr, 0, &pool));
    }
    for (std::size_t i = 1; i < forward.size(); ++i) {
      SCOPED_TRACE(describe(c) + ": 1 thread vs " + std::to_string(i + 1));
      EXPECT_TRUE(bitwise_equal(forward[0].y, forward[i].y)) << "y";
      EXPECT_TRUE(bitwise_equal(forward[0].h_n, forward[i].h_n)) << "h_n";
      EXPECT_TRUE(bitwise_equal(forward[0].c_n, forward[i].c_n)) << "c_n";
      const Analytic &one = backward[0], &other = backward[i];
      EXPECT_TRUE(bitwise_equal(one.dx, other.dx)) << "dx";
      EXPECT_TRUE(bitwise_equal(one.dh0, other.dh0)) << "dh0";
      EXPECT_TRUE(bitwise_equal(one.dc0, other.dc0)) << "dc0";
      EXPECT_TRUE(bitwise_equal(one.dw_ih, other.dw_ih)) << "dw_ih";
      EXPECT_TRUE(bitwise_equal(one.dw_hh, other.dw_hh)) << "dw_hh";
      EXPECT_TRUE(bitwise_equal(one.db_ih, other.db_ih)) << "db_ih";
      EXPECT_TRUE(bitwise_equal(one.db_hh, other.db_hh)) << "db_hh";
    }
  }
}

TEST_P(Lstm, BackwardWithoutDx) {
  const GradCase c{3, 17, 2, 4, true};
  const GradProblem g = make_grad_problem(c);
  const FdGradients& fd = fd_gradients(c);
  const Analytic a = run_backward(g, c, /*want_dx=*/false, NAN);
  EXPECT_TRUE(std::all_of(a.dx.begin(), a.dx.end(), [](float v) { return std::isnan(v); })) << "dx written";
  expect_gradients_close(a, fd, c.with_state);
}

// Without h0/c0 the initial state is zero; dh0/dc0 may still be asked for
// and are then the gradient at that zero state.
TEST_P(Lstm, InitialStateGradientsWithoutInitialState) {
  const int64_t D = 3, H = 17, B = 2, T = 4;
  const Problem p = make_problem(D, H, B, T, /*with_state=*/false, 6);
  const std::vector<float> w_y = random_floats(T * B * H, 61), w_h = random_floats(B * H, 62),
                           w_c = random_floats(B * H, 63);
  const LossWeights w{to_double(w_y), to_double(w_h), to_double(w_c)};
  RefRecurrentParams rp = p.ref_params();
  std::vector<double> x = to_double(p.x), h0(B * H, 0.0), c0(B * H, 0.0);
  const std::vector<double> fd_h0 = finite_difference(&h0, rp, x, T, B, h0, c0, w, kFdStep);
  const std::vector<double> fd_c0 = finite_difference(&c0, rp, x, T, B, h0, c0, w, kFdStep);

  LstmLayer layer(D, H);
  layer.set_parameters(p.params());
  Outputs out(p);
  LstmSaved saved;
  layer.forward(out.args(p), saved);
  std::vector<float> dh0(B * H, NAN), dc0(B * H, NAN), dw_ih(4 * H * D), dw_hh(4 * H * H), db_ih(4 * H),
      db_hh(4 * H);
  LstmBackwardArgs args;
  args.x = p.x_view();
  args.y = ConstView(out.y.data(), {T, B, H});
  args.dy = ConstView(w_y.data(), {T, B, H});
  args.dh_n = ConstView(w_h.data(), {B, H});
  args.dc_n = ConstView(w_c.data(), {B, H});
  args.dh0 = View(dh0.data(), {B, H});
  args.dc0 = View(dc0.data(), {B, H});
  layer.backward(args, saved,
                 {View(dw_ih.data(), {4 * H, D}), View(dw_hh.data(), {4 * H, H}), View(db_ih.data(), {4 * H}),
                  View(db_hh.data(), {4 * H})});
  EXPECT_TRUE(close_gradient("dh0", dh0, fd_h0));
  EXPECT_TRUE(close_gradient("dc0", dc0, fd_c0));
}

// Gradients are overwritten, not accumulated: a second backward into the
// buffers holding the first one's results gives bit-identical values (an
// accumulating kernel would double them), and so does one into buffers
// holding garbage.
TEST_P(Lstm, GradientsAreOverwritten) {
  const GradCase c{3, 17, 2, 4, true};
  const GradProblem g = make_grad_problem(c);
  Analytic first = run_backward(g, c, true, NAN);
  Analytic second = run_backward(g, c, true, 0.0f, &first);
  Analytic third = run_backward(g, c, true, 1e30f);
  for (const Analytic* other : {&second, &third}) {
    EXPECT_TRUE(bitwise_equal(first.dx, other->dx)) << "dx";
    EXPECT_TRUE(bitwise_equal(first.dh0, other->dh0)) << "dh0";
    EXPECT_TRUE(bitwise_equal(first.dc0, other->dc0)) << "dc0";
    EXPECT_TRUE(bitwise_equal(first.dw_ih, other->dw_ih)) << "dw_ih";
    EXPECT_TRUE(bitwise_equal(first.dw_hh, other->dw_hh)) << "dw_hh";
    EXPECT_TRUE(bitwise_equal(first.db_ih, other->db_ih)) << "db_ih";
    EXPECT_TRUE(bitwise_equal(first.db_hh, other->db_hh)) << "db_hh";
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Lstm, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// ---------------------------------------------------------------------------
// Layer basics.

TEST(LstmLayer, SizesAndParameterCount) {
  for (auto [D, H] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {129, 64}}) {
    const LstmLayer layer(D, H);
    EXPECT_EQ(layer.input_size(), D);
    EXPECT_EQ(layer.hidden_size(), H);
    EXPECT_EQ(layer.parameter_count(), 4 * (H * D + H * H + 2 * H));
  }
}

// set_parameters copies: changing the caller's arrays afterwards changes nothing.
TEST(LstmLayer, SetParametersCopies) {
  Problem p = make_problem(5, 17, 2, 3, true, 7);
  LstmLayer layer(5, 17);
  layer.set_parameters(p.params());
  const RefRecurrentResult ref = p.reference();
  for (auto* v : {&p.w_ih, &p.w_hh, &p.b_ih, &p.b_hh})
    for (float& e : *v) e = 100.0f;
  Outputs out(p);
  layer.forward(out.args(p));
  EXPECT_TRUE(close_forward("y", out.y, ref.y, p));
}

TEST(LstmLayer, ConstructorRejectsBadSizes) {
  EXPECT_THROW(LstmLayer(0, 5), seqk::Error);
  EXPECT_THROW(LstmLayer(3, 0), seqk::Error);
  EXPECT_THROW(LstmLayer(-1, 5), seqk::Error);
  EXPECT_THROW(LstmLayer(3, -4), seqk::Error);
}

TEST(LstmLayer, WorkspaceLimitMustBePositive) {
  LstmLayer layer(3, 5);
  EXPECT_THROW(layer.set_workspace_limit(0), seqk::Error);
  EXPECT_THROW(layer.set_workspace_limit(-1), seqk::Error);
  layer.set_workspace_limit(4096);
  EXPECT_EQ(layer.workspace_limit(), 4096);
}

// ---------------------------------------------------------------------------
// Bad input: seqk::Error whose message names the offending argument, and no
// output written.

// True when `name` occurs in the message as a whole identifier (so "x" is not
// found inside "expected").
MATCHER_P(NamesArgument, name, std::string("names the argument '") + name + "'") {
  const std::string msg = arg;
  const std::string n = name;
  auto is_ident = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (std::size_t pos = msg.find(n); pos != std::string::npos; pos = msg.find(n, pos + 1)) {
    const bool left = pos == 0 || !is_ident(msg[pos - 1]);
    const bool right = pos + n.size() == msg.size() || !is_ident(msg[pos + n.size()]);
    if (left && right) return true;
  }
  return false;
}

// Runs `call`, expects a seqk::Error, returns its message ("" if none).
template <typename Call>
std::string error_message(Call&& call) {
  try {
    call();
  } catch (const seqk::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-seqk exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no seqk::Error thrown";
  return "";
}

class LstmBadInput : public testing::Test {
 protected:
  static constexpr int64_t D = 3, H = 5, B = 2, T = 4;
  // Shape-mismatched views use these oversized buffers.
  std::vector<float> big_in = random_floats(4096, 9);
  Problem p = make_problem(D, H, B, T, true, 11);
  LstmLayer layer{D, H};
  std::vector<float> y = std::vector<float>(4096, kSentinel);
  std::vector<float> h_n = std::vector<float>(4096, kSentinel);
  std::vector<float> c_n = std::vector<float>(4096, kSentinel);

  void SetUp() override { layer.set_parameters(p.params()); }

  LstmForwardArgs good_forward() {
    LstmForwardArgs a;
    a.x = p.x_view();
    a.y = View(y.data(), {T, B, H});
    a.h0 = p.h0_view();
    a.c0 = p.c0_view();
    a.h_n = View(h_n.data(), {B, H});
    a.c_n = View(c_n.data(), {B, H});
    return a;
  }

  bool outputs_untouched() const {
    return all_sentinel(y.data(), y.size()) && all_sentinel(h_n.data(), h_n.size()) &&
           all_sentinel(c_n.data(), c_n.size());
  }

  // Both forward overloads reject `args`; returns the inference message.
  std::string forward_error(const LstmForwardArgs& args) {
    std::fill(y.begin(), y.end(), kSentinel);
    std::fill(h_n.begin(), h_n.end(), kSentinel);
    std::fill(c_n.begin(), c_n.end(), kSentinel);
    const std::string msg = error_message([&] { layer.forward(args); });
    LstmSaved saved;
    const std::string msg_train = error_message([&] { layer.forward(args, saved); });
    EXPECT_EQ(msg, msg_train) << "inference and training forward should check the same way";
    EXPECT_TRUE(outputs_untouched()) << "forward wrote outputs before throwing";
    return msg;
  }
};

TEST_F(LstmBadInput, GoodArgumentsWork) {
  // The baseline the cases below each change one thing of.
  layer.forward(good_forward());
  EXPECT_FALSE(outputs_untouched());
}

TEST_F(LstmBadInput, ForwardBeforeSetParameters) {
  const LstmLayer fresh(D, H);
  const std::string msg = error_message([&] { fresh.forward(good_forward()); });
  EXPECT_THAT(msg, testing::HasSubstr("parameters"));
  LstmSaved saved;
  EXPECT_THROW(fresh.forward(good_forward(), saved), seqk::Error);
  EXPECT_TRUE(outputs_untouched());
}

TEST_F(LstmBadInput, ForwardShapes) {
  using testing::HasSubstr;
  LstmForwardArgs a;
  a = good_forward(); a.x = ConstView(big_in.data(), {T, B, D + 1});
  EXPECT_THAT(forward_error(a), NamesArgument("x"));
  a = good_forward(); a.x = ConstView(big_in.data(), {T, B + 1, D});
  EXPECT_THAT(forward_error(a), testing::AnyOf(NamesArgument("x"), NamesArgument("y")));
  a = good_forward(); a.x = ConstView(big_in.data(), {T * B, D});
  EXPECT_THAT(forward_error(a), NamesArgument("x"));
  a = good_forward(); a.x = ConstView(big_in.data(), {T, B, D}, {B * D * 2, D * 2, 2});  // not contiguous
  EXPECT_THAT(forward_error(a), NamesArgument("x"));
  a = good_forward(); a.x = ConstView();
  EXPECT_THAT(forward_error(a), NamesArgument("x"));
  a = good_forward(); a.x = ConstView(nullptr, {T, B, D});
  EXPECT_THAT(forward_error(a), NamesArgument("x"));

  a = good_forward(); a.y = View(y.data(), {T, B, H + 1});
  EXPECT_THAT(forward_error(a), NamesArgument("y"));
  a = good_forward(); a.y = View(y.data(), {T + 1, B, H});
  EXPECT_THAT(forward_error(a), NamesArgument("y"));
  a = good_forward(); a.y = View();
  EXPECT_THAT(forward_error(a), NamesArgument("y"));
  a = good_forward(); a.y = View(y.data(), {T, B, H}, {2 * B * H, 2 * H, 2});
  EXPECT_THAT(forward_error(a), NamesArgument("y"));

  a = good_forward(); a.h0 = ConstView(big_in.data(), {B + 1, H});
  EXPECT_THAT(forward_error(a), NamesArgument("h0"));
  a = good_forward(); a.h0 = ConstView(big_in.data(), {B, H - 1});
  EXPECT_THAT(forward_error(a), NamesArgument("h0"));
  a = good_forward(); a.c0 = ConstView(big_in.data(), {B, H + 1});
  EXPECT_THAT(forward_error(a), NamesArgument("c0"));
  a = good_forward(); a.c0 = ConstView(big_in.data(), {B * H});
  EXPECT_THAT(forward_error(a), NamesArgument("c0"));
  a = good_forward(); a.h_n = View(h_n.data(), {B, H + 2});
  EXPECT_THAT(forward_error(a), NamesArgument("h_n"));
  a = good_forward(); a.c_n = View(c_n.data(), {B - 1, H});
  EXPECT_THAT(forward_error(a), NamesArgument("c_n"));
}

TEST_F(LstmBadInput, ZeroStepsOrBatch) {
  LstmForwardArgs a = good_forward();
  a.x = ConstView(big_in.data(), {0, B, D});
  a.y = View(y.data(), {0, B, H});
  EXPECT_THAT(forward_error(a), testing::AnyOf(NamesArgument("x"), NamesArgument("T"), testing::HasSubstr("steps"),
                                               testing::HasSubstr("length")));
  a = good_forward();
  a.x = ConstView(big_in.data(), {T, 0, D});
  a.y = View(y.data(), {T, 0, H});
  a.h0 = ConstView();
  a.c0 = ConstView();
  a.h_n = View();
  a.c_n = View();
  EXPECT_THAT(forward_error(a), testing::AnyOf(NamesArgument("x"), NamesArgument("B"), testing::HasSubstr("batch")));
}

TEST_F(LstmBadInput, SetParametersShapes) {
  // A layer with good parameters keeps them when set_parameters throws.
  layer.forward(good_forward());
  const std::vector<float> y_before = y;
  auto expect_rejected = [&](const LstmParams& bad, const char* name) {
    SCOPED_TRACE(name);
    const std::string msg = error_message([&] { layer.set_parameters(bad); });
    EXPECT_THAT(msg, testing::HasSubstr(name));
    std::fill(y.begin(), y.end(), kSentinel);
    layer.forward(good_forward());
    EXPECT_TRUE(bitwise_equal(y, y_before)) << "a rejected set_parameters changed the layer";
    // A layer that never had parameters has none after a rejected call.
    LstmLayer fresh(D, H);
    EXPECT_THROW(fresh.set_parameters(bad), seqk::Error);
    EXPECT_THROW(fresh.forward(good_forward()), seqk::Error);
  };
  LstmParams bad;
  bad = p.params(); bad.w_ih = ConstView(big_in.data(), {4 * H, D + 1});
  expect_rejected(bad, "w_ih");
  bad = p.params(); bad.w_ih = ConstView(big_in.data(), {4 * H + 1, D});
  expect_rejected(bad, "w_ih");
  bad = p.params(); bad.w_ih = ConstView();
  expect_rejected(bad, "w_ih");
  bad = p.params(); bad.w_hh = ConstView(big_in.data(), {4 * H, H - 1});
  expect_rejected(bad, "w_hh");
  bad = p.params(); bad.w_hh = ConstView(big_in.data(), {H, 4 * H});
  expect_rejected(bad, "w_hh");
  bad = p.params(); bad.b_ih = ConstView(big_in.data(), {4 * H - 1});
  expect_rejected(bad, "b_ih");
  bad = p.params(); bad.b_hh = ConstView(big_in.data(), {4 * H + 1});
  expect_rejected(bad, "b_hh");
  bad = p.params(); bad.b_hh = ConstView(nullptr, {4 * H});
  expect_rejected(bad, "b_hh");
  // Non-finite parameter values are rejected too (error.h), naming the tensor.
  for (const char* name : {"w_ih", "w_hh", "b_ih", "b_hh"}) {
    Problem q = p;
    std::vector<float>& v = std::string(name) == "w_ih"   ? q.w_ih
                            : std::string(name) == "w_hh" ? q.w_hh
                            : std::string(name) == "b_ih" ? q.b_ih
                                                          : q.b_hh;
    v[v.size() / 2] = std::string(name) == "b_ih" ? INFINITY : NAN;
    expect_rejected(q.params(), name);
  }
}

class LstmBackwardBadInput : public LstmBadInput {
 protected:
  std::vector<float> dy = random_floats(T * B * H, 21);
  std::vector<float> dh_n = random_floats(B * H, 22);
  std::vector<float> dc_n = random_floats(B * H, 23);
  std::vector<float> grad_out = std::vector<float>(8192, kSentinel);  // every gradient output lives here
  LstmSaved saved;

  float* dx() { return grad_out.data(); }
  float* dh0() { return grad_out.data() + 1000; }
  float* dc0() { return grad_out.data() + 2000; }
  float* dw_ih() { return grad_out.data() + 3000; }
  float* dw_hh() { return grad_out.data() + 4000; }
  float* db_ih() { return grad_out.data() + 5000; }
  float* db_hh() { return grad_out.data() + 6000; }

  void SetUp() override {
    LstmBadInput::SetUp();
    layer.forward(good_forward(), saved);
  }

  LstmBackwardArgs good_backward() {
    LstmBackwardArgs a;
    a.x = p.x_view();
    a.y = ConstView(y.data(), {T, B, H});
    a.h0 = p.h0_view();
    a.c0 = p.c0_view();
    a.dy = ConstView(dy.data(), {T, B, H});
    a.dh_n = ConstView(dh_n.data(), {B, H});
    a.dc_n = ConstView(dc_n.data(), {B, H});
    a.dx = View(dx(), {T, B, D});
    a.dh0 = View(dh0(), {B, H});
    a.dc0 = View(dc0(), {B, H});
    return a;
  }
  LstmGrads good_grads() {
    return {View(dw_ih(), {4 * H, D}), View(dw_hh(), {4 * H, H}), View(db_ih(), {4 * H}), View(db_hh(), {4 * H})};
  }

  std::string backward_error(const LstmBackwardArgs& args, const LstmGrads& grads, const LstmSaved& s) {
    std::fill(grad_out.begin(), grad_out.end(), kSentinel);
    const std::string msg = error_message([&] { layer.backward(args, s, grads); });
    EXPECT_TRUE(all_sentinel(grad_out.data(), grad_out.size())) << "backward wrote outputs before throwing";
    return msg;
  }
  std::string backward_error(const LstmBackwardArgs& args) { return backward_error(args, good_grads(), saved); }
  std::string backward_error(const LstmGrads& grads) { return backward_error(good_backward(), grads, saved); }
};

TEST_F(LstmBackwardBadInput, GoodArgumentsWork) {
  layer.backward(good_backward(), saved, good_grads());
  EXPECT_FALSE(all_sentinel(dw_hh(), 4 * H * H));
}

TEST_F(LstmBackwardBadInput, ArgumentShapes) {
  LstmBackwardArgs a;
  a = good_backward(); a.x = ConstView(big_in.data(), {T, B, D + 1});
  EXPECT_THAT(backward_error(a), NamesArgument("x"));
  a = good_backward(); a.x = ConstView();
  EXPECT_THAT(backward_error(a), NamesArgument("x"));
  a = good_backward(); a.y = ConstView(big_in.data(), {T, B, H + 1});
  EXPECT_THAT(backward_error(a), NamesArgument("y"));
  a = good_backward(); a.y = ConstView();
  EXPECT_THAT(backward_error(a), NamesArgument("y"));
  a = good_backward(); a.h0 = ConstView(big_in.data(), {B, H + 1});
  EXPECT_THAT(backward_error(a), NamesArgument("h0"));
  a = good_backward(); a.c0 = ConstView(big_in.data(), {B + 1, H});
  EXPECT_THAT(backward_error(a), NamesArgument("c0"));
  a = good_backward(); a.dy = ConstView(big_in.data(), {T - 1, B, H});
  EXPECT_THAT(backward_error(a), NamesArgument("dy"));
  a = good_backward(); a.dy = ConstView();
  EXPECT_THAT(backward_error(a), NamesArgument("dy"));
  a = good_backward(); a.dh_n = ConstView(big_in.data(), {B, H - 1});
  EXPECT_THAT(backward_error(a), NamesArgument("dh_n"));
  a = good_backward(); a.dc_n = ConstView(big_in.data(), {H, B});
  EXPECT_THAT(backward_error(a), NamesArgument("dc_n"));
  a = good_backward(); a.dx = View(dx(), {T, B, D - 1});
  EXPECT_THAT(backward_error(a), NamesArgument("dx"));
  a = good_backward(); a.dh0 = View(dh0(), {B, H + 1});
  EXPECT_THAT(backward_error(a), NamesArgument("dh0"));
  a = good_backward(); a.dc0 = View(dc0(), {B - 1, H});
  EXPECT_THAT(backward_error(a), NamesArgument("dc0"));
}

// y and dy must be contiguous in backward too (a strided view over a
// larger buffer would otherwise be read as if it were contiguous).
TEST_F(LstmBackwardBadInput, NonContiguousViews) {
  std::vector<float> wide(2 * T * B * H);
  for (std::size_t i = 0; i < y.size() && 2 * i < wide.size(); ++i) wide[2 * i] = y[i];
  LstmBackwardArgs a = good_backward();
  a.y = ConstView(wide.data(), {T, B, H}, {2 * B * H, 2 * H, 2});
  EXPECT_THAT(backward_error(a), NamesArgument("y"));
  a = good_backward();
  a.dy = ConstView(big_in.data(), {T, B, H}, {2 * B * H, 2 * H, 2});
  EXPECT_THAT(backward_error(a), NamesArgument("dy"));
  a = good_backward();
  a.x = ConstView(big_in.data(), {T, B, D}, {2 * B * D, 2 * D, 2});
  EXPECT_THAT(backward_error(a), NamesArgument("x"));
}

TEST_F(LstmBackwardBadInput, GradientShapes) {
  LstmGrads g;
  g = good_grads(); g.w_ih = View(dw_ih(), {4 * H, D + 1});
  EXPECT_THAT(backward_error(g), testing::HasSubstr("w_ih"));
  g = good_grads(); g.w_ih = View();
  EXPECT_THAT(backward_error(g), testing::HasSubstr("w_ih"));
  g = good_grads(); g.w_hh = View(dw_hh(), {4 * H - 1, H});
  EXPECT_THAT(backward_error(g), testing::HasSubstr("w_hh"));
  g = good_grads(); g.b_ih = View(db_ih(), {4 * H + 1});
  EXPECT_THAT(backward_error(g), testing::HasSubstr("b_ih"));
  g = good_grads(); g.b_hh = View(db_hh(), {2 * H, 2});
  EXPECT_THAT(backward_error(g), testing::HasSubstr("b_hh"));
  g = good_grads(); g.b_hh = View(nullptr, {4 * H});
  EXPECT_THAT(backward_error(g), testing::HasSubstr("b_hh"));
}

// A LstmSaved filled by a forward over a different T or B (or never filled)
// cannot be used.
TEST_F(LstmBackwardBadInput, SavedFromDifferentShape) {
  {
    Problem shorter = make_problem(D, H, B, T - 1, true, 11);
    std::vector<float> y2((T - 1) * B * H);
    LstmForwardArgs f;
    f.x = shorter.x_view();
    f.y = View(y2.data(), {T - 1, B, H});
    LstmSaved other;
    layer.forward(f, other);
    ASSERT_EQ(other.steps(), T - 1);
    EXPECT_THAT(backward_error(good_backward(), good_grads(), other), testing::HasSubstr("saved"));
  }
  {
    Problem narrower = make_problem(D, H, B - 1, T, true, 11);
    std::vector<float> y2(T * (B - 1) * H);
    LstmForwardArgs f;
    f.x = narrower.x_view();
    f.y = View(y2.data(), {T, B - 1, H});
    LstmSaved other;
    layer.forward(f, other);
    ASSERT_EQ(other.batch(), B - 1);
    EXPECT_THAT(backward_error(good_backward(), good_grads(), other), testing::HasSubstr("saved"));
  }
  {
    const LstmSaved never_filled;
    EXPECT_THAT(backward_error(good_backward(), good_grads(), never_filled), testing::HasSubstr("saved"));
  }
}

// A LstmSaved from a layer with a smaller hidden size (same T and B) holds
// fewer gates and cells than backward reads: it must be rejected, not read
// past its end.
TEST_F(LstmBackwardBadInput, SavedFromNarrowerLayer) {
  LstmLayer narrow(D, H - 1);
  Problem pn = make_problem(D, H - 1, B, T, false, 12);
  narrow.set_parameters(pn.params());
  std::vector<float> y2(T * B * (H - 1));
  LstmForwardArgs f;
  f.x = pn.x_view();
  f.y = View(y2.data(), {T, B, H - 1});
  LstmSaved other;
  narrow.forward(f, other);
  EXPECT_THAT(backward_error(good_backward(), good_grads(), other), testing::HasSubstr("saved"));
}

TEST_F(LstmBackwardBadInput, BackwardBeforeSetParameters) {
  const LstmLayer fresh(D, H);
  const std::string msg = error_message([&] { fresh.backward(good_backward(), saved, good_grads()); });
  EXPECT_THAT(msg, testing::HasSubstr("parameters"));
  EXPECT_TRUE(all_sentinel(grad_out.data(), grad_out.size()));
}

}  // namespace
}  // namespace seqk_test
