// Seq2seq attention (additive, dot, general) on every SIMD target: the whole
// pipeline (key projection, forward, backward, projection backward) against
// fp64 loops written from the formulas in seqk/seq2seq_attention.h, at sizes
// that are not multiples of any vector width, with padding and a length of
// 0; the backward against central finite differences of the fp64 forward for
// every input and weight; step-by-step decoding (Tq = 1, gradients
// accumulated) against one teacher-forced call; zero rows; the same bits on
// 1, 2 and 3 threads; bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "reference.h"
#include "seq2seq_problem.h"
#include "seqk/error.h"
#include "seqk/seq2seq_attention.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;

// ---------------------------------------------------------------------------
// Running the kernels: project the keys, forward, backward, project back.

struct Views {
  seqk::Seq2SeqAttentionInputs in;
  std::vector<float> keys;
};

// keys computed (the forward's first step); `in` points into x, p and keys.
void prepare(const Problem& p, const Values<float>& x, Views& v, seqk::ThreadPool* pool) {
  v.in = {p.score, ConstView(x.s.data(), {p.B, p.Tq, p.Ds}), ConstView(x.h.data(), {p.B, p.S, p.Dh}), {}, p.lengths};
  if (p.additive()) {
    v.in.w_query = ConstView(x.w_query.data(), {p.A, p.Ds});
    v.in.v = ConstView(x.v.data(), {p.A});
  }
  if (!p.dot()) {
    v.keys.assign(p.B * p.S * p.K(), kSentinel);
    seqk::seq2seq_project_keys(v.in.h, ConstView(x.w_key.data(), {p.K(), p.Dh}),
                               View(v.keys.data(), {p.B, p.S, p.K()}), pool);
    v.in.keys = ConstView(v.keys.data(), {p.B, p.S, p.K()});
  }
}

Results run(const Problem& p, const Values<float>& x, int threads) {
  seqk::ThreadPool pool(threads);
  Views v;
  prepare(p, x, v, &pool);
  // Sentinels: every element must be written.
  Results r{std::vector<float>(p.B * p.Tq * p.Dh, kSentinel), std::vector<float>(p.B * p.Tq * p.S, kSentinel),
            std::vector<float>(x.s.size(), kSentinel),       std::vector<float>(x.h.size(), kSentinel),
            std::vector<float>(x.w_query.size(), kSentinel), std::vector<float>(x.w_key.size(), kSentinel),
            std::vector<float>(x.v.size(), kSentinel)};
  seqk::seq2seq_attention_forward(v.in, View(r.context.data(), {p.B, p.Tq, p.Dh}),
                                  View(r.alpha.data(), {p.B, p.Tq, p.S}), &pool);
  std::vector<float> dkeys(v.keys.size(), kSentinel);
  seqk::Seq2SeqAttentionGrads grads{View(r.ds.data(), {p.B, p.Tq, p.Ds}), View(r.dh.data(), {p.B, p.S, p.Dh})};
  if (!p.dot()) grads.dkeys = View(dkeys.data(), {p.B, p.S, p.K()});
  if (p.additive()) {
    grads.dw_query = View(r.dw_query.data(), {p.A, p.Ds});
    grads.dv = View(r.dv.data(), {p.A});
  }
  seqk::seq2seq_attention_backward(v.in, ConstView(r.alpha.data(), {p.B, p.Tq, p.S}),
                                   ConstView(x.dcontext.data(), {p.B, p.Tq, p.Dh}), grads, &pool);
  if (!p.dot()) {
    seqk::seq2seq_project_keys_backward(v.in.h, ConstView(x.w_key.data(), {p.K(), p.Dh}), grads.dkeys, grads.dh,
                                        View(r.dw_key.data(), {p.K(), p.Dh}), &pool);
  }
  return r;
}

