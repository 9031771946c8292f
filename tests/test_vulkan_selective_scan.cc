// The selective scan (S6) on Vulkan against a plain fp64 sequential
// reference written here (forward loops, and their backward by hand, itself
// checked against central finite differences of the fp64 forward): forward,
// backward and the decode step, at small awkward sizes with and without each
// optional input, chunks that do not divide L, N = 256 (several forward
// passes on lavapipe); against the CPU scan at a medium size; and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/selective_scan.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_selective_scan.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;

// ---------------------------------------------------------------------------
// fp64 reference: the math of seqk/selective_scan.h, one channel at a time.

struct Options {
  bool skip = false, gate = false, bias = false, softplus = false, h0 = false;
};

// Inputs in the CPU scan's layouts; empty vectors are absent inputs.
struct Problem {
  int64_t B = 0, D = 0, L = 0, N = 0;
  bool softplus = false;
  std::vector<double> u, delta, A, Bm, C, Dskip, z, bias, h0;
};

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

struct Step {  // the scalars of step t of channel (b, d)
  double raw, dt, u;
};

Step step_at(const Problem& p, int64_t b, int64_t d, int64_t t) {
  const int64_t x = (b * p.D + d) * p.L + t;
  const double raw = p.delta[x] + (p.bias.empty() ? 0.0 : p.bias[d]);
  return {raw, p.softplus ? softplus(raw) : raw, p.u[x]};
}

double at_bnl(const std::vector<double>& v, const Problem& p, int64_t b, int64_t n, int64_t t) {
  return v[(b * p.N + n) * p.L + t];
}

// The states h_0 .. h_L of channel (b, d), (L + 1, N): row 0 is h0 (or zero).
std::vector<double> states_of(const Problem& p, int64_t b, int64_t d) {
  std::vector<double> h((p.L + 1) * p.N, 0.0);
  for (int64_t n = 0; n < p.N; ++n) h[n] = p.h0.empty() ? 0.0 : p.h0[(b * p.D + d) * p.N + n];
  for (int64_t t = 0; t < p.L; ++t) {
    const Step s = step_at(p, b, d, t);
    for (int64_t n = 0; n < p.N; ++n) {
      h[(t + 1) * p.N + n] =
          std::exp(s.dt * p.A[d * p.N + n]) * h[t * p.N + n] + s.dt * s.u * at_bnl(p.Bm, p, b, n, t);
    }
  }
  return h;
}

// y before the gate, from the state after step t.
double ungated(const Problem& p, int64_t b, int64_t d, int64_t t, const double* h_t) {
  double sum = p.Dskip.empty() ? 0.0 : p.Dskip[d] * p.u[(b * p.D + d) * p.L + t];
  for (int64_t n = 0; n < p.N; ++n) sum += at_bnl(p.C, p, b, n, t) * h_t[n];
  return sum;
}

struct Forward {
  std::vector<double> y, h_last;  // (B, D, L), (B, D, N)
};

Forward reference_forward(const Problem& p) {
  Forward f{std::vector<double>(p.B * p.D * p.L), std::vector<double>(p.B * p.D * p.N)};
  for (int64_t b = 0; b < p.B; ++b) {
    for (int64_t d = 0; d < p.D; ++d) {
      const std::vector<double> h = states_of(p, b, d);
      for (int64_t t = 0; t < p.L; ++t) {
        const int64_t x = (b * p.D + d) * p.L + t;
        const double out = ungated(p, b, d, t, &h[(t + 1) * p.N]);
        f.y[x] = p.z.empty() ? out : out * p.z[x] * sigmoid(p.z[x]);
      }
      for (int64_t n = 0; n < p.N; ++n) f.h_last[(b * p.D + d) * p.N + n] = h[p.L * p.N + n];
    }
  }
  return f;
}

// Gradients of Σ dy ⊙ y + Σ dh_last ⊙ h_last; empty where the input is absent.
struct Grads {
  std::vector<double> du, ddelta, dA, dB, dC, dD, dz, dbias, dh0;
};

