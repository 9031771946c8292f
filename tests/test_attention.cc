// Scaled dot-product attention, both forms (tiled "flash" and naive), on
// every SIMD target: forward against fp64 loops at sizes that are not
// multiples of a block (1, 7, 65, 130 queries/keys; head sizes 1, 3, 64, 80,
// 128), causal (bottom-right aligned) and not, with key lengths, Lq ≠ Lk;
// backward against central finite differences of the fp64 forward and
// against an fp64 backward; flash against naive; fully masked rows; the same
// bits on 1, 2 and 3 threads; bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "attention_problem.h"
#include "reference.h"
#include "seqk/attention.h"
#include "seqk/error.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;


struct Tensors {
  std::vector<float> q, k, v, dout;
};

Tensors random_tensors(const Case& c, uint64_t seed) {
  return {random_floats(q_size(c), seed), random_floats(k_size(c), seed + 1), random_floats(k_size(c), seed + 2),
          random_floats(q_size(c), seed + 3)};
}

seqk::AttentionInputs inputs_of(const Case& c, const Tensors& t) {
  return {ConstView(t.q.data(), {c.B, c.H, c.Lq, c.dh}), ConstView(t.k.data(), {c.B, c.H, c.Lk, c.dh}),
          ConstView(t.v.data(), {c.B, c.H, c.Lk, c.dh}), c.causal, c.key_lengths, c.scale};
}

// ---------------------------------------------------------------------------
// fp64 references: plain loops over (b, h, i, j).

struct RefForward {
  std::vector<double> out, lse;
  std::vector<double> probs;  // (B, H, Lq, Lk)
};

RefForward reference_forward(const Case& c, const std::vector<double>& q, const std::vector<double>& k,
                             const std::vector<double>& v) {
  RefForward r{std::vector<double>(q_size(c)), std::vector<double>(c.B * c.H * c.Lq),
               std::vector<double>(c.B * c.H * c.Lq * c.Lk)};
  const double scale = scale_of(c);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Lq; ++i) {
        const int64_t row = (b * c.H + h) * c.Lq + i, head = b * c.H + h;
        std::vector<double> s(c.Lk, -std::numeric_limits<double>::infinity());
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < c.Lk; ++j) {
          if (!sees(c, b, i, j)) continue;
          double dot = 0;
          for (int64_t e = 0; e < c.dh; ++e) dot += q[row * c.dh + e] * k[(head * c.Lk + j) * c.dh + e];
          s[j] = scale * dot;
          max = std::max(max, s[j]);
        }
        if (max == -std::numeric_limits<double>::infinity()) {
          r.lse[row] = max;  // sees no key: zero output and probabilities
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < c.Lk; ++j) sum += sees(c, b, i, j) ? std::exp(s[j] - max) : 0.0;
        r.lse[row] = max + std::log(sum);
        for (int64_t j = 0; j < c.Lk; ++j) {
          const double p = sees(c, b, i, j) ? std::exp(s[j] - max) / sum : 0.0;
          r.probs[row * c.Lk + j] = p;
          for (int64_t e = 0; e < c.dh; ++e) r.out[row * c.dh + e] += p * v[(head * c.Lk + j) * c.dh + e];
        }
      }
  return r;
}

struct RefGrads {
  std::vector<double> dq, dk, dv;
};

// The textbook backward: dv = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙
// dP)), dq = scale·dS·K, dk = scale·dSᵀ·Q (checked against finite
// differences below).
RefGrads reference_backward(const Case& c, const std::vector<double>& q, const std::vector<double>& k,
                            const std::vector<double>& v, const std::vector<double>& dout) {
  const RefForward f = reference_forward(c, q, k, v);
  RefGrads g{std::vector<double>(q_size(c)), std::vector<double>(k_size(c)), std::vector<double>(k_size(c))};
  const double scale = scale_of(c);
  for (int64_t head = 0; head < c.B * c.H; ++head)
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t row = head * c.Lq + i;
      std::vector<double> dp(c.Lk);
      double dot = 0;
      for (int64_t j = 0; j < c.Lk; ++j) {
        for (int64_t e = 0; e < c.dh; ++e) dp[j] += dout[row * c.dh + e] * v[(head * c.Lk + j) * c.dh + e];
        dot += f.probs[row * c.Lk + j] * dp[j];
      }
      for (int64_t j = 0; j < c.Lk; ++j) {
        const double p = f.probs[row * c.Lk + j], ds = p * (dp[j] - dot);
        for (int64_t e = 0; e < c.dh; ++e) {
          const int64_t at_k = (head * c.Lk + j) * c.dh + e, at_q = row * c.dh + e;
          g.dv[at_k] += p * dout[at_q];
          g.dq[at_q] += scale * ds * k[at_k];
          g.dk[at_k] += scale * ds * q[at_q];
        }
      }
    }
  return g;
}