// Sizes around the vector widths (4, 8, 16 floats): 1, 3, 17, 33; a single
// source position; a batch row of length 0 and one of full length.
const std::vector<Problem>& awkward_problems() {
  static const std::vector<Problem> problems = {
      {Seq2SeqScore::kDot, 1, 1, 1, 1, 1, 1},
      {Seq2SeqScore::kDot, 3, 5, 7, 3, 17, 33, {7, 0, 4}},
      {Seq2SeqScore::kDot, 2, 1, 40, 33, 33, 17, {40, 23}},
      {Seq2SeqScore::kDot, 2, 4, 19, 17, 8, 3, {1, 19}},
  };
  return problems;
}

class Seq2SeqAttention : public TargetTest {};

TEST_P(Seq2SeqAttention, MatchesFp64) {
  uint64_t seed = 100;
  for (const Problem& base : awkward_problems())
    for (Seq2SeqScore kind : kScores) {
      const Problem p = with_score(base, kind);
      SCOPED_TRACE(describe(p));
      const Values<float> x = random_values(p, seed += 10);
      const Values<double> xd = to_double(x);
      expect_close(run(p, x, 2), reference_forward(p, xd), reference_backward(p, xd));
    }
}

// Small enough for a finite difference per element of every input and
// weight; padding and an empty batch row in each.
TEST_P(Seq2SeqAttention, BackwardMatchesFiniteDifferences) {
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 3, 2, 5, 4, 6, 5, {5, 0, 3}}, kind);
    SCOPED_TRACE(describe(p));
    const Values<float> x = random_values(p, 200);
    Values<double> xd = to_double(x);
    const Results got = run(p, x, 2);
    EXPECT_TRUE(close("ds", got.ds, finite_differences(p, xd, &xd.s)));
    EXPECT_TRUE(close("dh", got.dh, finite_differences(p, xd, &xd.h)));
    EXPECT_TRUE(close("dw_query", got.dw_query, finite_differences(p, xd, &xd.w_query)));
    EXPECT_TRUE(close("dw_key", got.dw_key, finite_differences(p, xd, &xd.w_key)));
    EXPECT_TRUE(close("dv", got.dv, finite_differences(p, xd, &xd.v)));
  }
}

// Positions past a length get α = 0 and zero gradients; a length of 0 gives
// a zero context and zero ds; exactly, and no NaN anywhere.
TEST_P(Seq2SeqAttention, PaddingAndEmptyRowsAreExactlyZero) {
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 3, 3, 9, 5, 7, 6, {0, 4, 9}}, kind);
    SCOPED_TRACE(describe(p));
    const Results r = run(p, random_values(p, 300), 2);
    for (const auto* v : {&r.context, &r.alpha, &r.ds, &r.dh, &r.dw_query, &r.dw_key, &r.dv})
      for (float value : *v) ASSERT_TRUE(std::isfinite(value));
    for (int64_t b = 0; b < p.B; ++b) {
      for (int64_t t = 0; t < p.Tq; ++t) {
        const int64_t row = b * p.Tq + t;
        for (int64_t i = p.length(b); i < p.S; ++i) ASSERT_EQ(r.alpha[row * p.S + i], 0.0f) << b << " " << i;
        if (p.length(b) > 0) continue;
        for (int64_t c = 0; c < p.Dh; ++c) ASSERT_EQ(r.context[row * p.Dh + c], 0.0f) << "b=" << b;
        for (int64_t d = 0; d < p.Ds; ++d) ASSERT_EQ(r.ds[row * p.Ds + d], 0.0f) << "b=" << b;
      }
      for (int64_t i = p.length(b); i < p.S; ++i)
        for (int64_t c = 0; c < p.Dh; ++c) ASSERT_EQ(r.dh[(b * p.S + i) * p.Dh + c], 0.0f) << b << " " << i;
    }
  }
}

