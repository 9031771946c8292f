// Stacked and bidirectional layers (RecurrentStack) for every cell, with
// sequences of different lengths: forward against an fp64 reference that
// runs each sequence alone (the reverse direction from the sequence's own
// last step), backward against finite differences of that reference, and
// the packed layout against the padded one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/recurrent_stack.h"
#include "seqk/sequence_batch.h"

namespace seqk_test {
namespace {

using seqk::CellKind;
using seqk::ConstView;
using seqk::View;

// A stack problem: L layers, 1 or 2 directions, B padded sequences of their
// own lengths (max T), PyTorch-initialised parameters, initial states, and
// the loss weights (L = Σ w_y·y + Σ w_h·h_n + Σ w_c·c_n).
struct StackProblem {
  CellKind cell;
  int64_t D, H, L, dirs, B, T;
  std::vector<int64_t> lengths;
  std::vector<RefRecurrentParams> params;  // L·dirs, PyTorch's order
  std::vector<double> x, h0, c0;           // (T, B, D), (L·dirs, B, H) each; c0 empty unless LSTM
  std::vector<double> w_y, w_h, w_c;       // (T, B, dirs·H), (L·dirs, B, H) each

  int64_t states() const { return L * dirs; }
  int64_t width(int64_t l) const { return l == 0 ? D : dirs * H; }
};

std::vector<double> random_doubles(std::size_t n, uint64_t seed, float bound) {
  return to_double(random_floats(n, seed, -bound, bound));
}

StackProblem make_stack_problem(CellKind cell, int64_t D, int64_t H, int64_t L, bool bidirectional,
                                std::vector<int64_t> lengths) {
  StackProblem p{cell, D, H, L, bidirectional ? 2 : 1, static_cast<int64_t>(lengths.size()),
                 *std::max_element(lengths.begin(), lengths.end()), lengths, {}, {}, {}, {}, {}, {}, {}};
  const int64_t G = seqk::gates_per_unit(cell);
  const float k = 1.0f / std::sqrt(static_cast<float>(H));
  uint64_t seed = 100;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t dir = 0; dir < p.dirs; ++dir) {
      RefRecurrentParams rp;
      rp.cell = cell;
      rp.D = p.width(l);
      rp.H = H;
      rp.w_ih = random_doubles(G * H * rp.D, ++seed, k);
      rp.w_hh = random_doubles(G * H * H, ++seed, k);
      rp.b_ih = random_doubles(G * H, ++seed, k);
      rp.b_hh = random_doubles(G * H, ++seed, k);
      p.params.push_back(rp);
    }
  }
  p.x = random_doubles(p.T * p.B * D, 201, 1.0f);
  p.h0 = random_doubles(p.states() * p.B * H, 202, 1.0f);
  if (seqk::has_cell_state(cell)) p.c0 = random_doubles(p.states() * p.B * H, 203, 2.0f);
  p.w_y = random_doubles(p.T * p.B * p.dirs * H, 204, 1.0f);
  p.w_h = random_doubles(p.states() * p.B * H, 205, 1.0f);
  if (seqk::has_cell_state(cell)) p.w_c = random_doubles(p.states() * p.B * H, 206, 1.0f);
  return p;
}

struct StackResult {
  std::vector<double> y, h_n, c_n;  // (T, B, dirs·H) with zeros past each length; (L·dirs, B, H)
};