// Reverse mode by hand, one channel at a time, from its recomputed states.
Grads reference_backward(const Problem& p, const std::vector<double>& dy, const std::vector<double>& dh_last) {
  const int64_t B = p.B, D = p.D, L = p.L, N = p.N;
  Grads g{std::vector<double>(B * D * L), std::vector<double>(B * D * L), std::vector<double>(D * N),
          std::vector<double>(B * N * L),  std::vector<double>(B * N * L),  {}, {}, {},
          std::vector<double>(B * D * N)};
  if (!p.Dskip.empty()) g.dD.assign(D, 0.0);
  if (!p.z.empty()) g.dz.assign(B * D * L, 0.0);
  if (!p.bias.empty()) g.dbias.assign(D, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      const std::vector<double> h = states_of(p, b, d);
      std::vector<double> dh(N);
      for (int64_t n = 0; n < N; ++n) dh[n] = dh_last.empty() ? 0.0 : dh_last[(b * D + d) * N + n];
      for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t x = (b * D + d) * L + t;
        const Step s = step_at(p, b, d, t);
        double dout = dy[x];  // dL/d(y before the gate)
        if (!p.z.empty()) {
          const double sz = sigmoid(p.z[x]), out = ungated(p, b, d, t, &h[(t + 1) * N]);
          g.dz[x] = dy[x] * out * sz * (1.0 + p.z[x] * (1.0 - sz));
          dout = dy[x] * p.z[x] * sz;
        }
        double du = p.Dskip.empty() ? 0.0 : p.Dskip[d] * dout, ddt = 0.0;
        if (!p.Dskip.empty()) g.dD[d] += dout * s.u;
        for (int64_t n = 0; n < N; ++n) {
          const double a = p.A[d * N + n], decay = std::exp(s.dt * a), bn = at_bnl(p.Bm, p, b, n, t);
          const double h_before = h[t * N + n];
          dh[n] += dout * at_bnl(p.C, p, b, n, t);  // now dL/dh_t
          g.dC[(b * N + n) * L + t] += dout * h[(t + 1) * N + n];
          g.dB[(b * N + n) * L + t] += dh[n] * s.dt * s.u;
          du += dh[n] * s.dt * bn;
          ddt += dh[n] * (h_before * decay * a + s.u * bn);
          g.dA[d * N + n] += dh[n] * h_before * decay * s.dt;
          dh[n] *= decay;  // now dL/dh_{t-1}
        }
        g.du[x] = du;
        g.ddelta[x] = ddt * (p.softplus && s.raw <= 20.0 ? sigmoid(s.raw) : 1.0);
        if (!p.bias.empty()) g.dbias[d] += g.ddelta[x];
      }
      for (int64_t n = 0; n < N; ++n) g.dh0[(b * D + d) * N + n] = dh[n];
    }
  }
  return g;
}

double loss(const Problem& p, const std::vector<double>& dy, const std::vector<double>& dh_last) {
  const Forward f = reference_forward(p);
  double sum = 0.0;
  for (std::size_t i = 0; i < f.y.size(); ++i) sum += dy[i] * f.y[i];
  for (std::size_t i = 0; i < f.h_last.size(); ++i) sum += dh_last[i] * f.h_last[i];
  return sum;
}

// ---------------------------------------------------------------------------
// Random problems: A < 0 and δ > 0, as in Mamba, so the states stay bounded.

struct RandomProblem {
  Problem ref;
  // fp32 copies of the same values, for the device.
  std::vector<float> u, delta, A, Bm, C, Dskip, z, bias, h0;
};

RandomProblem random_problem(int64_t B, int64_t D, int64_t L, int64_t N, const Options& o, uint64_t seed) {
  RandomProblem r;
  r.u = random_floats(B * D * L, seed + 1);
  // Softplus takes raw values around zero, one of them past its linear threshold (20).
  r.delta = o.softplus ? random_floats(B * D * L, seed + 2, -3.0f, 1.0f) : random_floats(B * D * L, seed + 2, 0.05f, 0.5f);
  if (o.softplus) r.delta[0] = 21.0f;
  r.A = random_floats(D * N, seed + 3, -2.0f, -0.1f);
  r.Bm = random_floats(B * N * L, seed + 4);
  r.C = random_floats(B * N * L, seed + 5);
  if (o.skip) r.Dskip = random_floats(D, seed + 6);
  if (o.gate) r.z = random_floats(B * D * L, seed + 7, -2.0f, 2.0f);
  if (o.bias) r.bias = o.softplus ? random_floats(D, seed + 8, -0.5f, 0.5f) : random_floats(D, seed + 8, 0.0f, 0.2f);
  if (o.h0) r.h0 = random_floats(B * D * N, seed + 9);
  r.ref = {B,           D,           L,           N,
           o.softplus,  to_double(r.u), to_double(r.delta), to_double(r.A), to_double(r.Bm), to_double(r.C),
           to_double(r.Dskip), to_double(r.z), to_double(r.bias), to_double(r.h0)};
  return r;
}

