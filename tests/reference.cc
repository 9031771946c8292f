#include "reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>

#include "seqk/error.h"

namespace seqk_test {

std::vector<float> random_floats(std::size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& value : v) value = dist(rng);
  return v;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

bool all_sentinel(const float* v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(&v[i], &kSentinel, sizeof(float)) != 0) return false;
  }
  return true;
}

GemmReference reference_gemm(seqk::ConstView a, seqk::ConstView b, const float* bias, const double* c_in,
                             const std::vector<int64_t>* b_order) {
  const int64_t M = a.dim(0), K = a.dim(1);
  const int64_t N = b_order ? static_cast<int64_t>(b_order->size()) : b.dim(0);
  GemmReference r;
  r.c.assign(M * N, 0.0);
  r.magnitude.assign(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      const int64_t b_row = b_order ? (*b_order)[j] : j;
      double sum = 0.0, mag = 0.0;
      if (b_row >= 0) {
        for (int64_t k = 0; k < K; ++k) {
          const double term = static_cast<double>(a.data()[i * a.stride(0) + k * a.stride(1)]) *
                              static_cast<double>(b.data()[b_row * b.stride(0) + k * b.stride(1)]);
          sum += term;
          mag += std::fabs(term);
        }
      }
      if (bias) {
        sum += bias[j];
        mag += std::fabs(bias[j]);
      }
      if (c_in) {
        sum += c_in[i * N + j];
        mag += std::fabs(c_in[i * N + j]);
      }
      r.c[i * N + j] = sum;
      r.magnitude[i * N + j] = mag;
    }
  }
  return r;
}

namespace {
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

RefRecurrentResult reference_recurrent_forward(const RefRecurrentParams& p, const std::vector<double>& x, int64_t T,
                                               int64_t B, const std::vector<double>& h0, const std::vector<double>& c0) {
  const int64_t D = p.D, H = p.H, G = seqk::gates_per_unit(p.cell);
  std::vector<double> h(B * H, 0.0), c(B * H, 0.0);
  if (!h0.empty()) h = h0;
  if (!c0.empty()) c = c0;
  RefRecurrentResult r;
  r.y.assign(T * B * H, 0.0);
  // The input and hidden sides apart: the GRU's n gate needs them separately.
  std::vector<double> in(G * H), hid(G * H);
  std::vector<double> h_next(B * H), c_next(B * H);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t b = 0; b < B; ++b) {
      const double* xt = &x[(t * B + b) * D];
      const double* hb = &h[b * H];
      for (int64_t row = 0; row < G * H; ++row) {
        double sum_in = p.b_ih[row], sum_hid = p.b_hh[row];
        for (int64_t d = 0; d < D; ++d) sum_in += p.w_ih[row * D + d] * xt[d];
        for (int64_t k = 0; k < H; ++k) sum_hid += p.w_hh[row * H + k] * hb[k];
        in[row] = sum_in;
        hid[row] = sum_hid;
      }
      for (int64_t j = 0; j < H; ++j) {
        const int64_t at = b * H + j;
        switch (p.cell) {
          case seqk::CellKind::kLstm: {
            const double i_gate = sigmoid(in[j] + hid[j]);
            const double f_gate = sigmoid(in[H + j] + hid[H + j]);
            const double g_gate = std::tanh(in[2 * H + j] + hid[2 * H + j]);
            const double o_gate = sigmoid(in[3 * H + j] + hid[3 * H + j]);
            c_next[at] = f_gate * c[at] + i_gate * g_gate;
            h_next[at] = o_gate * std::tanh(c_next[at]);
            break;
          }
          case seqk::CellKind::kGru: {
            const double r_gate = sigmoid(in[j] + hid[j]);
            const double z_gate = sigmoid(in[H + j] + hid[H + j]);
            const double n_gate = std::tanh(in[2 * H + j] + r_gate * hid[2 * H + j]);
            h_next[at] = (1.0 - z_gate) * n_gate + z_gate * hb[j];
            break;
          }
          case seqk::CellKind::kRnnTanh: h_next[at] = std::tanh(in[j] + hid[j]); break;
          case seqk::CellKind::kRnnRelu: h_next[at] = std::max(0.0, in[j] + hid[j]); break;
        }
      }
    }
    h = h_next;
    if (seqk::has_cell_state(p.cell)) c = c_next;
    for (int64_t i = 0; i < B * H; ++i) r.y[t * B * H + i] = h[i];
  }
  r.h_n = h;
  if (seqk::has_cell_state(p.cell)) r.c_n = c;
  return r;
}