// Each sequence alone, layer by layer; the reverse direction reads the
// sequence backwards from its own last step.
StackResult reference_stack(const StackProblem& p) {
  const int64_t H = p.H, out = p.dirs * H;
  StackResult r{std::vector<double>(p.T * p.B * out, 0.0), std::vector<double>(p.states() * p.B * H, 0.0),
                std::vector<double>(p.c0.empty() ? 0 : p.states() * p.B * H, 0.0)};
  auto reverse_steps = [](const std::vector<double>& v, int64_t steps, int64_t width) {
    std::vector<double> reversed(v.size());
    for (int64_t t = 0; t < steps; ++t)
      std::copy_n(v.begin() + (steps - 1 - t) * width, width, reversed.begin() + t * width);
    return reversed;
  };
  auto state = [&](const std::vector<double>& s, int64_t index, int64_t b) {
    return s.empty() ? std::vector<double>()
                     : std::vector<double>(s.begin() + (index * p.B + b) * H, s.begin() + (index * p.B + b + 1) * H);
  };
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t len = p.lengths[b];
    std::vector<double> input;
    for (int64_t t = 0; t < len; ++t)
      input.insert(input.end(), p.x.begin() + (t * p.B + b) * p.D, p.x.begin() + (t * p.B + b + 1) * p.D);
    for (int64_t l = 0; l < p.L; ++l) {
      std::vector<double> output(len * out);
      for (int64_t dir = 0; dir < p.dirs; ++dir) {
        const int64_t index = l * p.dirs + dir;
        const std::vector<double> in = dir == 0 ? input : reverse_steps(input, len, p.width(l));
        const RefRecurrentResult res =
            reference_recurrent_forward(p.params[index], in, len, 1, state(p.h0, index, b), state(p.c0, index, b));
        const std::vector<double> y = dir == 0 ? res.y : reverse_steps(res.y, len, H);
        for (int64_t t = 0; t < len; ++t) std::copy_n(y.begin() + t * H, H, output.begin() + t * out + dir * H);
        std::copy(res.h_n.begin(), res.h_n.end(), r.h_n.begin() + (index * p.B + b) * H);
        if (!r.c_n.empty()) std::copy(res.c_n.begin(), res.c_n.end(), r.c_n.begin() + (index * p.B + b) * H);
      }
      input = output;
    }
    for (int64_t t = 0; t < len; ++t) std::copy_n(input.begin() + t * out, out, r.y.begin() + (t * p.B + b) * out);
  }
  return r;
}

double stack_loss(const StackProblem& p) {
  const StackResult r = reference_stack(p);
  double loss = 0.0;
  for (std::size_t i = 0; i < r.y.size(); ++i) loss += p.w_y[i] * r.y[i];
  for (std::size_t i = 0; i < r.h_n.size(); ++i) loss += p.w_h[i] * r.h_n[i];
  for (std::size_t i = 0; i < r.c_n.size(); ++i) loss += p.w_c[i] * r.c_n[i];
  return loss;
}

std::vector<double> stack_fd(StackProblem& p, std::vector<double>* target) {
  constexpr double kStep = 1e-5;
  std::vector<double> grad(target->size());
  for (std::size_t i = 0; i < target->size(); ++i) {
    const double saved = (*target)[i];
    (*target)[i] = saved + kStep;
    const double plus = stack_loss(p);
    (*target)[i] = saved - kStep;
    const double minus = stack_loss(p);
    (*target)[i] = saved;
    grad[i] = (plus - minus) / (2 * kStep);
  }
  return grad;
}

// seqk's stack on the problem, padded with lengths: forward (training) and backward.
struct StackRun {
  std::vector<float> y, h_n, c_n, dx, dh0, dc0;
  std::vector<std::vector<float>> dw_ih, dw_hh, db_ih, db_hh;
};

std::vector<float> floats(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// seqk's stack with the problem's parameters (in fp32; set_parameters packs
// its own copy).
seqk::RecurrentStack stack_of(const StackProblem& p) {
  seqk::RecurrentStack stack(p.cell, p.D, p.H, p.L, p.dirs == 2);
  const int64_t G = seqk::gates_per_unit(p.cell), H = p.H;
  std::vector<std::vector<float>> w_ih, w_hh, b_ih, b_hh;
  std::vector<seqk::RecurrentParams> params;
  for (const RefRecurrentParams& rp : p.params) {
    w_ih.push_back(floats(rp.w_ih));
    w_hh.push_back(floats(rp.w_hh));
    b_ih.push_back(floats(rp.b_ih));
    b_hh.push_back(floats(rp.b_hh));
  }
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    params.push_back({ConstView(w_ih[i].data(), {G * H, p.params[i].D}), ConstView(w_hh[i].data(), {G * H, H}),
                      ConstView(b_ih[i].data(), {G * H}), ConstView(b_hh[i].data(), {G * H})});
  }
  stack.set_parameters(params);
  return stack;
}

