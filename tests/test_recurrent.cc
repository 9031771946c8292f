// The GRU and vanilla RNN (tanh, relu) layers on the CPU: forward against the
// fp64 reference, backward against finite differences, in one piece and in
// chunks of steps, on every SIMD target; and the errors for arguments only
// the LSTM takes. They share the LSTM's driver (the LSTM's own suite is
// test_lstm.cc) and its problems and tolerances (lstm_problem.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lstm_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/recurrent_layer.h"

namespace seqk_test {
namespace {

using seqk::CellKind;
using seqk::RecurrentLayer;
using seqk::RecurrentSaved;

constexpr CellKind kCells[] = {CellKind::kGru, CellKind::kRnnTanh, CellKind::kRnnRelu};

class Recurrent : public TargetTest {};

// D, H in {1, 3, 17, 64} (17 and 64: one and several 16-unit blocks, a
// partial one), B in {1, 5}, T in {1, 7}, with and without an initial state.
TEST_P(Recurrent, ForwardMatchesReference) {
  for (CellKind cell : kCells) {
    int failures = 0;
    for (int64_t D : {1, 3, 17, 64}) {
      for (int64_t H : {1, 3, 17, 64}) {
        for (int64_t B : {1, 5}) {
          for (int64_t T : {1, 7}) {
            for (bool with_state : {false, true}) {
              const Problem p = make_problem(D, H, B, T, with_state, 2, cell);
              RecurrentLayer layer(cell, D, H);
              layer.set_parameters(p.params());
              if (!forward_matches_reference<RecurrentSaved>(layer, p) && ++failures >= 4) {
                FAIL() << seqk::to_string(cell) << ": stopping after 4 failing sizes";
              }
            }
          }
        }
      }
    }
  }
}

// Backward vs finite differences (with the states given and not); workspace
// limit > 0 works through the sequence in chunks of that many bytes of gates.
void expect_backward_matches(const GradCase& c, int64_t workspace_limit) {
  SCOPED_TRACE(testing::Message() << seqk::to_string(c.cell) << " D=" << c.D << " H=" << c.H << " B=" << c.B
                                  << " T=" << c.T << (c.with_state ? " with states" : " no states")
                                  << " workspace=" << workspace_limit);
  const GradProblem g = make_grad_problem(c);
  const FdGradients& fd = fd_gradients(c);
  RecurrentLayer layer(c.cell, c.D, c.H);
  layer.set_parameters(g.p.params());
  if (workspace_limit > 0) layer.set_workspace_limit(workspace_limit);
  const Analytic a = run_backward_on<RecurrentSaved>(layer, g, c, /*want_dx=*/true, NAN, nullptr);
  EXPECT_TRUE(close_gradient("dx", a.dx, fd.x));
  expect_gradients_close(a, fd, c.with_state);
  if (!c.with_state) {
    for (float v : a.dh0) ASSERT_TRUE(std::isnan(v)) << "dh0 was written though not asked for";
  }
  for (float v : a.dc0) ASSERT_TRUE(std::isnan(v)) << "dc0 was written: only the LSTM has a cell state";
}

// D and H multiples of 16 (the last two): the weight gradients read x and
// h_{t-1} where they lie, not packed.
const GradCase kGradShapes[] = {
    {3, 5, 2, 4, true},  {3, 17, 2, 4, true},   {1, 1, 1, 1, true},
    {7, 33, 3, 3, true}, {3, 5, 2, 4, false},   {16, 32, 2, 4, true},
    {32, 16, 3, 3, false},
};

TEST_P(Recurrent, BackwardMatchesFiniteDifferences) {
  for (CellKind cell : kCells) {
    for (GradCase c : kGradShapes) {
      c.cell = cell;
      expect_backward_matches(c, 0);
    }
  }
}

// Chunks of 1 step, and of 2 steps' gates (G·Hp floats per row and step, Hp
// = H rounded up to 16): the carried gradients must cross chunk boundaries,
// and h_{t-1}, read in place, the start of each chunk.
TEST_P(Recurrent, BackwardInChunksMatchesFiniteDifferences) {
  for (CellKind cell : kCells) {
    for (GradCase c : {GradCase{3, 17, 2, 5, true}, GradCase{16, 16, 2, 5, true}, GradCase{16, 16, 2, 5, false}}) {
      c.cell = cell;
      const int64_t step_bytes = c.B * seqk::gates_per_unit(cell) * ((c.H + 15) / 16 * 16) * int64_t{sizeof(float)};
      for (int64_t limit : {int64_t{1}, 2 * step_bytes}) expect_backward_matches(c, limit);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Recurrent, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// Arguments only the LSTM takes, cells a layer cannot have, saved state of
// another cell: a clear error, nothing written.
TEST(RecurrentLayer, RejectsLstmOnlyArgumentsAndMismatchedCells) {
  const Problem p = make_problem(3, 5, 2, 4, true, 9, CellKind::kGru);
  seqk::GruLayer gru(3, 5);
  gru.set_parameters(p.params());
  Outputs out(p);
  std::vector<float> c0(2 * 5, 0.5f);
  seqk::RecurrentForwardArgs args = out.args(p);
  args.c0 = ConstView(c0.data(), {2, 5});
  try {
    gru.forward(args);
    ADD_FAILURE() << "c0 given to a GRU was accepted";
  } catch (const seqk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("c0"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(all_sentinel(out.y.data(), out.y.size()));
  args = out.args(p);
  args.c_n = View(c0.data(), {2, 5});
  EXPECT_THROW(gru.forward(args), seqk::Error);

  EXPECT_THROW(seqk::RnnLayer(3, 5, CellKind::kGru), seqk::Error);
  // A GRU's parameters have 3H rows, not 4H.
  const Problem lstm_problem = make_problem(3, 5, 2, 4, true, 9, CellKind::kLstm);
  EXPECT_THROW(gru.set_parameters(lstm_problem.params()), seqk::Error);

  // Saved by an RNN of the same sizes, handed to the GRU's backward.
  const Problem rnn_problem = make_problem(3, 5, 2, 4, true, 9, CellKind::kRnnTanh);
  seqk::RnnLayer rnn(3, 5);
  rnn.set_parameters(rnn_problem.params());
  Outputs rnn_out(rnn_problem);
  RecurrentSaved saved;
  rnn.forward(rnn_out.args(rnn_problem), saved);
  std::vector<float> dy(4 * 2 * 5, 1.0f), dw_ih(15 * 3, kSentinel), dw_hh(15 * 5, kSentinel), db(15, kSentinel),
      db2(15, kSentinel);
  seqk::RecurrentBackwardArgs back;
  back.x = p.x_view();
  back.y = ConstView(rnn_out.y.data(), {4, 2, 5});
  back.dy = ConstView(dy.data(), {4, 2, 5});
  try {
    gru.backward(back, saved,
                 {View(dw_ih.data(), {15, 3}), View(dw_hh.data(), {15, 5}), View(db.data(), {15}),
                  View(db2.data(), {15})});
    ADD_FAILURE() << "an RNN's saved state was accepted by a GRU";
  } catch (const seqk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rnn_tanh"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(all_sentinel(dw_ih.data(), dw_ih.size()));
}

TEST(RecurrentLayer, ParameterCountIsPyTorchs) {
  // torch.nn.GRU(10, 20): 3·(20·10 + 20·20 + 2·20) = 1920; torch.nn.RNN(10, 20): 640.
  EXPECT_EQ(seqk::GruLayer(10, 20).parameter_count(), 1920);
  EXPECT_EQ(seqk::RnnLayer(10, 20).parameter_count(), 640);
}

}  // namespace
}  // namespace seqk_test