// L = Σ dout ⊙ out, whose gradient the backward computes when fed dout.
double reference_loss(const Case& c, const std::vector<double>& q, const std::vector<double>& k,
                      const std::vector<double>& v, const std::vector<double>& dout) {
  const std::vector<double> out = reference_forward(c, q, k, v).out;
  double loss = 0;
  for (std::size_t i = 0; i < out.size(); ++i) loss += dout[i] * out[i];
  return loss;
}

// Central differences in double of L with respect to every element of *x
// (one of q, k, v). The loss is smooth and the step small, so they agree
// with the true gradient to ~1e-9.
std::vector<double> finite_differences(const Case& c, std::vector<double>* x, std::vector<double>& q,
                                       std::vector<double>& k, std::vector<double>& v,
                                       const std::vector<double>& dout) {
  constexpr double kStep = 1e-5;
  std::vector<double> grad(x->size());
  for (std::size_t i = 0; i < x->size(); ++i) {
    const double saved = (*x)[i];
    (*x)[i] = saved + kStep;
    const double plus = reference_loss(c, q, k, v, dout);
    (*x)[i] = saved - kStep;
    const double minus = reference_loss(c, q, k, v, dout);
    (*x)[i] = saved;
    grad[i] = (plus - minus) / (2 * kStep);
  }
  return grad;
}

// ---------------------------------------------------------------------------
// Running the kernels.

enum class Form { kFlash, kNaive };

const char* name_of(Form form) { return form == Form::kFlash ? "flash" : "naive"; }

struct Results {
  std::vector<float> out, lse, probs, dq, dk, dv;  // lse: flash only; probs: naive only
};

Results run(Form form, const Case& c, const Tensors& t, int threads) {
  Results r{std::vector<float>(q_size(c), kSentinel), std::vector<float>(c.B * c.H * c.Lq, kSentinel),
            std::vector<float>(c.B * c.H * c.Lq * c.Lk, kSentinel), std::vector<float>(q_size(c), kSentinel),
            std::vector<float>(k_size(c), kSentinel), std::vector<float>(k_size(c), kSentinel)};
  seqk::ThreadPool pool(threads);
  const seqk::AttentionInputs in = inputs_of(c, t);
  const View out(r.out.data(), {c.B, c.H, c.Lq, c.dh});
  const ConstView dout(t.dout.data(), {c.B, c.H, c.Lq, c.dh});
  const seqk::AttentionGrads grads{View(r.dq.data(), {c.B, c.H, c.Lq, c.dh}),
                                   View(r.dk.data(), {c.B, c.H, c.Lk, c.dh}),
                                   View(r.dv.data(), {c.B, c.H, c.Lk, c.dh})};
  if (form == Form::kFlash) {
    const View lse(r.lse.data(), {c.B, c.H, c.Lq});
    seqk::attention_forward(in, out, lse, &pool);
    seqk::attention_backward(in, out, lse, dout, grads, &pool);
  } else {
    const View probs(r.probs.data(), {c.B, c.H, c.Lq, c.Lk});
    seqk::attention_naive_forward(in, out, probs, &pool);
    seqk::attention_naive_backward(in, probs, dout, grads, &pool);
  }
  return r;
}