// `saved`: one kept from earlier calls (null: a fresh one).
StackRun run_stack(const StackProblem& p, seqk::RecurrentStackSaved* kept = nullptr) {
  const seqk::RecurrentStack stack = stack_of(p);
  const int64_t G = seqk::gates_per_unit(p.cell), H = p.H, S = p.states(), out = p.dirs * H;
  const std::vector<float> x = floats(p.x), h0 = floats(p.h0), c0 = floats(p.c0), dy = floats(p.w_y),
                           dh_n = floats(p.w_h), dc_n = floats(p.w_c);
  const bool has_c = !p.c0.empty();
  StackRun r;
  r.y.assign(p.T * p.B * out, kSentinel);
  r.h_n.assign(S * p.B * H, kSentinel);
  r.c_n.assign(S * p.B * H, kSentinel);
  seqk::RecurrentStackSaved fresh;
  seqk::RecurrentStackSaved& saved = kept ? *kept : fresh;
  stack.forward({ConstView(x.data(), {p.T, p.B, p.D}), View(r.y.data(), {p.T, p.B, out}),
                 ConstView(h0.data(), {S, p.B, H}), has_c ? ConstView(c0.data(), {S, p.B, H}) : ConstView(),
                 View(r.h_n.data(), {S, p.B, H}), has_c ? View(r.c_n.data(), {S, p.B, H}) : View(), p.lengths, {}},
                saved);
  r.dx.assign(p.T * p.B * p.D, kSentinel);
  r.dh0.assign(S * p.B * H, kSentinel);
  r.dc0.assign(S * p.B * H, kSentinel);
  std::vector<seqk::RecurrentGrads> grads;
  for (const RefRecurrentParams& rp : p.params) {
    r.dw_ih.emplace_back(rp.w_ih.size(), kSentinel);
    r.dw_hh.emplace_back(rp.w_hh.size(), kSentinel);
    r.db_ih.emplace_back(rp.b_ih.size(), kSentinel);
    r.db_hh.emplace_back(rp.b_hh.size(), kSentinel);
  }
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    grads.push_back({View(r.dw_ih[i].data(), {G * H, p.params[i].D}), View(r.dw_hh[i].data(), {G * H, H}),
                     View(r.db_ih[i].data(), {G * H}), View(r.db_hh[i].data(), {G * H})});
  }
  stack.backward({ConstView(x.data(), {p.T, p.B, p.D}), ConstView(r.y.data(), {p.T, p.B, out}),
                  ConstView(h0.data(), {S, p.B, H}), has_c ? ConstView(c0.data(), {S, p.B, H}) : ConstView(),
                  ConstView(dy.data(), {p.T, p.B, out}), ConstView(dh_n.data(), {S, p.B, H}),
                  has_c ? ConstView(dc_n.data(), {S, p.B, H}) : ConstView(), View(r.dx.data(), {p.T, p.B, p.D}),
                  View(r.dh0.data(), {S, p.B, H}), has_c ? View(r.dc0.data(), {S, p.B, H}) : View(), p.lengths, {}},
                 saved, grads);
  return r;
}

// Same tolerances as the single layer's (lstm_problem.h): forward relative
// to the values, gradients 1e-5 of each tensor's scale.
testing::AssertionResult close_values(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                                      double tol) {
  std::vector<double> tols(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) tols[i] = tol * (1.0 + std::fabs(want[i]));
  return close_elementwise(what, got.data(), want.data(), tols.data(), want.size());
}
testing::AssertionResult close_grad(const char* what, const std::vector<float>& got, const std::vector<double>& fd) {
  return close_uniform(what, got.data(), fd.data(), 1e-5 * max_abs(fd) + 1e-7, fd.size());
}

constexpr CellKind kCells[] = {CellKind::kLstm, CellKind::kGru, CellKind::kRnnTanh};

