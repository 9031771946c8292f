// Attention on Vulkan, both forms (tiled "flash" and naive), against a plain
// fp64 loop reference (its backward checked against central finite
// differences, and the Vulkan backward against finite differences once
// directly), against the CPU kernels, and against each other: causal
// (bottom-right aligned) and not, key lengths, Lq ≠ Lk, sizes that are not
// multiples of a block, head sizes 1 to 128, fully masked rows (zeros, lse
// −inf, no NaN); a length at which lavapipe's loop budget splits every walk
// into several dispatches; the same bits on a second run; bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "attention_problem.h"
#include "reference.h"
#include "seqk/attention.h"
#include "seqk/error.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_attention.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;
using seqk::ConstView;
using seqk::View;

constexpr double kInf = std::numeric_limits<double>::infinity();

int64_t rows(const Case& c) { return c.B * c.H * c.Lq; }

// ---------------------------------------------------------------------------
// fp64 reference: plain loops over (head, i, j).

struct Inputs {
  std::vector<double> q, k, v, dout;
};

Inputs inputs_of(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                 const std::vector<float>& dout) {
  return {seqk_test::to_double(q), seqk_test::to_double(k), seqk_test::to_double(v), seqk_test::to_double(dout)};
}

struct Reference {
  std::vector<double> out, lse, probs, dq, dk, dv;
};

void reference_forward(const Case& c, const Inputs& x, Reference& r) {
  r.out.assign(q_size(c), 0.0);
  r.lse.assign(rows(c), -kInf);
  r.probs.assign(rows(c) * c.Lk, 0.0);
  for (int64_t head = 0; head < c.B * c.H; ++head) {
    const int64_t b = head / c.H;
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t row = head * c.Lq + i;
      std::vector<double> s(c.Lk, -kInf);
      double max = -kInf;
      for (int64_t j = 0; j < c.Lk; ++j) {
        if (!sees(c, b, i, j)) continue;
        double dot = 0;
        for (int64_t e = 0; e < c.dh; ++e) dot += x.q[row * c.dh + e] * x.k[(head * c.Lk + j) * c.dh + e];
        s[j] = scale_of(c) * dot;
        max = std::max(max, s[j]);
      }
      if (max == -kInf) continue;  // sees no key
      double sum = 0;
      for (int64_t j = 0; j < c.Lk; ++j) sum += s[j] == -kInf ? 0.0 : std::exp(s[j] - max);
      r.lse[row] = max + std::log(sum);
      for (int64_t j = 0; j < c.Lk; ++j) {
        const double p = s[j] == -kInf ? 0.0 : std::exp(s[j] - max) / sum;
        r.probs[row * c.Lk + j] = p;
        for (int64_t e = 0; e < c.dh; ++e) r.out[row * c.dh + e] += p * x.v[(head * c.Lk + j) * c.dh + e];
      }
    }
  }
}

// The textbook backward from the probabilities (checked against finite
// differences in ReferenceBackwardMatchesFiniteDifferences).
Reference reference(const Case& c, const Inputs& x) {
  Reference r;
  reference_forward(c, x, r);
  r.dq.assign(q_size(c), 0.0);
  r.dk.assign(k_size(c), 0.0);
  r.dv.assign(k_size(c), 0.0);
  const double scale = scale_of(c);
  for (int64_t head = 0; head < c.B * c.H; ++head)
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t row = head * c.Lq + i;
      std::vector<double> dp(c.Lk, 0.0);
      double dot = 0;
      for (int64_t j = 0; j < c.Lk; ++j) {
        for (int64_t e = 0; e < c.dh; ++e) dp[j] += x.dout[row * c.dh + e] * x.v[(head * c.Lk + j) * c.dh + e];
        dot += r.probs[row * c.Lk + j] * dp[j];
      }
      for (int64_t j = 0; j < c.Lk; ++j) {
        const double p = r.probs[row * c.Lk + j], ds = p * (dp[j] - dot);
        for (int64_t e = 0; e < c.dh; ++e) {
          const int64_t at_k = (head * c.Lk + j) * c.dh + e, at_q = row * c.dh + e;
          r.dv[at_k] += p * x.dout[at_q];
          r.dq[at_q] += scale * ds * x.k[at_k];
          r.dk[at_k] += scale * ds * x.q[at_q];
        }
      }
    }
  return r;
}