// Outputs are averages of values in [-1, 1], gradients sums of at most a
// few hundred O(1) terms: fp32 rounding leaves ~1e-6; a wrong mask, scale
// or rescaling is off by far more than 2e-5 of the largest value.
testing::AssertionResult close(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  return close_uniform(what, got.data(), want.data(), 2e-5 * std::max(1.0, max_abs(want)), want.size());
}

// The lse of a row that sees no key is −inf in both.
testing::AssertionResult close_lse(const std::vector<float>& got, const std::vector<double>& want) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    const bool both_empty = std::isinf(want[i]) && got[i] == -std::numeric_limits<float>::infinity();
    if (!both_empty && !(std::fabs(got[i] - want[i]) <= 1e-5 * (1.0 + std::fabs(want[i]))))
      return testing::AssertionFailure() << "lse[" << i << "] = " << got[i] << ", expected " << want[i];
  }
  return testing::AssertionSuccess();
}

// Block sizes are 64: these cross block edges, end inside blocks, and take
// the head sizes with a specialised path (64, 128) and without (1, 3, 80).
const std::vector<Case>& awkward_cases() {
  static const std::vector<Case> cases = {
      {1, 1, 1, 1, 1},
      {2, 1, 7, 7, 3, true},
      {1, 2, 65, 65, 64, true},
      {2, 2, 65, 130, 80, false, {130, 37}},
      {1, 1, 130, 65, 64, true},                  // Lq > Lk: the first 65 queries see nothing
      {2, 1, 7, 130, 128, true, {100, 0}, 0.3f},  // decode-like chunk; batch row 1 fully padded
      {1, 1, 130, 130, 128},
      {1, 3, 1, 65, 3, true, {}, -0.7f},
      {2, 1, 130, 7, 1, false, {7, 1}},
  };
  return cases;
}

class Attention : public TargetTest {};

TEST_P(Attention, ForwardAndBackwardMatchFp64) {
  for (const Case& c : awkward_cases()) {
    const Tensors t = random_tensors(c, 100);
    const std::vector<double> q = to_double(t.q), k = to_double(t.k), v = to_double(t.v);
    const RefForward want = reference_forward(c, q, k, v);
    const RefGrads grads = reference_backward(c, q, k, v, to_double(t.dout));
    for (Form form : {Form::kFlash, Form::kNaive}) {
      SCOPED_TRACE(testing::Message() << name_of(form) << " " << describe(c));
      const Results got = run(form, c, t, 2);
      EXPECT_TRUE(close("out", got.out, want.out));
      if (form == Form::kFlash) {
        EXPECT_TRUE(close_lse(got.lse, want.lse));
      } else {
        EXPECT_TRUE(close("probs", got.probs, want.probs));
      }
      EXPECT_TRUE(close("dq", got.dq, grads.dq));
      EXPECT_TRUE(close("dk", got.dk, grads.dk));
      EXPECT_TRUE(close("dv", got.dv, grads.dv));
    }
  }
}

// Small enough for a finite difference per input element; each case has
// masked and unmasked keys in one row.
TEST_P(Attention, BackwardMatchesFiniteDifferences) {
  for (const Case& c : {Case{1, 2, 5, 9, 3, true, {}}, Case{2, 1, 9, 4, 2, false, {4, 2}, 0.8f},
                        Case{2, 1, 4, 6, 5, true, {5, 3}}}) {
    const Tensors t = random_tensors(c, 200);
    std::vector<double> q = to_double(t.q), k = to_double(t.k), v = to_double(t.v);
    const std::vector<double> dout = to_double(t.dout);
    const std::vector<double> dq = finite_differences(c, &q, q, k, v, dout);
    const std::vector<double> dk = finite_differences(c, &k, q, k, v, dout);
    const std::vector<double> dv = finite_differences(c, &v, q, k, v, dout);
    for (Form form : {Form::kFlash, Form::kNaive}) {
      SCOPED_TRACE(testing::Message() << name_of(form) << " " << describe(c));
      const Results got = run(form, c, t, 2);
      EXPECT_TRUE(close("dq", got.dq, dq));
      EXPECT_TRUE(close("dk", got.dk, dk));
      EXPECT_TRUE(close("dv", got.dv, dv));
    }
  }
}