TEST(SelectiveScanReference, BackwardMatchesFiniteDifferences) {
  RandomProblem r = random_problem(2, 3, 6, 3, {true, true, true, true, true}, 500);
  Problem& p = r.ref;
  const std::vector<double> dy = to_double(random_floats(p.B * p.D * p.L, 510)),
                            dh_last = to_double(random_floats(p.B * p.D * p.N, 511));
  const Grads g = reference_backward(p, dy, dh_last);
  const double step = 1e-6;
  for (const auto& [name, input, grad] :
       {std::tuple{"u", &p.u, &g.du}, {"delta", &p.delta, &g.ddelta}, {"A", &p.A, &g.dA}, {"B", &p.Bm, &g.dB},
        {"C", &p.C, &g.dC}, {"D", &p.Dskip, &g.dD}, {"z", &p.z, &g.dz}, {"delta_bias", &p.bias, &g.dbias},
        {"h0", &p.h0, &g.dh0}}) {
    for (std::size_t i = 0; i < input->size(); ++i) {
      const double keep = (*input)[i];
      (*input)[i] = keep + step;
      const double up = loss(p, dy, dh_last);
      (*input)[i] = keep - step;
      const double down = loss(p, dy, dh_last);
      (*input)[i] = keep;
      EXPECT_NEAR((*grad)[i], (up - down) / (2 * step), 1e-6 * (1.0 + std::fabs((*grad)[i]))) << name << "[" << i << "]";
    }
  }
}

// ---------------------------------------------------------------------------
// The problem on the device.

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  if (values.empty()) return nullptr;
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

struct DeviceProblem {
  std::unique_ptr<vk::Buffer> u, delta, A, Bm, C, Dskip, z, bias, h0;
  vk::SelectiveScanBuffers in;

  DeviceProblem(vk::Device& device, const RandomProblem& r)
      : u(upload(device, r.u)),
        delta(upload(device, r.delta)),
        A(upload(device, r.A)),
        Bm(upload(device, r.Bm)),
        C(upload(device, r.C)),
        Dskip(upload(device, r.Dskip)),
        z(upload(device, r.z)),
        bias(upload(device, r.bias)),
        h0(upload(device, r.h0)),
        in{r.ref.B, r.ref.D,      r.ref.L, r.ref.N,      u.get(),   delta.get(),      A.get(),
           Bm.get(), C.get(),     Dskip.get(), z.get(), bias.get(), r.ref.softplus, h0.get()} {}
};

// got (fp32, from the device) against want (fp64) within `relative` of want's largest magnitude.
testing::AssertionResult close(const std::string& what, const vk::Buffer* got, const std::vector<double>& want,
                               double relative) {
  if (got == nullptr) return testing::AssertionFailure() << what << ": no buffer";
  return close_uniform(what.c_str(), got->download().data(), want.data(), relative * max_abs(want) + 1e-6,
                       want.size());
}

class VulkanSelectiveScan : public Vulkan {};

struct Case {
  int64_t B, D, L, N, chunk;  // chunk 0: chosen
  Options options;
  bool dh_last;               // a gradient for h_last (else null: zero)
};

std::string describe(const Case& c) {
  const Options& o = c.options;
  return "B=" + std::to_string(c.B) + " D=" + std::to_string(c.D) + " L=" + std::to_string(c.L) +
         " N=" + std::to_string(c.N) + " chunk=" + std::to_string(c.chunk) + (o.skip ? " D" : "") +
         (o.gate ? " z" : "") + (o.bias ? " bias" : "") + (o.softplus ? " softplus" : "") + (o.h0 ? " h0" : "") +
         (c.dh_last ? " dh_last" : "");
}