// L = Σ dout ⊙ out, whose gradient the backward computes when fed dout.
double loss(const Case& c, const Inputs& x) {
  Reference r;
  reference_forward(c, x, r);
  double sum = 0;
  for (std::size_t i = 0; i < r.out.size(); ++i) sum += x.dout[i] * r.out[i];
  return sum;
}

// Central differences of the loss with respect to every element of `which`.
std::vector<double> finite_differences(const Case& c, Inputs x, std::vector<double> Inputs::*which) {
  constexpr double kStep = 1e-5;
  std::vector<double> grad((x.*which).size());
  for (std::size_t i = 0; i < grad.size(); ++i) {
    const double saved = (x.*which)[i];
    (x.*which)[i] = saved + kStep;
    const double plus = loss(c, x);
    (x.*which)[i] = saved - kStep;
    const double minus = loss(c, x);
    (x.*which)[i] = saved;
    grad[i] = (plus - minus) / (2 * kStep);
  }
  return grad;
}

// ---------------------------------------------------------------------------
// Running the kernels.

enum class Form { kFlash, kNaive };
const char* name_of(Form form) { return form == Form::kFlash ? "flash" : "naive"; }
void PrintTo(Form form, std::ostream* os) { *os << name_of(form); }

struct Tensors {
  std::vector<float> q, k, v, dout;
};

Tensors random_tensors(const Case& c, uint64_t seed) {
  return {random_floats(q_size(c), seed), random_floats(k_size(c), seed + 1), random_floats(k_size(c), seed + 2),
          random_floats(q_size(c), seed + 3)};
}

struct Results {
  std::vector<float> out, lse, probs, dq, dk, dv;  // lse: flash only; probs: naive only
  std::size_t dispatches = 0;                      // recorded for the forward and backward
};

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

// Forward and backward on the device, in one submit.
Results run_vulkan(vk::Device& device, Form form, const Case& c, const Tensors& t) {
  const auto q = upload(device, t.q), k = upload(device, t.k), v = upload(device, t.v), dout = upload(device, t.dout);
  vk::Buffer out(device, q_size(c)), lse(device, rows(c)), probs(device, rows(c) * c.Lk), dq(device, q_size(c)),
      dk(device, k_size(c)), dv(device, k_size(c));
  const vk::AttentionBuffers in{c.B, c.H, c.Lq, c.Lk, c.dh, q.get(), k.get(), v.get(), c.causal, c.key_lengths,
                                c.scale};
  const vk::AttentionGradBuffers grads{&dq, &dk, &dv};
  vk::Stream stream(device);
  if (form == Form::kFlash) {
    vk::attention_forward(stream, in, out, lse);
    vk::attention_backward(stream, in, out, lse, *dout, grads);
  } else {
    vk::attention_naive_forward(stream, in, out, probs);
    vk::attention_naive_backward(stream, in, probs, *dout, grads);
  }
  Results r;
  r.dispatches = stream.recorded();
  stream.submit();
  r.out = out.download();
  r.dq = dq.download();
  r.dk = dk.download();
  r.dv = dv.download();
  if (form == Form::kFlash) r.lse = lse.download();
  if (form == Form::kNaive) r.probs = probs.download();
  return r;
}