// Decoding one step at a time (Tq = 1 per call, the keys projected once,
// gradients accumulated over the steps, the projection's backward once)
// gives what one call over all the steps gives.
TEST_P(Seq2SeqAttention, StepByStepMatchesAllStepsAtOnce) {
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 3, 6, 11, 9, 10, 13, {11, 2, 0}}, kind);
    SCOPED_TRACE(describe(p));
    const Values<float> x = random_values(p, 400);
    const Results all = run(p, x, 2);

    seqk::ThreadPool pool(2);
    Views v;
    prepare(p, x, v, &pool);
    Results steps{std::vector<float>(all.context.size()), std::vector<float>(all.alpha.size()),
                  std::vector<float>(all.ds.size()),      std::vector<float>(all.dh.size(), 0.0f),
                  std::vector<float>(all.dw_query.size(), 0.0f), std::vector<float>(all.dw_key.size()),
                  std::vector<float>(all.dv.size(), 0.0f)};
    std::vector<float> dkeys(v.keys.size(), 0.0f);
    for (int64_t t = 0; t < p.Tq; ++t) {
      // Step t's (B, 1, ·) slices, gathered.
      auto slice = [&](const std::vector<float>& from, int64_t width) {
        std::vector<float> out;
        for (int64_t b = 0; b < p.B; ++b)
          out.insert(out.end(), from.begin() + (b * p.Tq + t) * width, from.begin() + (b * p.Tq + t + 1) * width);
        return out;
      };
      const std::vector<float> s_t = slice(x.s, p.Ds), dcontext_t = slice(x.dcontext, p.Dh);
      std::vector<float> context_t(p.B * p.Dh), alpha_t(p.B * p.S), ds_t(p.B * p.Ds);
      seqk::Seq2SeqAttentionInputs in = v.in;
      in.s = ConstView(s_t.data(), {p.B, 1, p.Ds});
      seqk::seq2seq_attention_forward(in, View(context_t.data(), {p.B, 1, p.Dh}), View(alpha_t.data(), {p.B, 1, p.S}),
                                      &pool);
      seqk::Seq2SeqAttentionGrads grads{View(ds_t.data(), {p.B, 1, p.Ds}), View(steps.dh.data(), {p.B, p.S, p.Dh})};
      grads.accumulate = true;
      if (!p.dot()) grads.dkeys = View(dkeys.data(), {p.B, p.S, p.K()});
      if (p.additive()) {
        grads.dw_query = View(steps.dw_query.data(), {p.A, p.Ds});
        grads.dv = View(steps.dv.data(), {p.A});
      }
      seqk::seq2seq_attention_backward(in, ConstView(alpha_t.data(), {p.B, 1, p.S}),
                                       ConstView(dcontext_t.data(), {p.B, 1, p.Dh}), grads, &pool);
      for (int64_t b = 0; b < p.B; ++b) {
        std::copy_n(&context_t[b * p.Dh], p.Dh, &steps.context[(b * p.Tq + t) * p.Dh]);
        std::copy_n(&alpha_t[b * p.S], p.S, &steps.alpha[(b * p.Tq + t) * p.S]);
        std::copy_n(&ds_t[b * p.Ds], p.Ds, &steps.ds[(b * p.Tq + t) * p.Ds]);
      }
    }
    if (!p.dot()) {
      seqk::seq2seq_project_keys_backward(v.in.h, ConstView(x.w_key.data(), {p.K(), p.Dh}),
                                          ConstView(dkeys.data(), {p.B, p.S, p.K()}),
                                          View(steps.dh.data(), {p.B, p.S, p.Dh}),
                                          View(steps.dw_key.data(), {p.K(), p.Dh}), &pool);
    }
    expect_close(steps, {to_double(all.context), to_double(all.alpha)},
                 {to_double(all.ds), to_double(all.dh), to_double(all.dw_query), to_double(all.dw_key),
                  to_double(all.dv)});
  }
}