TEST_P(Attention, FlashMatchesNaive) {
  for (const Case& c : {Case{2, 2, 130, 100, 64, true, {100, 70}}, Case{1, 2, 70, 129, 128, false, {}, 0.05f}}) {
    SCOPED_TRACE(describe(c));
    const Tensors t = random_tensors(c, 300);
    const Results flash = run(Form::kFlash, c, t, 2), naive = run(Form::kNaive, c, t, 2);
    EXPECT_TRUE(close("out", flash.out, to_double(naive.out)));
    EXPECT_TRUE(close("dq", flash.dq, to_double(naive.dq)));
    EXPECT_TRUE(close("dk", flash.dk, to_double(naive.dk)));
    EXPECT_TRUE(close("dv", flash.dv, to_double(naive.dv)));
  }
}

bool any_nan(const std::vector<float>& v) {
  for (float x : v)
    if (std::isnan(x)) return true;
  return false;
}

// Rows that see no key: causal with Lq > Lk (queries 0..69 here) and a
// batch row with key length 0. Their outputs and dq are exactly zero, their
// lse −inf; keys that no query sees get exactly zero dk and dv.
TEST_P(Attention, FullyMaskedRowsAreZeroWithoutNaN) {
  const Case c{2, 2, 100, 30, 64, true, {0, 20}};
  const Tensors t = random_tensors(c, 400);
  for (Form form : {Form::kFlash, Form::kNaive}) {
    SCOPED_TRACE(name_of(form));
    const Results r = run(form, c, t, 2);
    for (const auto* v : {&r.out, &r.dq, &r.dk, &r.dv}) EXPECT_FALSE(any_nan(*v));
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h) {
        const int64_t head = b * c.H + h, blind = b == 0 ? c.Lq : c.Lq - c.Lk;
        for (int64_t i = 0; i < blind; ++i) {
          if (form == Form::kFlash) {
            ASSERT_EQ(r.lse[head * c.Lq + i], -std::numeric_limits<float>::infinity());
          }
          for (int64_t e = 0; e < c.dh; ++e) {
            ASSERT_EQ(r.out[(head * c.Lq + i) * c.dh + e], 0.0f) << "b=" << b << " i=" << i;
            ASSERT_EQ(r.dq[(head * c.Lq + i) * c.dh + e], 0.0f) << "b=" << b << " i=" << i;
          }
        }
        for (int64_t j = c.key_lengths[b]; j < c.Lk; ++j)
          for (int64_t e = 0; e < c.dh; ++e) {
            ASSERT_EQ(r.dk[(head * c.Lk + j) * c.dh + e], 0.0f) << "b=" << b << " j=" << j;
            ASSERT_EQ(r.dv[(head * c.Lk + j) * c.dh + e], 0.0f) << "b=" << b << " j=" << j;
          }
      }
  }
}