Results run_cpu(Form form, const Case& c, const Tensors& t) {
  Results r{std::vector<float>(q_size(c)), std::vector<float>(rows(c)), std::vector<float>(rows(c) * c.Lk),
            std::vector<float>(q_size(c)), std::vector<float>(k_size(c)), std::vector<float>(k_size(c))};
  const seqk::AttentionInputs in{ConstView(t.q.data(), {c.B, c.H, c.Lq, c.dh}),
                                 ConstView(t.k.data(), {c.B, c.H, c.Lk, c.dh}),
                                 ConstView(t.v.data(), {c.B, c.H, c.Lk, c.dh}), c.causal, c.key_lengths, c.scale};
  const View out(r.out.data(), {c.B, c.H, c.Lq, c.dh});
  const ConstView dout(t.dout.data(), {c.B, c.H, c.Lq, c.dh});
  const seqk::AttentionGrads grads{View(r.dq.data(), {c.B, c.H, c.Lq, c.dh}), View(r.dk.data(), {c.B, c.H, c.Lk, c.dh}),
                                   View(r.dv.data(), {c.B, c.H, c.Lk, c.dh})};
  if (form == Form::kFlash) {
    const View lse(r.lse.data(), {c.B, c.H, c.Lq});
    seqk::attention_forward(in, out, lse);
    seqk::attention_backward(in, out, lse, dout, grads);
  } else {
    const View probs(r.probs.data(), {c.B, c.H, c.Lq, c.Lk});
    seqk::attention_naive_forward(in, out, probs);
    seqk::attention_naive_backward(in, probs, dout, grads);
  }
  return r;
}

// |got − want| ≤ tol·(1 + |want|) everywhere, infinities equal; reports the worst element.
testing::AssertionResult close(const char* name, const std::vector<float>& got, const std::vector<double>& want,
                               double tol) {
  if (got.size() != want.size()) return testing::AssertionFailure() << name << ": size " << got.size();
  double worst = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    const double error = std::isfinite(got[i]) ? std::abs(got[i] - want[i]) / (1.0 + std::abs(want[i])) : kInf;
    if (!(error <= worst)) {
      worst = error;
      worst_at = i;
    }
  }
  if (worst <= tol) return testing::AssertionSuccess();
  return testing::AssertionFailure() << name << "[" << worst_at << "] = " << got[worst_at] << ", expected "
                                     << want[worst_at] << " (relative error " << worst << " > " << tol << ")";
}

std::vector<double> widen(const std::vector<float>& v) { return seqk_test::to_double(v); }

void expect_matches(Form form, const Results& r, const Reference& want, double tol) {
  EXPECT_TRUE(close("out", r.out, want.out, tol));
  if (form == Form::kFlash) {
    EXPECT_TRUE(close("lse", r.lse, want.lse, tol));
  } else {
    EXPECT_TRUE(close("probs", r.probs, want.probs, tol));
  }
  EXPECT_TRUE(close("dq", r.dq, want.dq, tol));
  EXPECT_TRUE(close("dk", r.dk, want.dk, tol));
  EXPECT_TRUE(close("dv", r.dv, want.dv, tol));
}

// Awkward sizes: 1, odd, not multiples of the 16-row staging or the 64-row
// workgroups, Lq > Lk causal (the first rows see nothing), a key length of
// 0 (a batch row that sees nothing), every key padded in a block.
std::vector<Case> cases() {
  return {{1, 1, 1, 1, 1},
          {2, 3, 7, 13, 16, true},
          {1, 2, 70, 30, 64, true},
          {2, 1, 20, 33, 8, false, {0, 17}},
          {1, 1, 17, 70, 128, true, {50}},
          {3, 1, 66, 65, 3, true, {65, 1, 40}, 0.7f},
          {1, 2, 9, 100, 64, false, {}, -0.3f}};
}

class VulkanAttention : public Vulkan, public testing::WithParamInterface<Form> {};

TEST_P(VulkanAttention, MatchesReferenceAndCpu) {
  vk::Device device;
  uint64_t seed = 10;
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const Tensors t = random_tensors(c, seed += 10);
    const Results r = run_vulkan(device, GetParam(), c, t);
    expect_matches(GetParam(), r, reference(c, inputs_of(t.q, t.k, t.v, t.dout)), 2e-5);
    const Results cpu = run_cpu(GetParam(), c, t);
    Reference as_cpu{widen(cpu.out), widen(cpu.lse), widen(cpu.probs), widen(cpu.dq), widen(cpu.dk), widen(cpu.dv)};
    expect_matches(GetParam(), r, as_cpu, 2e-5);
  }
}