// Two layers, one direction (the upper layer's input is the lower one's
// saved output) and two.
TEST(RecurrentStack, TwoLayersMatchReferenceAndFiniteDifferences) {
  for (bool bidirectional : {false, true}) {
    for (CellKind cell : kCells) {
      SCOPED_TRACE(testing::Message() << seqk::to_string(cell) << (bidirectional ? " bidirectional" : ""));
      StackProblem p = make_stack_problem(cell, 3, 5, 2, bidirectional, {4, 2, 3});
      const StackRun got = run_stack(p);
      const StackResult want = reference_stack(p);
      // fp32 through 2 layers of ≤ 4 steps: the single layer's bound (8 eps sqrt(D+H+2) T) for the wider layer.
      const double tol = 8.0 * 1.2e-7 * std::sqrt(double(2 * p.H + p.H + 2)) * p.T * p.L;
      EXPECT_TRUE(close_values("y", got.y, want.y, tol));
      EXPECT_TRUE(close_values("h_n", got.h_n, want.h_n, tol));
      if (!want.c_n.empty()) {
        EXPECT_TRUE(close_values("c_n", got.c_n, want.c_n, tol));
      }

      EXPECT_TRUE(close_grad("dx", got.dx, stack_fd(p, &p.x)));
      EXPECT_TRUE(close_grad("dh0", got.dh0, stack_fd(p, &p.h0)));
      if (!p.c0.empty()) {
        EXPECT_TRUE(close_grad("dc0", got.dc0, stack_fd(p, &p.c0)));
      }
      for (std::size_t i = 0; i < p.params.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "layer " << i / p.dirs << (i % p.dirs ? " reverse" : " forward"));
        EXPECT_TRUE(close_grad("dw_ih", got.dw_ih[i], stack_fd(p, &p.params[i].w_ih)));
        EXPECT_TRUE(close_grad("dw_hh", got.dw_hh[i], stack_fd(p, &p.params[i].w_hh)));
        EXPECT_TRUE(close_grad("db_ih", got.db_ih[i], stack_fd(p, &p.params[i].b_ih)));
        EXPECT_TRUE(close_grad("db_hh", got.db_hh[i], stack_fd(p, &p.params[i].b_hh)));
      }
    }
  }
}

// A saved kept across training steps keeps the stack's buffers: after a
// larger problem has filled them, a smaller one must give exactly what it
// gives with a fresh saved (no stale row, gradient or size survives).
TEST(RecurrentStack, KeptSavedGivesTheFreshResults) {
  for (CellKind cell : kCells) {
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(testing::Message() << seqk::to_string(cell) << (bidirectional ? " bidirectional" : ""));
      seqk::RecurrentStackSaved kept;
      run_stack(make_stack_problem(cell, 3, 5, 2, bidirectional, {6, 2, 5, 4}), &kept);
      const StackProblem p = make_stack_problem(cell, 3, 5, 2, bidirectional, {3, 1});
      const StackRun reused = run_stack(p, &kept), fresh = run_stack(p);
      EXPECT_EQ(reused.y, fresh.y);
      EXPECT_EQ(reused.h_n, fresh.h_n);
      EXPECT_EQ(reused.dx, fresh.dx);
      EXPECT_EQ(reused.dh0, fresh.dh0);
      EXPECT_EQ(reused.dc0, fresh.dc0);
      EXPECT_EQ(reused.dw_ih, fresh.dw_ih);
      EXPECT_EQ(reused.dw_hh, fresh.dw_hh);
      EXPECT_EQ(reused.db_ih, fresh.db_ih);
      EXPECT_EQ(reused.db_hh, fresh.db_hh);
    }
  }
}