TEST_P(Seq2SeqAttention, SameBitsOnAnyThreadCount) {
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 5, 7, 30, 20, 24, 18, {30, 0, 17, 1, 29}}, kind);
    SCOPED_TRACE(describe(p));
    const Values<float> x = random_values(p, 500);
    const Results one = run(p, x, 1);
    for (int threads : {2, 3}) {
      const Results many = run(p, x, threads);
      EXPECT_EQ(one.context, many.context) << threads;
      EXPECT_EQ(one.alpha, many.alpha) << threads;
      EXPECT_EQ(one.ds, many.ds) << threads;
      EXPECT_EQ(one.dh, many.dh) << threads;
      EXPECT_EQ(one.dw_query, many.dw_query) << threads;
      EXPECT_EQ(one.dw_key, many.dw_key) << threads;
      EXPECT_EQ(one.dv, many.dv) << threads;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Seq2SeqAttention, testing::ValuesIn(seqk::available_simd_targets()),
                         target_test_name);

// The fp64 backward the kernels are compared with, against finite
// differences of the fp64 forward.
TEST(Seq2SeqAttentionReference, BackwardMatchesFiniteDifferences) {
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 2, 3, 4, 3, 5, 4, {4, 2}}, kind);
    SCOPED_TRACE(describe(p));
    Values<double> x = to_double(random_values(p, 600));
    const RefGrads g = reference_backward(p, x);
    for (const auto& [name, analytic, input] :
         {std::tuple{"ds", &g.ds, &x.s}, {"dh", &g.dh, &x.h}, {"dw_query", &g.dw_query, &x.w_query},
          {"dw_key", &g.dw_key, &x.w_key}, {"dv", &g.dv, &x.v}}) {
      const std::vector<double> fd = finite_differences(p, x, input);
      ASSERT_EQ(fd.size(), analytic->size()) << name;
      for (std::size_t i = 0; i < fd.size(); ++i) ASSERT_NEAR((*analytic)[i], fd[i], 1e-8) << name << "[" << i << "]";
    }
  }
}

// ---------------------------------------------------------------------------
// Bad input: a seqk::Error naming the argument, and nothing written.

struct BadInput : testing::Test {
  static constexpr int64_t B = 2, Tq = 3, S = 4, Ds = 5, Dh = 6, A = 7;
  std::vector<float> s = random_floats(B * Tq * Ds, 1), h = random_floats(B * S * Dh, 2),
                     keys = random_floats(B * S * A, 3), w_query = random_floats(A * Ds, 4), v = random_floats(A, 5),
                     w_key = random_floats(A * Dh, 6), alpha_in = random_floats(B * Tq * S, 7),
                     dcontext = random_floats(B * Tq * Dh, 8);
  std::vector<float> context = std::vector<float>(B * Tq * Dh, kSentinel), alpha = std::vector<float>(B * Tq * S, kSentinel),
                     ds = std::vector<float>(B * Tq * Ds, kSentinel), dh = std::vector<float>(B * S * Dh, kSentinel),
                     dkeys = std::vector<float>(B * S * A, kSentinel), dw_query = std::vector<float>(A * Ds, kSentinel),
                     dv = std::vector<float>(A, kSentinel), keys_out = std::vector<float>(B * S * A, kSentinel),
                     dw_key = std::vector<float>(A * Dh, kSentinel);
  std::vector<int64_t> lengths = {4, 0};

  seqk::Seq2SeqAttentionInputs additive() const {
    return {Seq2SeqScore::kAdditive,          ConstView(s.data(), {B, Tq, Ds}), ConstView(h.data(), {B, S, Dh}),
            ConstView(keys.data(), {B, S, A}), lengths, ConstView(w_query.data(), {A, Ds}), ConstView(v.data(), {A})};
  }
  seqk::Seq2SeqAttentionGrads grads() {
    return {View(ds.data(), {B, Tq, Ds}), View(dh.data(), {B, S, Dh}), View(dkeys.data(), {B, S, A}),
            View(dw_query.data(), {A, Ds}), View(dv.data(), {A})};
  }