// Rows that see no key: zero output and gradients, lse −inf, no NaN; padded
// keys get zero dk and dv (exactly: nothing is ever added to them).
TEST_P(VulkanAttention, FullyMaskedRowsAreZero) {
  vk::Device device;
  const Case c{2, 2, 9, 5, 8, true, {0, 4}};  // batch row 0 sees nothing; row 1's first 4 queries see nothing
  const Results r = run_vulkan(device, GetParam(), c, random_tensors(c, 500));
  for (const std::vector<float>* v : {&r.out, &r.dq, &r.dk, &r.dv}) {
    for (float x : *v) ASSERT_FALSE(std::isnan(x));
  }
  for (int64_t head = 0; head < c.B * c.H; ++head) {
    const int64_t b = head / c.H;
    for (int64_t i = 0; i < c.Lq; ++i) {
      const int64_t row = head * c.Lq + i;
      const bool sees_nothing = b == 0 || i < 4;
      if (GetParam() == Form::kFlash) {
        EXPECT_EQ(r.lse[row] == -kInf, sees_nothing) << "row " << row;
        EXPECT_FALSE(std::isnan(r.lse[row])) << "row " << row;
      }
      for (int64_t e = 0; e < c.dh && sees_nothing; ++e) {
        EXPECT_EQ(r.out[row * c.dh + e], 0.0f) << "row " << row;
        EXPECT_EQ(r.dq[row * c.dh + e], 0.0f) << "row " << row;
      }
    }
    for (int64_t j = b == 0 ? 0 : c.key_lengths[b]; j < c.Lk; ++j) {
      for (int64_t e = 0; e < c.dh; ++e) {
        EXPECT_EQ(r.dk[(head * c.Lk + j) * c.dh + e], 0.0f) << "key " << j;
        EXPECT_EQ(r.dv[(head * c.Lk + j) * c.dh + e], 0.0f) << "key " << j;
      }
    }
  }
}

// The Vulkan gradients against central differences of the fp64 forward
// directly (not through the reference backward).
TEST_P(VulkanAttention, BackwardMatchesFiniteDifferences) {
  vk::Device device;
  const Case c{2, 1, 6, 5, 4, true, {5, 3}};
  const Tensors t = random_tensors(c, 600);
  const Results r = run_vulkan(device, GetParam(), c, t);
  const Inputs x = inputs_of(t.q, t.k, t.v, t.dout);
  EXPECT_TRUE(close("dq", r.dq, finite_differences(c, x, &Inputs::q), 1e-5));
  EXPECT_TRUE(close("dk", r.dk, finite_differences(c, x, &Inputs::k), 1e-5));
  EXPECT_TRUE(close("dv", r.dv, finite_differences(c, x, &Inputs::v), 1e-5));
}

// Long enough that on lavapipe (a 32,768-iteration loop budget) the flash
// forward, dq and dk/dv each take several dispatches (about 224 keys or 240
// rows per dispatch at dh = 64) carrying their partial results; the naive
// form's GEMMs split K likewise.
TEST_P(VulkanAttention, LongSequencesSplitToFitTheLoopBudget) {
  vk::Device device;
  const Case c{2, 1, 260, 500, 64, true, {500, 311}};
  const Tensors t = random_tensors(c, 700);
  const Results r = run_vulkan(device, GetParam(), c, t);
  expect_matches(GetParam(), r, reference(c, inputs_of(t.q, t.k, t.v, t.dout)), 2e-5);
  if (GetParam() == Form::kFlash && device.info().type == vk::DeviceType::kCpu) {
    // Single passes would be 1 forward + delta + dq + dk/dv = 4 dispatches.
    EXPECT_GE(r.dispatches, 4u + 2 + 1 + 1);
  }
}

TEST_P(VulkanAttention, SameBitsEveryRun) {
  vk::Device device;
  const Case c{1, 2, 37, 41, 8, true};
  const Tensors t = random_tensors(c, 800);
  const Results first = run_vulkan(device, GetParam(), c, t), second = run_vulkan(device, GetParam(), c, t);
  EXPECT_EQ(first.out, second.out);
  EXPECT_EQ(first.dq, second.dq);
  EXPECT_EQ(first.dk, second.dk);
  EXPECT_EQ(first.dv, second.dv);
}

INSTANTIATE_TEST_SUITE_P(Forms, VulkanAttention, testing::Values(Form::kFlash, Form::kNaive),
                         [](const testing::TestParamInfo<Form>& info) { return std::string(name_of(info.param)); });