// The inference forward keeps its buffers in the stack (and each layer's in
// the layer) for one caller at a time: callers on two threads at once, each
// with its own pool, still get the results of a caller alone.
TEST(RecurrentStack, ConcurrentInferenceCallsGiveTheSameResults) {
  const StackProblem p = make_stack_problem(CellKind::kLstm, 16, 32, 2, true, {40, 33, 17, 40, 2, 29});
  const seqk::RecurrentStack stack = stack_of(p);
  const std::vector<float> x = floats(p.x);
  auto run = [&](seqk::ThreadPool* pool) {
    std::vector<float> y(p.T * p.B * 2 * p.H, kSentinel);
    stack.forward({ConstView(x.data(), {p.T, p.B, p.D}), View(y.data(), {p.T, p.B, 2 * p.H}), {}, {}, {}, {},
                   p.lengths, {}},
                  pool);
    return y;
  };
  seqk::ThreadPool alone(2);
  const std::vector<float> want = run(&alone);
  std::vector<float> got[2];
  std::thread callers[2];
  for (int c = 0; c < 2; ++c) {
    callers[c] = std::thread([&, c] {
      seqk::ThreadPool own(2);
      for (int i = 0; i < 50; ++i) {
        got[c] = run(&own);
        if (got[c] != want) return;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(got[0], want);
  EXPECT_EQ(got[1], want);
}

// Larger, three layers, one direction and two: forward against the reference.
TEST(RecurrentStack, ForwardMatchesReferenceAtLargerSizes) {
  for (CellKind cell : kCells) {
    for (bool bidirectional : {false, true}) {
      SCOPED_TRACE(testing::Message() << seqk::to_string(cell) << (bidirectional ? " bidirectional" : ""));
      const StackProblem p = make_stack_problem(cell, 7, 17, 3, bidirectional, {5, 1, 5, 3});
      const StackRun got = run_stack(p);
      const StackResult want = reference_stack(p);
      const double tol = 8.0 * 1.2e-7 * std::sqrt(double(3 * p.H + 2)) * p.T * p.L;
      EXPECT_TRUE(close_values("y", got.y, want.y, tol));
      EXPECT_TRUE(close_values("h_n", got.h_n, want.h_n, tol));
    }
  }
}

// The packed layout through the stack gives the padded layout's results.
TEST(RecurrentStack, PackedEqualsPadded) {
  const StackProblem p = make_stack_problem(CellKind::kGru, 3, 5, 2, true, {2, 4, 4, 1});
  const StackRun padded = run_stack(p);
  const seqk::RecurrentStack stack = stack_of(p);
  const seqk::PackedLayout layout = seqk::packed_layout(p.lengths);
  const int64_t N = layout.rows(), S = p.states(), B = p.B, H = p.H;
  const std::vector<float> x = floats(p.x), h0 = floats(p.h0);
  std::vector<float> x_packed(N * p.D), y_packed(N * 2 * H), y(p.T * B * 2 * H), h0_sorted(S * B * H),
      h_n_sorted(S * B * H), h_n(S * B * H);
  seqk::pack(layout, ConstView(x.data(), {p.T, B, p.D}), View(x_packed.data(), {N, p.D}));
  for (int64_t s = 0; s < S; ++s)
    seqk::sort_rows(layout, ConstView(h0.data() + s * B * H, {B, H}), View(h0_sorted.data() + s * B * H, {B, H}));
  stack.forward({ConstView(x_packed.data(), {N, p.D}), View(y_packed.data(), {N, 2 * H}),
                 ConstView(h0_sorted.data(), {S, B, H}), {}, View(h_n_sorted.data(), {S, B, H}), {}, {},
                 layout.batch_sizes});
  seqk::unpack(layout, ConstView(y_packed.data(), {N, 2 * H}), View(y.data(), {p.T, B, 2 * H}));
  for (int64_t s = 0; s < S; ++s)
    seqk::unsort_rows(layout, ConstView(h_n_sorted.data() + s * B * H, {B, H}), View(h_n.data() + s * B * H, {B, H}));
  EXPECT_TRUE(close_grad("y", y, to_double(padded.y)));
  EXPECT_TRUE(close_grad("h_n", h_n, to_double(padded.h_n)));
}

TEST(RecurrentStack, RejectsBadArguments) {
  EXPECT_THROW(seqk::RecurrentStack(CellKind::kLstm, 3, 5, 0, false), seqk::Error);
  seqk::RecurrentStack stack(CellKind::kLstm, 3, 5, 2, true);
  EXPECT_EQ(stack.output_size(), 10);
  EXPECT_EQ(stack.layer_input_size(1), 10);
  // torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True): 2·4·5·(3+5+2) + 2·4·5·(10+5+2) = 1080.
  EXPECT_EQ(stack.parameter_count(), 1080);
  std::vector<seqk::RecurrentParams> too_few(3);
  EXPECT_THROW(stack.set_parameters(too_few), seqk::Error);
}

}  // namespace
}  // namespace seqk_test