// Each optional input on and off; chunks that leave the last one partial,
// one chunk longer than L, the chosen chunk; N = 256 (two forward passes and
// a chunk below the default on lavapipe). Few distinct N: each is its own
// pipeline, and lavapipe takes about a second to compile one with its loops
// over N unrolled.
const Case kCases[] = {
    {1, 1, 1, 1, 0, {}, false},
    {1, 5, 7, 4, 3, {.skip = true}, true},
    {3, 5, 130, 17, 16, {true, true, true, true, true}, true},
    {3, 33, 7, 17, 0, {.gate = true, .h0 = true}, false},
    {1, 33, 130, 1, 50, {.bias = true, .h0 = true}, true},
    {3, 1, 130, 17, 0, {.skip = true, .softplus = true}, false},
    {3, 5, 1, 4, 8, {true, true, true, true, true}, true},
    {1, 2, 130, 256, 0, {true, true, true, true, true}, true},
};

TEST_F(VulkanSelectiveScan, ForwardAndBackwardMatchFp64) {
  vk::Device device;
  uint64_t seed = 1000;
  for (const Case& c : kCases) {
    SCOPED_TRACE(describe(c));
    const RandomProblem r = random_problem(c.B, c.D, c.L, c.N, c.options, seed += 20);
    const std::vector<float> dy = random_floats(c.B * c.D * c.L, seed + 11),
                             dh_last = c.dh_last ? random_floats(c.B * c.D * c.N, seed + 12) : std::vector<float>{};
    const Forward want = reference_forward(r.ref);
    const Grads want_grads = reference_backward(r.ref, to_double(dy), to_double(dh_last));

    DeviceProblem g(device, r);
    auto g_dy = upload(device, dy), g_dh_last = upload(device, dh_last);
    const int64_t BDL = c.B * c.D * c.L, BNL = c.B * c.N * c.L, BDN = c.B * c.D * c.N;
    vk::Buffer y(device, BDL), h_last(device, BDN), du(device, BDL), ddelta(device, BDL), dA(device, c.D * c.N),
        dB(device, BNL), dC(device, BNL), dh0(device, BDN);
    auto optional = [&](bool given, int64_t size) { return given ? std::make_unique<vk::Buffer>(device, size) : nullptr; };
    auto dD = optional(c.options.skip, c.D), dz = optional(c.options.gate, BDL), dbias = optional(c.options.bias, c.D);
    vk::SelectiveScanSaved saved;
    vk::Stream stream(device);
    vk::selective_scan(stream, g.in, y, &h_last, &saved, c.chunk);
    vk::selective_scan_backward(stream, g.in, saved, *g_dy, g_dh_last.get(),
                                {&du, &ddelta, &dA, &dB, &dC, dD.get(), dz.get(), dbias.get(), &dh0});
    stream.submit();
    EXPECT_EQ(saved.chunks(), (c.L + saved.chunk_steps() - 1) / saved.chunk_steps());
    if (c.chunk > 0) {
      EXPECT_EQ(saved.chunk_steps(), std::min(c.chunk, c.L));
    }

    // fp32 against fp64 over up to 130 steps and sums over B·L or D terms.
    constexpr double kRelative = 2e-5;
    EXPECT_TRUE(close("y", &y, want.y, kRelative));
    EXPECT_TRUE(close("h_last", &h_last, want.h_last, kRelative));
    EXPECT_TRUE(close("du", &du, want_grads.du, kRelative));
    EXPECT_TRUE(close("ddelta", &ddelta, want_grads.ddelta, kRelative));
    EXPECT_TRUE(close("dA", &dA, want_grads.dA, kRelative));
    EXPECT_TRUE(close("dB", &dB, want_grads.dB, kRelative));
    EXPECT_TRUE(close("dC", &dC, want_grads.dC, kRelative));
    EXPECT_TRUE(close("dh0", &dh0, want_grads.dh0, kRelative));
    for (const auto& [name, got, want_grad] : {std::tuple{"dD", dD.get(), &want_grads.dD}, {"dz", dz.get(), &want_grads.dz},
                                               {"ddelta_bias", dbias.get(), &want_grads.dbias}}) {
      EXPECT_EQ(got != nullptr, !want_grad->empty()) << name;
      if (got) {
        EXPECT_TRUE(close(name, got, *want_grad, kRelative));
      }
    }
  }
}

