// Uses an installed seqk: one GEMM and one small LSTM forward, each checked
// against a plain double-precision loop. Exits non-zero on any mismatch.
#include <seqk/gemm.h>
#include <seqk/lstm.h>
#include <seqk/simd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

namespace {

std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Largest |got - want| / (1 + |want|).
double compare(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])));
  }
  return worst;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

bool check_gemm(std::mt19937& rng) {
  const int64_t m = 5, n = 21, k = 19;  // none a multiple of a vector width
  std::vector<float> a = random_vector(m * k, rng);
  std::vector<float> b = random_vector(n * k, rng);  // (N, K)
  std::vector<float> bias = random_vector(n, rng);
  std::vector<float> c(m * n, 0.0f);

  seqk::PackedMatrix packed(seqk::ConstView(b.data(), {n, k}));
  seqk::GemmArgs args;
  args.bias = bias.data();
  seqk::gemm(seqk::ConstView(a.data(), {m, k}), packed, seqk::View(c.data(), {m, n}), args);

  std::vector<double> want(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias[j];
      for (int64_t p = 0; p < k; ++p) sum += double(a[i * k + p]) * b[j * k + p];
      want[i * n + j] = sum;
    }
  }
  const double error = compare(c, want);
  std::printf("gemm %lldx%lldx%lld: max relative error %.3g\n", (long long)m, (long long)n, (long long)k, error);
  return error < 1e-5;
}

bool check_lstm(std::mt19937& rng) {
  const int64_t steps = 4, batch = 2, in = 3, hidden = 5;
  const int64_t gates = 4 * hidden;
  std::vector<float> w_ih = random_vector(gates * in, rng);
  std::vector<float> w_hh = random_vector(gates * hidden, rng);
  std::vector<float> b_ih = random_vector(gates, rng);
  std::vector<float> b_hh = random_vector(gates, rng);
  std::vector<float> x = random_vector(steps * batch * in, rng);
  std::vector<float> h0 = random_vector(batch * hidden, rng);
  std::vector<float> c0 = random_vector(batch * hidden, rng);
  std::vector<float> y(steps * batch * hidden), h_n(batch * hidden), c_n(batch * hidden);

  seqk::LstmLayer layer(in, hidden);
  layer.set_parameters({seqk::ConstView(w_ih.data(), {gates, in}), seqk::ConstView(w_hh.data(), {gates, hidden}),
                        seqk::ConstView(b_ih.data(), {gates}), seqk::ConstView(b_hh.data(), {gates})});
  seqk::LstmForwardArgs args;
  args.x = seqk::ConstView(x.data(), {steps, batch, in});
  args.y = seqk::View(y.data(), {steps, batch, hidden});
  args.h0 = seqk::ConstView(h0.data(), {batch, hidden});
  args.c0 = seqk::ConstView(c0.data(), {batch, hidden});
  args.h_n = seqk::View(h_n.data(), {batch, hidden});
  args.c_n = seqk::View(c_n.data(), {batch, hidden});
  layer.forward(args);

  // PyTorch's LSTM: gate row blocks i, f, g, o.
  std::vector<double> h(h0.begin(), h0.end()), c(c0.begin(), c0.end());
  std::vector<double> want_y(steps * batch * hidden);
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<double> h_next(batch * hidden), c_next(batch * hidden);
    for (int64_t bi = 0; bi < batch; ++bi) {
      std::vector<double> pre(gates);
      for (int64_t r = 0; r < gates; ++r) {
        double sum = double(b_ih[r]) + b_hh[r];
        for (int64_t d = 0; d < in; ++d) sum += double(w_ih[r * in + d]) * x[(t * batch + bi) * in + d];
        for (int64_t j = 0; j < hidden; ++j) sum += double(w_hh[r * hidden + j]) * h[bi * hidden + j];
        pre[r] = sum;
      }
      for (int64_t j = 0; j < hidden; ++j) {
        const double i_gate = sigmoid(pre[j]);
        const double f_gate = sigmoid(pre[hidden + j]);
        const double g_gate = std::tanh(pre[2 * hidden + j]);
        const double o_gate = sigmoid(pre[3 * hidden + j]);
        const double cell = f_gate * c[bi * hidden + j] + i_gate * g_gate;
        c_next[bi * hidden + j] = cell;
        h_next[bi * hidden + j] = o_gate * std::tanh(cell);
        want_y[(t * batch + bi) * hidden + j] = h_next[bi * hidden + j];
      }
    }
    h = h_next;
    c = c_next;
  }
  const double error_y = compare(y, want_y);
  const double error_h = compare(h_n, h);
  const double error_c = compare(c_n, c);
  std::printf("lstm T=%lld B=%lld D=%lld H=%lld: max relative error y %.3g, h_n %.3g, c_n %.3g\n", (long long)steps,
              (long long)batch, (long long)in, (long long)hidden, error_y, error_h, error_c);
  return error_y < 1e-4 && error_h < 1e-4 && error_c < 1e-4;
}

}  // namespace

int main() {
  std::printf("seqk consumer: SIMD target %s\n", seqk::active_simd_target().name.c_str());
  std::mt19937 rng(1234);
  bool ok = true;
  try {
    ok = check_gemm(rng) && ok;
    ok = check_lstm(rng) && ok;
  } catch (const seqk::Error& e) {
    std::fprintf(stderr, "seqk::Error: %s\n", e.what());
    return 1;
  }
  std::printf("%s\n", ok ? "consumer: OK" : "consumer: MISMATCH");
  return ok ? 0 : 1;
}
