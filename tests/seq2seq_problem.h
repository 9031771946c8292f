// Seq2seq attention test problems shared by the CPU and Vulkan suites:
// sizes, random inputs and weights (floats for seqk, doubles for the
// references), and fp64 references written straight from the formulas in
// seqk/seq2seq_attention.h: the forward, the backward by hand, and central
// finite differences of the forward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "reference.h"
#include "seqk/seq2seq_attention.h"

namespace seqk_test {

using seqk::Seq2SeqScore;

inline constexpr Seq2SeqScore kScores[] = {Seq2SeqScore::kAdditive, Seq2SeqScore::kDot, Seq2SeqScore::kGeneral};

struct Problem {
  Seq2SeqScore score;
  int64_t B, Tq, S, Ds, Dh, A;          // A: additive only; dot takes Ds = Dh
  std::vector<int64_t> lengths = {};    // empty: all S valid

  bool additive() const { return score == Seq2SeqScore::kAdditive; }
  bool dot() const { return score == Seq2SeqScore::kDot; }
  // Rows of the key weight (W_2 or W) and width of the keys.
  int64_t K() const { return additive() ? A : score == Seq2SeqScore::kGeneral ? Ds : Dh; }
  int64_t length(int64_t b) const { return lengths.empty() ? S : lengths[b]; }
};

inline std::string describe(const Problem& p) {
  std::string s = std::string(seqk::to_string(p.score)) + " B=" + std::to_string(p.B) + " Tq=" + std::to_string(p.Tq) +
                  " S=" + std::to_string(p.S) + " Ds=" + std::to_string(p.Ds) + " Dh=" + std::to_string(p.Dh) +
                  (p.additive() ? " A=" + std::to_string(p.A) : "");
  for (int64_t length : p.lengths) s += " len=" + std::to_string(length);
  return s;
}

// The problem with the sizes the score needs: Ds = Dh for dot.
inline Problem with_score(Problem p, Seq2SeqScore score) {
  p.score = score;
  if (p.dot()) p.Ds = p.Dh;
  return p;
}

// Inputs and the loss weights dcontext; w_query, v only for additive, w_key
// (W_2 or W) for additive and general.
template <typename T>
struct Values {
  std::vector<T> s, h, w_query, w_key, v, dcontext;
};

inline Values<float> random_values(const Problem& p, uint64_t seed) {
  Values<float> x;
  x.s = random_floats(p.B * p.Tq * p.Ds, seed);
  x.h = random_floats(p.B * p.S * p.Dh, seed + 1);
  x.dcontext = random_floats(p.B * p.Tq * p.Dh, seed + 2);
  if (p.additive()) {
    x.w_query = random_floats(p.A * p.Ds, seed + 3, -0.5f, 0.5f);
    x.v = random_floats(p.A, seed + 4);
  }
  if (!p.dot()) x.w_key = random_floats(p.K() * p.Dh, seed + 5, -0.5f, 0.5f);
  return x;
}

inline Values<double> to_double(const Values<float>& x) {
  return {to_double(x.s), to_double(x.h), to_double(x.w_query), to_double(x.w_key), to_double(x.v),
          to_double(x.dcontext)};
}

// ---------------------------------------------------------------------------
// fp64 references, straight from the formulas.

// e_{b,t,i}.
inline double score(const Problem& p, const Values<double>& x, int64_t b, int64_t t, int64_t i) {
  const double* s = &x.s[(b * p.Tq + t) * p.Ds];
  const double* h = &x.h[(b * p.S + i) * p.Dh];
  double e = 0;
  if (p.additive()) {
    for (int64_t a = 0; a < p.A; ++a) {
      double pre = 0;
      for (int64_t d = 0; d < p.Ds; ++d) pre += x.w_query[a * p.Ds + d] * s[d];
      for (int64_t c = 0; c < p.Dh; ++c) pre += x.w_key[a * p.Dh + c] * h[c];
      e += x.v[a] * std::tanh(pre);
    }
  } else if (p.dot()) {
    for (int64_t c = 0; c < p.Dh; ++c) e += s[c] * h[c];
  } else {
    for (int64_t d = 0; d < p.Ds; ++d)
      for (int64_t c = 0; c < p.Dh; ++c) e += s[d] * x.w_key[d * p.Dh + c] * h[c];
  }
  return e;
}

struct RefForward {
  std::vector<double> context, alpha;
};

inline RefForward reference_forward(const Problem& p, const Values<double>& x) {
  RefForward r{std::vector<double>(p.B * p.Tq * p.Dh), std::vector<double>(p.B * p.Tq * p.S)};
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t t = 0; t < p.Tq; ++t) {
      const int64_t row = b * p.Tq + t, n = p.length(b);
      if (n == 0) continue;  // no valid position: α and context stay zero
      std::vector<double> e(n);
      double max = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) max = std::max(max, e[i] = score(p, x, b, t, i));
      for (int64_t i = 0; i < n; ++i) sum += std::exp(e[i] - max);
      for (int64_t i = 0; i < n; ++i) {
        const double alpha = std::exp(e[i] - max) / sum;
        r.alpha[row * p.S + i] = alpha;
        for (int64_t c = 0; c < p.Dh; ++c) r.context[row * p.Dh + c] += alpha * x.h[(b * p.S + i) * p.Dh + c];
      }
    }
  return r;
}