// No atomics: two backward passes give the same bits; dh0 not wanted works.
TEST_F(VulkanSelectiveScan, BackwardIsDeterministic) {
  vk::Device device;
  const RandomProblem r = random_problem(3, 33, 70, 4, {true, true, true, true, false}, 77);
  DeviceProblem g(device, r);
  auto dy = upload(device, random_floats(3 * 33 * 70, 78));
  vk::Buffer y(device, 3 * 33 * 70);
  vk::SelectiveScanSaved saved;
  vk::Stream stream(device);
  vk::selective_scan(stream, g.in, y, nullptr, &saved, 16);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    vk::Buffer du(device, 3 * 33 * 70), ddelta(device, 3 * 33 * 70), dA(device, 33 * 4), dB(device, 3 * 4 * 70),
        dC(device, 3 * 4 * 70), dD(device, 33), dz(device, 3 * 33 * 70), dbias(device, 33);
    vk::selective_scan_backward(stream, g.in, saved, *dy, nullptr, {&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias});
    stream.submit();
    std::vector<float> all;
    for (const vk::Buffer* out : {&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias}) {
      const std::vector<float> values = out->download();
      all.insert(all.end(), values.begin(), values.end());
    }
    runs.push_back(std::move(all));
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// L decode steps from h0 give the forward's y and h_last (the forward here
// without h_last or saved states: the inference path).
TEST_F(VulkanSelectiveScan, DecodeStepsMatchForward) {
  vk::Device device;
  for (const auto& [N, options] : {std::pair{17, Options{true, true, true, true, true}}, {4, Options{.h0 = true}}}) {
    SCOPED_TRACE(testing::Message() << "N=" << N);
    const int64_t B = 3, D = 5, L = 9;
    const RandomProblem r = random_problem(B, D, L, N, options, 300 + N);
    const Forward want = reference_forward(r.ref);
    DeviceProblem g(device, r);
    vk::Buffer y(device, B * D * L);
    vk::Stream stream(device);
    vk::selective_scan(stream, g.in, y, nullptr);

    // Step t's slices of the (B, D, L) and (B, N, L) inputs.
    auto slice = [&](const std::vector<float>& v, int64_t rows, int64_t t) {
      std::vector<float> out;
      for (int64_t row = 0; row < rows; ++row) out.push_back(v[row * L + t]);
      return out;
    };
    vk::Buffer h(device, B * D * N), y_t(device, B * D);
    h.upload(r.h0.empty() ? std::vector<float>(B * D * N, 0.0f) : r.h0);
    std::vector<double> steps_y(B * D * L);
    for (int64_t t = 0; t < L; ++t) {
      auto u = upload(device, slice(r.u, B * D, t)), delta = upload(device, slice(r.delta, B * D, t)),
           Bt = upload(device, slice(r.Bm, B * N, t)), Ct = upload(device, slice(r.C, B * N, t)),
           z = r.z.empty() ? nullptr : upload(device, slice(r.z, B * D, t));
      vk::selective_scan_step(stream, {B, D, N, u.get(), delta.get(), g.A.get(), Bt.get(), Ct.get(), g.Dskip.get(),
                                       z.get(), g.bias.get(), r.ref.softplus},
                              h, y_t);
      stream.submit();
      const std::vector<float> values = y_t.download();
      for (int64_t row = 0; row < B * D; ++row) steps_y[row * L + t] = values[row];
    }
    EXPECT_TRUE(close("forward y", &y, want.y, 2e-5));
    const std::vector<float> forward_y = y.download();
    EXPECT_TRUE(close_uniform("steps' y vs forward y", forward_y.data(), steps_y.data(), 1e-6, steps_y.size()));
    EXPECT_TRUE(close("steps' h", &h, want.h_last, 2e-5));
  }
}

// The same results as the CPU scan (fp32 both, different association: its
// SIMD sums and thread partials against the sequential sums here).
TEST_F(VulkanSelectiveScan, MatchesCpu) {
  vk::Device device;
  const int64_t B = 2, D = 48, L = 300, N = 17, chunk = 64;  // N = 17: padding lanes in the CPU scan
  const RandomProblem r = random_problem(B, D, L, N, {true, true, true, true, true}, 700);
  const std::vector<float> dy = random_floats(B * D * L, 711), dh_last = random_floats(B * D * N, 712);

  using seqk::ConstView;
  using seqk::View;
  auto view = [](const std::vector<float>& v, std::initializer_list<int64_t> shape) { return ConstView(v.data(), shape); };
  const seqk::SelectiveScanInputs cpu_in{view(r.u, {B, D, L}),  view(r.delta, {B, D, L}), view(r.A, {D, N}),
                                         view(r.Bm, {B, N, L}), view(r.C, {B, N, L}),     view(r.Dskip, {D}),
                                         view(r.z, {B, D, L}),  view(r.bias, {D}),        r.ref.softplus,
                                         view(r.h0, {B, D, N})};
  struct Outputs {
    std::vector<float> y, h_last, du, ddelta, dA, dB, dC, dD, dz, dbias, dh0;
  };
  Outputs cpu{std::vector<float>(B * D * L), std::vector<float>(B * D * N), std::vector<float>(B * D * L),
              std::vector<float>(B * D * L), std::vector<float>(D * N),     std::vector<float>(B * N * L),
              std::vector<float>(B * N * L), std::vector<float>(D),         std::vector<float>(B * D * L),
              std::vector<float>(D),         std::vector<float>(B * D * N)};
  seqk::SelectiveScanSaved cpu_saved;
  seqk::selective_scan(cpu_in, View(cpu.y.data(), {B, D, L}), View(cpu.h_last.data(), {B, D, N}), &cpu_saved, nullptr,
                       chunk);
  seqk::selective_scan_backward(
      cpu_in, cpu_saved, view(dy, {B, D, L}), view(dh_last, {B, D, N}),
      {View(cpu.du.data(), {B, D, L}), View(cpu.ddelta.data(), {B, D, L}), View(cpu.dA.data(), {D, N}),
       View(cpu.dB.data(), {B, N, L}), View(cpu.dC.data(), {B, N, L}), View(cpu.dD.data(), {D}),
       View(cpu.dz.data(), {B, D, L}), View(cpu.dbias.data(), {D}), View(cpu.dh0.data(), {B, D, N})});

  DeviceProblem g(device, r);
  auto g_dy = upload(device, dy), g_dh_last = upload(device, dh_last);
  vk::Buffer y(device, B * D * L), h_last(device, B * D * N), du(device, B * D * L), ddelta(device, B * D * L),
      dA(device, D * N), dB(device, B * N * L), dC(device, B * N * L), dD(device, D), dz(device, B * D * L),
      dbias(device, D), dh0(device, B * D * N);
  vk::SelectiveScanSaved saved;
  vk::Stream stream(device);
  vk::selective_scan(stream, g.in, y, &h_last, &saved, chunk);
  vk::selective_scan_backward(stream, g.in, saved, *g_dy, g_dh_last.get(),
                              {&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias, &dh0});
  stream.submit();
  for (const auto& [name, got, want] :
       {std::tuple{"y", &y, &cpu.y}, {"h_last", &h_last, &cpu.h_last}, {"du", &du, &cpu.du},
        {"ddelta", &ddelta, &cpu.ddelta}, {"dA", &dA, &cpu.dA}, {"dB", &dB, &cpu.dB}, {"dC", &dC, &cpu.dC},
        {"dD", &dD, &cpu.dD}, {"dz", &dz, &cpu.dz}, {"ddelta_bias", &dbias, &cpu.dbias}, {"dh0", &dh0, &cpu.dh0}}) {
    EXPECT_TRUE(close(name, got, to_double(*want), 2e-5));
  }
}

TEST_F(VulkanSelectiveScan, RejectsBadInput) {
  vk::Device device;
  const int64_t B = 2, D = 3, L = 5, N = 4;
  const RandomProblem r = random_problem(B, D, L, N, {true, true, true, true, true}, 900);
  DeviceProblem g(device, r);
  vk::Buffer y(device, B * D * L), h_last(device, B * D * N), short_buffer(device, 7), dy(device, B * D * L);
  vk::Stream stream(device);
  auto rejected = [&](const vk::SelectiveScanBuffers& in, vk::Buffer* out = nullptr, vk::Buffer* last = nullptr) {
    EXPECT_THROW(vk::selective_scan(stream, in, out ? *out : y, last), seqk::Error);
  };
  vk::SelectiveScanBuffers in = g.in;
  in.u = nullptr;
  rejected(in);                                          // a required input missing
  in = g.in;
  in.C = &short_buffer;
  rejected(in);                                          // wrong size
  in = g.in;
  in.z = &short_buffer;
  rejected(in);                                          // an optional input of the wrong size
  rejected(g.in, g.u.get());                             // y is an input
  rejected(g.in, &y, &y);                                // h_last is y
  for (int64_t* size : {&in.batch, &in.channels, &in.steps, &in.state}) {
    in = g.in;
    *size = 0;
    rejected(in);                                        // zero sizes
  }
  in = g.in;
  in.state = 257;
  rejected(in);                                          // N > 256
  EXPECT_THROW(vk::selective_scan(stream, g.in, y, nullptr, nullptr, -1), seqk::Error);  // negative chunk
  EXPECT_THROW(vk::selective_scan(stream, g.in, y, nullptr, nullptr, int64_t{1} << 40), seqk::Error);

  // A buffer of another device (a second Device on the same GPU is another device).
  vk::Device other(device.info().index);
  vk::Buffer foreign(other, B * D * L);
  in = g.in;
  in.u = &foreign;
  rejected(in);

  // Backward: no saved states, missing or extra gradients, aliasing.
  vk::Buffer du(device, B * D * L), ddelta(device, B * D * L), dA(device, D * N), dB(device, B * N * L),
      dC(device, B * N * L), dD(device, D), dz(device, B * D * L), dbias(device, D);
  const vk::SelectiveScanGradBuffers grads{&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias, nullptr};
  vk::SelectiveScanSaved unfilled;
  EXPECT_THROW(vk::selective_scan_backward(stream, g.in, unfilled, dy, nullptr, grads), seqk::Error);
  vk::SelectiveScanSaved saved;
  vk::selective_scan(stream, g.in, y, nullptr, &saved);
  stream.submit();
  auto backward_rejects = [&](const vk::SelectiveScanBuffers& in, const vk::SelectiveScanGradBuffers& grads) {
    EXPECT_THROW(vk::selective_scan_backward(stream, in, saved, dy, nullptr, grads), seqk::Error);
  };
  vk::SelectiveScanGradBuffers bad = grads;
  bad.dz = nullptr;
  backward_rejects(g.in, bad);                           // z given, dz missing
  in = g.in;
  in.D = nullptr;
  backward_rejects(in, grads);                           // dD given without D
  bad = grads;
  bad.dB = &dC;
  backward_rejects(g.in, bad);                           // two gradients in one buffer
  bad = grads;
  bad.du = const_cast<vk::Buffer*>(g.in.delta);
  backward_rejects(g.in, bad);                           // a gradient in an input
  bad = grads;
  bad.dh0 = const_cast<vk::Buffer*>(saved.states());
  backward_rejects(g.in, bad);                           // a gradient in the saved states
  in = g.in;
  in.steps = L - 1;
  backward_rejects(in, grads);                           // shapes other than the forward's
  EXPECT_THROW(vk::selective_scan_backward(stream, g.in, saved, y, &short_buffer, grads), seqk::Error);

  // Decode step.
  vk::Buffer h(device, B * D * N), y_t(device, B * D), u_t(device, B * D), B_t(device, B * N);
  const vk::SelectiveScanStepBuffers step{B, D, N, &u_t, &u_t, g.A.get(), &B_t, &B_t};
  EXPECT_THROW(vk::selective_scan_step(stream, step, h, h), seqk::Error);      // y is h
  EXPECT_THROW(vk::selective_scan_step(stream, step, y_t, y_t), seqk::Error);  // h of the wrong size
  vk::SelectiveScanStepBuffers bad_step = step;
  bad_step.B = &u_t;
  EXPECT_THROW(vk::selective_scan_step(stream, bad_step, h, y_t), seqk::Error);  // B of the wrong size
  EXPECT_EQ(stream.recorded(), 0u);
}

}  // namespace
}  // namespace seqk_test