using VulkanAttentionChecks = Vulkan;

// The reference backward (which the tests above trust) against central
// differences of the reference forward.
TEST_F(VulkanAttentionChecks, ReferenceBackwardMatchesFiniteDifferences) {
  const Case c{1, 2, 5, 7, 3, true, {6}};
  const Tensors t = random_tensors(c, 900);
  const Inputs x = inputs_of(t.q, t.k, t.v, t.dout);
  const Reference r = reference(c, x);
  for (auto [which, grad] : {std::pair{&Inputs::q, &r.dq}, {&Inputs::k, &r.dk}, {&Inputs::v, &r.dv}}) {
    const std::vector<double> fd = finite_differences(c, x, which);
    for (std::size_t i = 0; i < fd.size(); ++i) EXPECT_NEAR((*grad)[i], fd[i], 1e-8);
  }
}

TEST_F(VulkanAttentionChecks, FlashMatchesNaive) {
  vk::Device device;
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    const Tensors t = random_tensors(c, 1000);
    const Results flash = run_vulkan(device, Form::kFlash, c, t), naive = run_vulkan(device, Form::kNaive, c, t);
    EXPECT_TRUE(close("out", flash.out, widen(naive.out), 2e-5));
    EXPECT_TRUE(close("dq", flash.dq, widen(naive.dq), 2e-5));
    EXPECT_TRUE(close("dk", flash.dk, widen(naive.dk), 2e-5));
    EXPECT_TRUE(close("dv", flash.dv, widen(naive.dv), 2e-5));
  }
}