// L = Σ dcontext ⊙ context: its gradients are what the backward computes.
inline double reference_loss(const Problem& p, const Values<double>& x) {
  const std::vector<double> context = reference_forward(p, x).context;
  double loss = 0;
  for (std::size_t i = 0; i < context.size(); ++i) loss += x.dcontext[i] * context[i];
  return loss;
}

// Gradients of L with respect to the inputs and weights (empty where the
// score has no such weight).
struct RefGrads {
  std::vector<double> ds, dh, dw_query, dw_key, dv;
};

// By hand: dα_i = dc·h_i, de_i = α_i (dα_i − Σ_j α_j dα_j), then the
// score's own derivatives (checked against finite differences below).
inline RefGrads reference_backward(const Problem& p, const Values<double>& x) {
  const RefForward f = reference_forward(p, x);
  RefGrads g{std::vector<double>(x.s.size()), std::vector<double>(x.h.size()), std::vector<double>(x.w_query.size()),
             std::vector<double>(x.w_key.size()), std::vector<double>(x.v.size())};
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t t = 0; t < p.Tq; ++t) {
      const int64_t row = b * p.Tq + t, n = p.length(b);
      const double* dc = &x.dcontext[row * p.Dh];
      const double* s = &x.s[row * p.Ds];
      std::vector<double> dalpha(n);
      double weighted = 0;
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t c = 0; c < p.Dh; ++c) dalpha[i] += dc[c] * x.h[(b * p.S + i) * p.Dh + c];
        weighted += f.alpha[row * p.S + i] * dalpha[i];
      }
      for (int64_t i = 0; i < n; ++i) {
        const double alpha = f.alpha[row * p.S + i], de = alpha * (dalpha[i] - weighted);
        const double* h = &x.h[(b * p.S + i) * p.Dh];
        double* dh = &g.dh[(b * p.S + i) * p.Dh];
        double* ds = &g.ds[row * p.Ds];
        for (int64_t c = 0; c < p.Dh; ++c) dh[c] += alpha * dc[c];
        if (p.additive()) {
          for (int64_t a = 0; a < p.A; ++a) {
            double pre = 0;
            for (int64_t d = 0; d < p.Ds; ++d) pre += x.w_query[a * p.Ds + d] * s[d];
            for (int64_t c = 0; c < p.Dh; ++c) pre += x.w_key[a * p.Dh + c] * h[c];
            const double u = std::tanh(pre), dpre = de * x.v[a] * (1 - u * u);
            g.dv[a] += de * u;
            for (int64_t d = 0; d < p.Ds; ++d) {
              ds[d] += dpre * x.w_query[a * p.Ds + d];
              g.dw_query[a * p.Ds + d] += dpre * s[d];
            }
            for (int64_t c = 0; c < p.Dh; ++c) {
              dh[c] += dpre * x.w_key[a * p.Dh + c];
              g.dw_key[a * p.Dh + c] += dpre * h[c];
            }
          }
        } else if (p.dot()) {
          for (int64_t c = 0; c < p.Dh; ++c) {
            ds[c] += de * h[c];
            dh[c] += de * s[c];
          }
        } else {
          for (int64_t d = 0; d < p.Ds; ++d)
            for (int64_t c = 0; c < p.Dh; ++c) {
              ds[d] += de * x.w_key[d * p.Dh + c] * h[c];
              dh[c] += de * s[d] * x.w_key[d * p.Dh + c];
              g.dw_key[d * p.Dh + c] += de * s[d] * h[c];
            }
        }
      }
    }
  return g;
}

// Central differences of L in double with respect to every element of *v
// (one of x's vectors).
inline std::vector<double> finite_differences(const Problem& p, Values<double>& x, std::vector<double>* v) {
  constexpr double kStep = 1e-5;
  std::vector<double> grad(v->size());
  for (std::size_t i = 0; i < v->size(); ++i) {
    const double saved = (*v)[i];
    (*v)[i] = saved + kStep;
    const double plus = reference_loss(p, x);
    (*v)[i] = saved - kStep;
    const double minus = reference_loss(p, x);
    (*v)[i] = saved;
    grad[i] = (plus - minus) / (2 * kStep);
  }
  return grad;
}

// What a kernel run gives back, to compare with RefForward and RefGrads.
struct Results {
  std::vector<float> context, alpha, ds, dh, dw_query, dw_key, dv;
};

// fp32 sums of at most a few hundred O(1) terms: rounding leaves ~1e-6 of
// the largest value; a wrong mask, a dropped term or a missing factor is
// off by far more than 3e-5 of it.
inline testing::AssertionResult close(const char* what, const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return testing::AssertionFailure() << what << ": size " << got.size();
  return close_uniform(what, got.data(), want.data(), 3e-5 * std::max(1.0, max_abs(want)), want.size());
}

inline void expect_close(const Results& got, const RefForward& f, const RefGrads& g) {
  EXPECT_TRUE(close("context", got.context, f.context));
  EXPECT_TRUE(close("alpha", got.alpha, f.alpha));
  EXPECT_TRUE(close("ds", got.ds, g.ds));
  EXPECT_TRUE(close("dh", got.dh, g.dh));
  EXPECT_TRUE(close("dw_query", got.dw_query, g.dw_query));
  EXPECT_TRUE(close("dw_key", got.dw_key, g.dw_key));
  EXPECT_TRUE(close("dv", got.dv, g.dv));
}

}  // namespace seqk_test