// Every output element is computed by one unit in a fixed order, so the
// thread count must not change a bit.
TEST_P(Attention, SameBitsOnAnyThreadCount) {
  const Case c{2, 2, 150, 200, 80, true, {200, 111}};
  const Tensors t = random_tensors(c, 500);
  for (Form form : {Form::kFlash, Form::kNaive}) {
    SCOPED_TRACE(name_of(form));
    const Results one = run(form, c, t, 1);
    for (int threads : {2, 3}) {
      const Results many = run(form, c, t, threads);
      EXPECT_EQ(one.out, many.out) << threads << " threads";
      EXPECT_EQ(one.lse, many.lse) << threads << " threads";
      EXPECT_EQ(one.dq, many.dq) << threads << " threads";
      EXPECT_EQ(one.dk, many.dk) << threads << " threads";
      EXPECT_EQ(one.dv, many.dv) << threads << " threads";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Attention, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// The fp64 backward the larger cases are compared with, against finite
// differences of the fp64 forward.
TEST(AttentionReference, BackwardMatchesFiniteDifferences) {
  const Case c{2, 1, 6, 8, 3, true, {8, 5}};
  const Tensors t = random_tensors(c, 600);
  std::vector<double> q = to_double(t.q), k = to_double(t.k), v = to_double(t.v);
  const std::vector<double> dout = to_double(t.dout);
  const RefGrads g = reference_backward(c, q, k, v, dout);
  for (auto [analytic, x] : {std::pair{&g.dq, &q}, std::pair{&g.dk, &k}, std::pair{&g.dv, &v}}) {
    const std::vector<double> fd = finite_differences(c, x, q, k, v, dout);
    for (std::size_t i = 0; i < fd.size(); ++i) ASSERT_NEAR((*analytic)[i], fd[i], 1e-8) << i;
  }
}

// ---------------------------------------------------------------------------
// Bad input: a seqk::Error naming the argument, and nothing written.

struct BadInput : testing::Test {
  static constexpr int64_t B = 2, H = 1, Lq = 3, Lk = 4, dh = 5;
  std::vector<float> q = random_floats(B * H * Lq * dh, 1), k = random_floats(B * H * Lk * dh, 2),
                     v = random_floats(B * H * Lk * dh, 3), dout = random_floats(B * H * Lq * dh, 4);
  std::vector<float> out = std::vector<float>(B * H * Lq * dh, kSentinel), lse = std::vector<float>(B * H * Lq, kSentinel),
                     probs = std::vector<float>(B * H * Lq * Lk, kSentinel),
                     dq = std::vector<float>(B * H * Lq * dh, kSentinel), dk = std::vector<float>(B * H * Lk * dh, kSentinel),
                     dv = std::vector<float>(B * H * Lk * dh, kSentinel);
  std::vector<int64_t> lengths = {4, 2};

  seqk::AttentionInputs good() const {
    return {ConstView(q.data(), {B, H, Lq, dh}), ConstView(k.data(), {B, H, Lk, dh}),
            ConstView(v.data(), {B, H, Lk, dh}), true, lengths};
  }
  View out_view() { return View(out.data(), {B, H, Lq, dh}); }
  View lse_view() { return View(lse.data(), {B, H, Lq}); }
  View probs_view() { return View(probs.data(), {B, H, Lq, Lk}); }
  seqk::AttentionGrads grads() {
    return {View(dq.data(), {B, H, Lq, dh}), View(dk.data(), {B, H, Lk, dh}), View(dv.data(), {B, H, Lk, dh})};
  }

  // Every entry point rejects `in` with a message containing `name`.
  void expect_rejected(const seqk::AttentionInputs& in, const std::string& name) {
    SCOPED_TRACE(name);
    const ConstView dout_view(dout.data(), {B, H, Lq, dh});
    expect_error([&] { seqk::attention_forward(in, out_view(), lse_view()); }, name);
    expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, grads()); }, name);
    expect_error([&] { seqk::attention_naive_forward(in, out_view(), probs_view()); }, name);
    expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, grads()); }, name);
  }

  template <class Fn>
  void expect_error(Fn&& fn, const std::string& name) {
    try {
      fn();
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    for (const auto* buffer : {&out, &lse, &probs, &dq, &dk, &dv})
      EXPECT_TRUE(all_sentinel(buffer->data(), buffer->size())) << "an output was written";
  }
};

TEST_F(BadInput, RejectsBadInputs) {
  seqk::AttentionInputs in = good();
  in.q = ConstView(q.data(), {B * H, Lq, dh});
  expect_rejected(in, "q must be (B, H, L, dh)");
  in = good();
  in.k = ConstView();
  expect_rejected(in, "k is null");
  in = good();
  in.q = ConstView(q.data(), {B, H, 0, dh});
  expect_rejected(in, "q has an empty dimension");
  in = good();
  in.k = ConstView(k.data(), {B, H, 0, dh});
  expect_rejected(in, "k has an empty dimension");
  in = good();
  in.k = ConstView(k.data(), {B, H, Lk, dh - 1});
  expect_rejected(in, "k has head size 4 but q has 5");
  in = good();
  in.v = ConstView(v.data(), {B, H, Lk, dh + 1});
  expect_rejected(in, "v has head size 6 but q has 5");
  in = good();
  in.v = ConstView(v.data(), {B, H, Lk - 1, dh});
  expect_rejected(in, "v has shape");
  in = good();
  in.k = ConstView(k.data(), {1, H, Lk, dh});
  expect_rejected(in, "k has shape");
  in = good();
  in.k = ConstView(k.data(), {B, H, Lk, dh}, {H * Lk * dh, Lk * dh, 1, Lk});  // transposed rows: not contiguous
  expect_rejected(in, "k must be contiguous");

  const std::vector<int64_t> too_few = {4}, too_long = {4, 5}, negative = {-1, 2};
  for (const auto& [bad, message] : {std::pair{&too_few, "key_lengths has 1 entries"},
                                     std::pair{&too_long, "key_lengths[1] = 5 is outside"},
                                     std::pair{&negative, "key_lengths[0] = -1 is outside"}}) {
    in = good();
    in.key_lengths = *bad;
    expect_rejected(in, message);
  }
  for (float scale : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    in = good();
    in.scale = scale;
    expect_rejected(in, "scale must be finite");
  }
}