TEST_F(VulkanAttentionChecks, RejectsBadInputBeforeRecording) {
  vk::Device device;
  const int64_t B = 2, H = 1, Lq = 3, Lk = 4, dh = 8;
  vk::Buffer q(device, B * H * Lq * dh), k(device, B * H * Lk * dh), v(device, B * H * Lk * dh),
      out(device, B * H * Lq * dh), lse(device, B * H * Lq), probs(device, B * H * Lq * Lk), dout(device, B * H * Lq * dh),
      dq(device, B * H * Lq * dh), dk(device, B * H * Lk * dh), dv(device, B * H * Lk * dh), short_buffer(device, 5);
  const std::vector<int64_t> good_lengths = {4, 2}, too_long = {4, 5}, negative = {-1, 2}, too_few = {4};
  const vk::AttentionBuffers good{B, H, Lq, Lk, dh, &q, &k, &v, false, good_lengths};
  const vk::AttentionGradBuffers grads{&dq, &dk, &dv};
  vk::Stream stream(device);
  // `call` throws a seqk::Error whose message contains `expected`.
  auto expect_error = [](const std::function<void()>& call, const std::string& expected) {
    try {
      call();
      ADD_FAILURE() << "no seqk::Error (expected one mentioning \"" << expected << "\")";
    } catch (const seqk::Error& e) {
      EXPECT_THAT(e.what(), testing::HasSubstr(expected));
    }
  };
  // Every entry point rejects `in`, given these outputs, for `expected`.
  auto rejected_with = [&](const vk::AttentionBuffers& in, const std::string& expected, vk::Buffer& o,
                           vk::Buffer& dO, const vk::AttentionGradBuffers& g) {
    SCOPED_TRACE(expected);
    expect_error([&] { vk::attention_forward(stream, in, o, lse); }, expected);
    expect_error([&] { vk::attention_backward(stream, in, o, lse, dO, g); }, expected);
    expect_error([&] { vk::attention_naive_forward(stream, in, o, probs); }, expected);
    expect_error([&] { vk::attention_naive_backward(stream, in, probs, dO, g); }, expected);
  };
  auto rejected = [&](const vk::AttentionBuffers& in, const std::string& expected) {
    rejected_with(in, expected, out, dout, grads);
  };
  vk::AttentionBuffers in = good;
  in.k = nullptr;
  rejected(in, "k is null");
  in = good;
  in.v = &short_buffer;
  rejected(in, "v holds 5 floats, expected 64");
  for (int64_t* size : {&in.batch, &in.heads, &in.queries, &in.keys, &in.head_size}) {
    in = good;
    *size = 0;
    rejected(in, "B, H, Lq, Lk and dh must be > 0");
  }
  {
    // dh beyond the largest supported, with every buffer of the right size
    // for it, so that only the head-size check can fire.
    const int64_t big = vk::kAttentionMaxHeadSize + 1;
    vk::Buffer q_big(device, B * H * Lq * big), k_big(device, B * H * Lk * big), v_big(device, B * H * Lk * big),
        out_big(device, B * H * Lq * big), dout_big(device, B * H * Lq * big), dq_big(device, B * H * Lq * big),
        dk_big(device, B * H * Lk * big), dv_big(device, B * H * Lk * big);
    in = good;
    in.head_size = big;
    in.q = &q_big;
    in.k = &k_big;
    in.v = &v_big;
    rejected_with(in, "dh = 129 exceeds 128", out_big, dout_big, {&dq_big, &dk_big, &dv_big});
  }
  // More keys than floats index exactly, with or without key lengths (the
  // check fires on the sizes, before the buffers' sizes are looked at).
  in = good;
  in.keys = seqk::kAttentionMaxKeys + 1;
  in.key_lengths = {};
  rejected(in, "Lk = 16777217 exceeds 2^24");
  // More queries than the causal mask's signed 32-bit ends allow (and B = H
  // = dh = 1, within 32-bit indexing).
  in = {1, 1, int64_t{1} << 31, Lk, 1, &q, &k, &v, true};
  rejected(in, "Lq = 2147483648 exceeds 2^31 - 1");
  // B·H beyond int64 (2^64 wraps to 0): caught before the product is formed.
  in = good;
  in.batch = in.heads = int64_t{1} << 32;
  in.key_lengths = {};
  rejected(in, "exceed 32-bit indexing");
  for (const auto& [lengths, message] : {std::pair{&too_long, "key_lengths[1] = 5 is outside [0, Lk = 4]"},
                                         std::pair{&negative, "key_lengths[0] = -1 is outside"},
                                         std::pair{&too_few, "key_lengths has 1 entries"}}) {
    in = good;
    in.key_lengths = *lengths;
    rejected(in, message);  // key lengths outside [0, Lk], or not one per batch row
  }
  in = good;
  in.scale = std::numeric_limits<float>::quiet_NaN();
  rejected(in, "scale must be finite");
  in.scale = std::numeric_limits<float>::infinity();
  rejected(in, "scale must be finite");

  // Outputs that alias an input or each other; outputs of the wrong size.
  expect_error([&] { vk::attention_forward(stream, good, q, lse); }, "out and q are the same buffer");
  expect_error([&] { vk::attention_forward(stream, good, out, short_buffer); }, "lse holds 5 floats");
  expect_error([&] { vk::attention_naive_forward(stream, good, q, probs); }, "out and q are the same buffer");
  expect_error([&] { vk::attention_backward(stream, good, out, lse, dout, {&dq, &dk, &dk}); }, "are the same buffer");
  expect_error([&] { vk::attention_backward(stream, good, out, lse, dout, {&dq, &dk, nullptr}); }, "dv is null");
  expect_error([&] { vk::attention_backward(stream, good, out, lse, dout, {&out, &dk, &dv}); }, "are the same buffer");
  expect_error([&] { vk::attention_naive_backward(stream, good, probs, dout, {&dq, &v, &dv}); },
               "dk and v are the same buffer");
  expect_error([&] { vk::attention_naive_backward(stream, good, short_buffer, dout, grads); }, "probs holds 5 floats");

  // A buffer of another device (a second Device on the same GPU is another device).
  vk::Device other(device.info().index);
  vk::Buffer foreign(other, B * H * Lq * dh);
  in = good;
  in.q = &foreign;
  rejected(in, "q belongs to another device");
  EXPECT_EQ(stream.recorded(), 0u);

  // The good problem records.
  vk::attention_forward(stream, good, out, lse);
  EXPECT_GT(stream.recorded(), 0u);
  stream.submit();
}

}  // namespace
}  // namespace seqk_test