double reference_recurrent_loss(const RefRecurrentParams& p, const std::vector<double>& x, int64_t T, int64_t B,
                           const std::vector<double>& h0, const std::vector<double>& c0, const LossWeights& w) {
  const RefRecurrentResult r = reference_recurrent_forward(p, x, T, B, h0, c0);
  double loss = 0.0;
  for (std::size_t i = 0; i < w.w_y.size(); ++i) loss += w.w_y[i] * r.y[i];
  for (std::size_t i = 0; i < w.w_h.size(); ++i) loss += w.w_h[i] * r.h_n[i];
  for (std::size_t i = 0; i < w.w_c.size(); ++i) loss += w.w_c[i] * r.c_n[i];
  return loss;
}

std::vector<double> finite_difference(std::vector<double>* target, RefRecurrentParams& p, std::vector<double>& x,
                                      int64_t T, int64_t B, std::vector<double>& h0, std::vector<double>& c0,
                                      const LossWeights& w, double step) {
  std::vector<double> grad(target->size());
  for (std::size_t i = 0; i < target->size(); ++i) {
    const double saved = (*target)[i];
    (*target)[i] = saved + step;
    const double plus = reference_recurrent_loss(p, x, T, B, h0, c0, w);
    (*target)[i] = saved - step;
    const double minus = reference_recurrent_loss(p, x, T, B, h0, c0, w);
    (*target)[i] = saved;
    grad[i] = (plus - minus) / (2.0 * step);
  }
  return grad;
}

testing::AssertionResult close_elementwise(const char* what, const float* got, const double* want,
                                           const double* tol, std::size_t n) {
  std::size_t bad = 0, first = n, worst = n;
  double worst_ratio = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const bool ok = std::isfinite(got[i]) && err <= tol[i];
    if (ok) continue;
    ++bad;
    if (first == n) first = i;
    const double ratio = std::isfinite(err) ? err / tol[i] : INFINITY;
    if (worst == n || ratio > worst_ratio) {
      worst = i;
      worst_ratio = ratio;
    }
  }
  if (bad == 0) return testing::AssertionSuccess();
  std::ostringstream s;
  s.precision(9);
  s << what << ": " << bad << " of " << n << " elements out of tolerance; worst [" << worst << "] got "
    << got[worst] << " want " << want[worst] << " (|err| " << std::fabs(got[worst] - want[worst]) << ", tol "
    << tol[worst] << "); first [" << first << "] got " << got[first] << " want " << want[first];
  return testing::AssertionFailure() << s.str();
}

testing::AssertionResult close_uniform(const char* what, const float* got, const double* want, double tol,
                                       std::size_t n) {
  std::vector<double> tols(n, tol);
  return close_elementwise(what, got, want, tols.data(), n);
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

std::string target_test_name(const testing::TestParamInfo<seqk::SimdTarget>& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!ok) ch = '_';
  }
  return name.empty() ? "target" + std::to_string(info.index) : name;
}

void TargetTest::SetUp() {
  scope_ = new seqk::ScopedSimdTarget(GetParam().bits);
  ASSERT_EQ(seqk::active_simd_target().bits, GetParam().bits)
      << "ScopedSimdTarget did not pin " << GetParam().name << "; active is " << seqk::active_simd_target().name;
}

void TargetTest::TearDown() {
  delete scope_;
  scope_ = nullptr;
}

}  // namespace seqk_test

namespace seqk {
void PrintTo(const SimdTarget& target, std::ostream* os) { *os << target.name << " (0x" << std::hex << target.bits << std::dec << ")"; }
}  // namespace seqk