// The tiled form compares key indices as floats, exact up to 2^24: more keys
// are rejected on shapes alone, before any data is read. The views are far
// larger than their buffers; a key length of 1 keeps every entry point that
// would run (before the check existed) inside them, and the outputs' shapes
// that depend on Lk are wrong, so those entry points stop on their own.
TEST(AttentionKeys, RejectsMoreThan2To24Keys) {
  constexpr int64_t kMax = seqk::kAttentionMaxKeys;
  static_assert(kMax == int64_t{1} << 24);
  std::vector<float> q = random_floats(1, 1), k = random_floats(1, 2), v = random_floats(1, 3),
                     dout = random_floats(1, 4);
  std::vector<float> out(1, kSentinel), lse(1, kSentinel), probs(1, kSentinel), dq(1, kSentinel), dk(1, kSentinel),
      dv(1, kSentinel);
  const std::vector<int64_t> lengths = {1};
  const seqk::AttentionInputs in{ConstView(q.data(), {1, 1, 1, 1}), ConstView(k.data(), {1, 1, kMax + 1, 1}),
                                 ConstView(v.data(), {1, 1, kMax + 1, 1}), false, lengths};
  const View out_view(out.data(), {1, 1, 1, 1}), lse_view(lse.data(), {1, 1, 1});
  const seqk::AttentionGrads grads{View(dq.data(), {1, 1, 1, 1}), View(dk.data(), {1, 1, 1, 1}),
                                   View(dv.data(), {1, 1, 1, 1})};
  const ConstView dout_view(dout.data(), {1, 1, 1, 1});
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { seqk::attention_forward(in, out_view, lse_view); },
           [&] { seqk::attention_backward(in, out_view, lse_view, dout_view, grads); },
           [&] { seqk::attention_naive_forward(in, out_view, View(probs.data(), {1, 1, 1, 1})); },
           [&] { seqk::attention_naive_backward(in, ConstView(probs.data(), {1, 1, 1, 1}), dout_view, grads); }}) {
    try {
      call();
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("Lk = 16777217 exceeds 2^24"), std::string::npos) << e.what();
    }
    for (const auto* buffer : {&out, &lse, &probs, &dq, &dk, &dv})
      EXPECT_TRUE(all_sentinel(buffer->data(), buffer->size())) << "an output was written";
  }
  // 2^24 keys are fine. (Real buffers, 64 MiB each: views larger than their
  // buffers could overlap the outputs' memory.)
  std::vector<float> long_k(kMax), long_v(kMax);
  long_v[0] = v[0];
  const seqk::AttentionInputs longest{ConstView(q.data(), {1, 1, 1, 1}), ConstView(long_k.data(), {1, 1, kMax, 1}),
                                      ConstView(long_v.data(), {1, 1, kMax, 1}), false, lengths};
  seqk::attention_forward(longest, out_view, lse_view);
  EXPECT_FLOAT_EQ(out[0], v[0]);
}