  // The forward and the backward both reject `in` with a message containing `name`.
  void expect_rejected(const seqk::Seq2SeqAttentionInputs& in, const seqk::Seq2SeqAttentionGrads& g,
                       const std::string& name) {
    SCOPED_TRACE(name);
    expect_error([&] { seqk::seq2seq_attention_forward(in, View(context.data(), {B, Tq, Dh}), View(alpha.data(), {B, Tq, S})); },
                 name);
    expect_error([&] {
      seqk::seq2seq_attention_backward(in, ConstView(alpha_in.data(), {B, Tq, S}), ConstView(dcontext.data(), {B, Tq, Dh}), g);
    }, name);
  }

  void expect_error(const std::function<void()>& fn, const std::string& name) {
    try {
      fn();
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    for (const auto* buffer : {&context, &alpha, &ds, &dh, &dkeys, &dw_query, &dv, &keys_out, &dw_key})
      EXPECT_TRUE(all_sentinel(buffer->data(), buffer->size())) << "an output was written";
  }
};

TEST_F(BadInput, RejectsBadInputs) {
  seqk::Seq2SeqAttentionInputs in = additive();
  in.s = ConstView(s.data(), {B * Tq, Ds});
  expect_rejected(in, grads(), "s must be (B, Tq, Ds)");
  in = additive();
  in.h = ConstView();
  expect_rejected(in, grads(), "h is null");
  in = additive();
  in.h = ConstView(h.data(), {1, S, Dh});
  expect_rejected(in, grads(), "h has batch size 1 but s has 2");
  in = additive();
  in.s = ConstView(s.data(), {B, 0, Ds});
  expect_rejected(in, grads(), "Tq = 0");
  in = additive();
  in.keys = ConstView(keys.data(), {B, S, A - 1});
  expect_rejected(in, grads(), "keys has shape");
  in = additive();
  in.keys = ConstView();
  expect_rejected(in, grads(), "keys is null");
  in = additive();
  in.w_query = ConstView(w_query.data(), {A, Ds - 1});
  expect_rejected(in, grads(), "w_query has shape");
  in = additive();
  in.w_query = ConstView();
  expect_rejected(in, grads(), "w_query must be W_1 (A, Ds)");
  in = additive();
  in.v = ConstView(v.data(), {A - 1});
  expect_rejected(in, grads(), "v has shape");
  in = additive();
  in.h = ConstView(h.data(), {B, S, Dh}, {S * Dh, 1, S});  // transposed rows: not contiguous
  expect_rejected(in, grads(), "h must be contiguous");

  const std::vector<int64_t> too_few = {4}, too_long = {4, 5}, negative = {-1, 2};
  for (const auto& [bad, message] : {std::pair{&too_few, "lengths has 1 entries"},
                                     std::pair{&too_long, "lengths[1] = 5 is outside"},
                                     std::pair{&negative, "lengths[0] = -1 is outside"}}) {
    in = additive();
    in.lengths = *bad;
    expect_rejected(in, grads(), message);
  }

  // Dot: Ds must equal Dh, and there are no keys or weights.
  seqk::Seq2SeqAttentionGrads dot_grads{View(ds.data(), {B, Tq, Ds}), View(dh.data(), {B, S, Dh})};
  in = {Seq2SeqScore::kDot, ConstView(s.data(), {B, Tq, Ds}), ConstView(h.data(), {B, S, Dh})};
  expect_rejected(in, dot_grads, "dot scoring needs Ds == Dh, got Ds = 5, Dh = 6");
  in = {Seq2SeqScore::kDot, ConstView(h.data(), {B, S, Dh}), ConstView(h.data(), {B, S, Dh}),
        ConstView(keys.data(), {B, S, A})};
  expect_rejected(in, {View(dh.data(), {B, S, Dh}), View(dh.data(), {B, S, Dh})}, "keys must be empty for dot scoring");
  // General: keys (B, S, Ds), no w_query or v.
  in = additive();
  in.score = Seq2SeqScore::kGeneral;
  expect_rejected(in, grads(), "keys has shape (2, 4, 7), expected (2, 4, 5)");
  in.keys = ConstView(keys.data(), {B, S, Ds});
  expect_rejected(in, grads(), "w_query must be empty for general scoring");
}

TEST_F(BadInput, RejectsBadOutputs) {
  const seqk::Seq2SeqAttentionInputs in = additive();
  const ConstView alpha_view(alpha_in.data(), {B, Tq, S}), dcontext_view(dcontext.data(), {B, Tq, Dh});
  expect_error([&] { seqk::seq2seq_attention_forward(in, View(context.data(), {B, Tq, Dh - 1}), View(alpha.data(), {B, Tq, S})); },
               "context has shape");
  expect_error([&] { seqk::seq2seq_attention_forward(in, View(context.data(), {B, Tq, Dh}), View()); }, "alpha is null");
  expect_error([&] { seqk::seq2seq_attention_backward(in, ConstView(alpha_in.data(), {B, Tq, S - 1}), dcontext_view, grads()); },
               "alpha has shape");
  expect_error([&] { seqk::seq2seq_attention_backward(in, alpha_view, ConstView(dcontext.data(), {B, Tq}), grads()); },
               "dcontext has shape");
  for (const auto& [member, name] : {std::pair{&seqk::Seq2SeqAttentionGrads::ds, "ds has shape"},
                                     std::pair{&seqk::Seq2SeqAttentionGrads::dh, "dh has shape"},
                                     std::pair{&seqk::Seq2SeqAttentionGrads::dkeys, "dkeys has shape"},
                                     std::pair{&seqk::Seq2SeqAttentionGrads::dw_query, "dw_query has shape"}}) {
    seqk::Seq2SeqAttentionGrads bad = grads();
    bad.*member = View(dw_key.data(), {1, 1, 1});
    expect_error([&] { seqk::seq2seq_attention_backward(in, alpha_view, dcontext_view, bad); }, name);
  }
  seqk::Seq2SeqAttentionGrads bad = grads();
  bad.dv = View();
  expect_error([&] { seqk::seq2seq_attention_backward(in, alpha_view, dcontext_view, bad); }, "dv is null");

  // The key projection.
  const ConstView h_view(h.data(), {B, S, Dh}), w_key_view(w_key.data(), {A, Dh});
  expect_error([&] { seqk::seq2seq_project_keys(h_view, ConstView(w_key.data(), {A, Dh - 1}), View(keys_out.data(), {B, S, A})); },
               "w_key has shape");
  expect_error([&] { seqk::seq2seq_project_keys(h_view, w_key_view, View(keys_out.data(), {B, S, A - 1})); }, "keys has shape");
  expect_error([&] { seqk::seq2seq_project_keys(ConstView(), w_key_view, View(keys_out.data(), {B, S, A})); },
               "h must be (B, S, Dh)");
  expect_error([&] {
    seqk::seq2seq_project_keys_backward(h_view, w_key_view, ConstView(keys.data(), {B, S, A}), View(dh.data(), {B, S, Dh}),
                                        View(dw_key.data(), {A, Dh - 1}));
  }, "dw_key has shape");
  expect_error([&] {
    seqk::seq2seq_project_keys_backward(h_view, w_key_view, ConstView(keys.data(), {B, S, A - 1}),
                                        View(dh.data(), {B, S, Dh}), View(dw_key.data(), {A, Dh}));
  }, "dkeys has shape");
}

// Outputs that share memory with an input or with each other (aliases no
// larger than what they alias, so that before the check existed the calls
// stayed in bounds).
TEST_F(BadInput, RejectsOverlappingOutputs) {
  const seqk::Seq2SeqAttentionInputs in = additive();
  const std::vector<float> s0 = s, h0 = h, keys0 = keys, w_query0 = w_query, v0 = v, alpha0 = alpha_in,
                           dcontext0 = dcontext;
  const ConstView alpha_view(alpha_in.data(), {B, Tq, S}), dcontext_view(dcontext.data(), {B, Tq, Dh});
  const View context_view(context.data(), {B, Tq, Dh}), alpha_out(alpha.data(), {B, Tq, S});
  expect_error([&] { seqk::seq2seq_attention_forward(in, View(h.data(), {B, Tq, Dh}), alpha_out); },
               "context overlaps an input");
  expect_error([&] { seqk::seq2seq_attention_forward(in, context_view, View(context.data() + 3, {B, Tq, S})); },
               "alpha overlaps context");
  for (const auto& [member, alias, name] :
       {std::tuple{&seqk::Seq2SeqAttentionGrads::ds, View(s.data(), {B, Tq, Ds}), "ds overlaps an input"},
        std::tuple{&seqk::Seq2SeqAttentionGrads::ds, View(dcontext.data(), {B, Tq, Ds}), "ds overlaps an input"},
        std::tuple{&seqk::Seq2SeqAttentionGrads::dh, View(h.data(), {B, S, Dh}), "dh overlaps an input"},
        std::tuple{&seqk::Seq2SeqAttentionGrads::dkeys, View(keys.data(), {B, S, A}), "dkeys overlaps an input"},
        std::tuple{&seqk::Seq2SeqAttentionGrads::dv, View(w_query.data(), {A}), "dv overlaps an input"},
        std::tuple{&seqk::Seq2SeqAttentionGrads::dv, View(dw_query.data() + 2, {A}), "dv overlaps dw_query"}}) {
    seqk::Seq2SeqAttentionGrads bad = grads();
    bad.*member = alias;
    expect_error([&] { seqk::seq2seq_attention_backward(in, alpha_view, dcontext_view, bad); }, name);
  }
  seqk::Seq2SeqAttentionGrads bad = grads();
  bad.ds = View(dh.data(), {B, Tq, Ds});
  expect_error([&] { seqk::seq2seq_attention_backward(in, alpha_view, dcontext_view, bad); }, "dh overlaps ds");

  // The key projection: keys partly over h, in one buffer.
  std::vector<float> both(B * S * Dh + B * S * A, kSentinel);
  std::copy(h.begin(), h.end(), both.begin());
  const ConstView h_view(h.data(), {B, S, Dh}), w_key_view(w_key.data(), {A, Dh});
  expect_error([&] {
    seqk::seq2seq_project_keys(ConstView(both.data(), {B, S, Dh}), w_key_view, View(both.data() + 8, {B, S, A}));
  }, "keys overlaps an input");
  EXPECT_TRUE(std::equal(h.begin(), h.end(), both.begin()));
  const ConstView dkeys_view(keys.data(), {B, S, A});
  expect_error([&] {
    seqk::seq2seq_project_keys_backward(h_view, w_key_view, dkeys_view, View(h.data(), {B, S, Dh}),
                                        View(dw_key.data(), {A, Dh}));
  }, "dh overlaps an input");
  expect_error([&] {
    seqk::seq2seq_project_keys_backward(h_view, w_key_view, dkeys_view, View(dh.data(), {B, S, Dh}),
                                        View(keys.data(), {A, Dh}));
  }, "dw_key overlaps an input");
  expect_error([&] {
    seqk::seq2seq_project_keys_backward(h_view, w_key_view, dkeys_view, View(dh.data(), {B, S, Dh}),
                                        View(dh.data() + 1, {A, Dh}));
  }, "dw_key overlaps dh");
  EXPECT_EQ(s, s0);
  EXPECT_EQ(h, h0);
  EXPECT_EQ(keys, keys0);
  EXPECT_EQ(w_query, w_query0);
  EXPECT_EQ(v, v0);
  EXPECT_EQ(alpha_in, alpha0);
  EXPECT_EQ(dcontext, dcontext0);
}

}  // namespace
}  // namespace seqk_test