TEST_F(BadInput, RejectsBadOutputs) {
  const seqk::AttentionInputs in = good();
  const ConstView dout_view(dout.data(), {B, H, Lq, dh});
  expect_error([&] { seqk::attention_forward(in, View(out.data(), {B, H, Lq, dh - 1}), lse_view()); }, "out has shape");
  expect_error([&] { seqk::attention_forward(in, out_view(), View(lse.data(), {B, H, Lq - 1})); }, "lse has shape");
  expect_error([&] { seqk::attention_forward(in, out_view(), View()); }, "lse is null");
  expect_error([&] { seqk::attention_naive_forward(in, out_view(), View(probs.data(), {B, H, Lq, Lq})); },
               "probs has shape");
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), View(dout.data(), {B, H, Lq}), grads()); },
               "dout has shape");
  expect_error([&] {
    seqk::attention_backward(in, ConstView(out.data(), {B, H, Lq, dh - 1}), lse_view(), dout_view, grads());
  }, "out has shape");
  expect_error([&] {
    seqk::attention_backward(in, out_view(), ConstView(lse.data(), {B, H, Lq - 1}), dout_view, grads());
  }, "lse has shape");
  expect_error([&] {
    seqk::attention_backward(in, out_view(), ConstView(lse.data(), {B, H, Lq, 1}), dout_view, grads());
  }, "lse has shape");
  expect_error([&] {
    seqk::attention_naive_backward(in, ConstView(probs.data(), {B, H, Lq, Lq}), dout_view, grads());
  }, "probs has shape");
  seqk::AttentionGrads bad = grads();
  bad.dk = View(dk.data(), {B, H, Lq, dh});
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dk has shape");
  expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, bad); }, "dk has shape");
  bad = grads();
  bad.dq = View();
  expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, bad); }, "dq is null");
  bad = grads();
  bad.dv = View(dv.data(), {B, H, Lk, dh + 1});
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dv has shape");
  expect_error([&] { seqk::attention_backward(in, ConstView(), lse_view(), dout_view, grads()); }, "out is null");
  expect_error([&] { seqk::attention_naive_backward(in, ConstView(), dout_view, grads()); }, "probs is null");
}

// Outputs that share memory with an input or with each other (same-sized
// aliases, so that before the check existed the calls stayed in bounds).
TEST_F(BadInput, RejectsOverlappingOutputs) {
  const seqk::AttentionInputs in = good();
  const std::vector<float> q0 = q, k0 = k, v0 = v, dout0 = dout;
  const ConstView dout_view(dout.data(), {B, H, Lq, dh});
  expect_error([&] { seqk::attention_forward(in, View(q.data(), {B, H, Lq, dh}), lse_view()); },
               "out overlaps an input");
  expect_error([&] { seqk::attention_forward(in, out_view(), View(out.data() + 1, {B, H, Lq})); }, "lse overlaps out");
  expect_error([&] { seqk::attention_naive_forward(in, View(q.data(), {B, H, Lq, dh}), probs_view()); },
               "out overlaps an input");
  expect_error([&] { seqk::attention_naive_forward(in, out_view(), View(out.data(), {B, H, Lq, Lk})); },
               "probs overlaps out");
  seqk::AttentionGrads bad = grads();
  bad.dk = View(k.data(), {B, H, Lk, dh});
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dk overlaps an input");
  expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, bad); }, "dk overlaps an input");
  bad = grads();
  bad.dq = View(dout.data(), {B, H, Lq, dh});
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dq overlaps an input");
  expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, bad); }, "dq overlaps an input");
  bad = grads();
  bad.dq = View(out.data(), {B, H, Lq, dh});  // the forward's out, an input of the backward
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dq overlaps an input");
  bad = grads();
  bad.dv = View(dk.data(), {B, H, Lk, dh});
  expect_error([&] { seqk::attention_backward(in, out_view(), lse_view(), dout_view, bad); }, "dv overlaps dk");
  expect_error([&] { seqk::attention_naive_backward(in, probs_view(), dout_view, bad); }, "dv overlaps dk");
  EXPECT_EQ(q, q0);
  EXPECT_EQ(k, k0);
  EXPECT_EQ(v, v0);
  EXPECT_EQ(dout, dout0);
}

}  // namespace
}  // namespace seqk_test
