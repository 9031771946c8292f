// Seq2seq attention on Vulkan (additive, dot, general): the whole pipeline
// (key projection, forward, backward, projection backward) against the fp64
// references of seq2seq_problem.h at small awkward sizes, with padding, a
// length of 0, more source positions and features than a workgroup has
// invocations; step-by-step decoding with accumulated gradients; against
// the CPU kernel at a medium size; the same bits on a second run; bad input
// recording nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reference.h"
#include "seq2seq_problem.h"
#include "seqk/error.h"
#include "seqk/seq2seq_attention.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_seq2seq_attention.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;
using seqk::ConstView;
using seqk::View;

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  if (values.empty()) return nullptr;
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

// A buffer of n sentinels: outputs that must be written everywhere.
std::unique_ptr<vk::Buffer> sentinels(vk::Device& device, int64_t n) {
  return n > 0 ? upload(device, std::vector<float>(n, kSentinel)) : nullptr;
}

// The inputs on the device, and the keys projection recorded on `stream`.
struct DeviceProblem {
  std::unique_ptr<vk::Buffer> s, h, w_query, w_key, v, keys;
  vk::Seq2SeqAttentionBuffers in;

  DeviceProblem(vk::Device& device, vk::Stream& stream, const Problem& p, const Values<float>& x)
      : s(upload(device, x.s)),
        h(upload(device, x.h)),
        w_query(upload(device, x.w_query)),
        w_key(upload(device, x.w_key)),
        v(upload(device, x.v)),
        in{p.score, p.B, p.Tq, p.S, p.Ds, p.Dh, p.additive() ? p.A : 0, s.get(), h.get(), nullptr, p.lengths,
           w_query.get(), v.get()} {
    if (p.dot()) return;
    keys = std::make_unique<vk::Buffer>(device, p.B * p.S * p.K());
    vk::seq2seq_project_keys(stream, *h, *w_key, *keys, p.B, p.S, p.Dh, p.K());
    in.keys = keys.get();
  }
};

// Gradient buffers, sentinels (overwrite) or zeros (accumulate).
struct DeviceGrads {
  std::unique_ptr<vk::Buffer> ds, dh, dkeys, dw_query, dw_key, dv;

  DeviceGrads(vk::Device& device, const Problem& p, float fill) {
    auto make = [&](int64_t n) { return n > 0 ? upload(device, std::vector<float>(n, fill)) : nullptr; };
    ds = make(p.B * p.Tq * p.Ds);
    dh = make(p.B * p.S * p.Dh);
    dkeys = make(p.dot() ? 0 : p.B * p.S * p.K());
    dw_query = make(p.additive() ? p.A * p.Ds : 0);
    dw_key = make(p.dot() ? 0 : p.K() * p.Dh);
    dv = make(p.additive() ? p.A : 0);
  }
  vk::Seq2SeqAttentionGradBuffers grads(bool accumulate) const {
    return {ds.get(), dh.get(), dkeys.get(), dw_query.get(), dv.get(), accumulate};
  }
};

std::vector<float> download(const std::unique_ptr<vk::Buffer>& buffer) {
  return buffer ? buffer->download() : std::vector<float>{};
}

// Project, forward, backward, project back: one submit.
Results run(vk::Device& device, const Problem& p, const Values<float>& x) {
  vk::Stream stream(device);
  DeviceProblem g(device, stream, p, x);
  auto context = sentinels(device, p.B * p.Tq * p.Dh), alpha = sentinels(device, p.B * p.Tq * p.S);
  auto dcontext = upload(device, x.dcontext);
  DeviceGrads d(device, p, kSentinel);
  vk::seq2seq_attention_forward(stream, g.in, *context, *alpha);
  vk::seq2seq_attention_backward(stream, g.in, *alpha, *dcontext, d.grads(false));
  if (!p.dot()) vk::seq2seq_project_keys_backward(stream, *g.h, *g.w_key, *d.dkeys, *d.dh, *d.dw_key, p.B, p.S, p.Dh, p.K());
  stream.submit();
  return {context->download(), alpha->download(), download(d.ds),    download(d.dh),
          download(d.dw_query), download(d.dw_key), download(d.dv)};
}

// α exactly 0 past each length, the context of a length-0 row exactly 0.
void expect_exact_zeros(const Problem& p, const Results& r) {
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t t = 0; t < p.Tq; ++t) {
      const int64_t row = b * p.Tq + t;
      for (int64_t i = p.length(b); i < p.S; ++i) ASSERT_EQ(r.alpha[row * p.S + i], 0.0f) << b << " " << i;
      for (int64_t c = 0; p.length(b) == 0 && c < p.Dh; ++c) ASSERT_EQ(r.context[row * p.Dh + c], 0.0f) << b;
    }
}

class VulkanSeq2SeqAttention : public Vulkan {};

// Sizes not multiples of anything; S = 70 and Dh, K = 67..70 give some
// invocations two positions or features of a row (workgroups of 64).
TEST_F(VulkanSeq2SeqAttention, MatchesFp64) {
  vk::Device device;
  const Problem problems[] = {
      {Seq2SeqScore::kDot, 1, 1, 1, 1, 1, 1},
      {Seq2SeqScore::kDot, 3, 5, 7, 3, 17, 33, {7, 0, 4}},
      {Seq2SeqScore::kDot, 2, 2, 70, 9, 5, 11, {70, 66}},
      {Seq2SeqScore::kDot, 1, 2, 5, 3, 70, 67, {}},
  };
  uint64_t seed = 100;
  for (const Problem& base : problems)
    for (Seq2SeqScore kind : kScores) {
      const Problem p = with_score(base, kind);
      SCOPED_TRACE(describe(p));
      const Values<float> x = random_values(p, seed += 10);
      const Values<double> xd = to_double(x);
      const Results r = run(device, p, x);
      expect_close(r, reference_forward(p, xd), reference_backward(p, xd));
      expect_exact_zeros(p, r);
    }
}

// One decoder step per call (Tq = 1), the keys projected once, gradients
// accumulated over the steps, the projection's backward once at the end.
TEST_F(VulkanSeq2SeqAttention, StepByStepMatchesFp64) {
  vk::Device device;
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 3, 4, 9, 5, 6, 7, {9, 0, 5}}, kind);
    SCOPED_TRACE(describe(p));
    const Values<float> x = random_values(p, 400);
    const Values<double> xd = to_double(x);
    vk::Stream stream(device);
    DeviceProblem g(device, stream, p, x);
    DeviceGrads d(device, p, 0.0f);
    Problem step = p;
    step.Tq = 1;
    Results r{std::vector<float>(p.B * p.Tq * p.Dh), std::vector<float>(p.B * p.Tq * p.S),
              std::vector<float>(p.B * p.Tq * p.Ds)};
    for (int64_t t = 0; t < p.Tq; ++t) {
      // Step t's (B, 1, ·) slices, gathered.
      auto slice = [&](const std::vector<float>& from, int64_t width) {
        std::vector<float> out;
        for (int64_t b = 0; b < p.B; ++b)
          out.insert(out.end(), from.begin() + (b * p.Tq + t) * width, from.begin() + (b * p.Tq + t + 1) * width);
        return out;
      };
      auto s_t = upload(device, slice(x.s, p.Ds)), dcontext_t = upload(device, slice(x.dcontext, p.Dh));
      vk::Buffer context_t(device, p.B * p.Dh), alpha_t(device, p.B * p.S), ds_t(device, p.B * p.Ds);
      vk::Seq2SeqAttentionBuffers in = g.in;
      in.queries = 1;
      in.s = s_t.get();
      vk::Seq2SeqAttentionGradBuffers grads = d.grads(true);
      grads.ds = &ds_t;
      vk::seq2seq_attention_forward(stream, in, context_t, alpha_t);
      vk::seq2seq_attention_backward(stream, in, alpha_t, *dcontext_t, grads);
      stream.submit();
      const std::vector<float> context = context_t.download(), alpha = alpha_t.download(), ds = ds_t.download();
      for (int64_t b = 0; b < p.B; ++b) {
        std::copy_n(&context[b * p.Dh], p.Dh, &r.context[(b * p.Tq + t) * p.Dh]);
        std::copy_n(&alpha[b * p.S], p.S, &r.alpha[(b * p.Tq + t) * p.S]);
        std::copy_n(&ds[b * p.Ds], p.Ds, &r.ds[(b * p.Tq + t) * p.Ds]);
      }
    }
    if (!p.dot()) vk::seq2seq_project_keys_backward(stream, *g.h, *g.w_key, *d.dkeys, *d.dh, *d.dw_key, p.B, p.S, p.Dh, p.K());
    stream.submit();
    r.dh = download(d.dh);
    r.dw_query = download(d.dw_query);
    r.dw_key = download(d.dw_key);
    r.dv = download(d.dv);
    expect_close(r, reference_forward(p, xd), reference_backward(p, xd));
  }
}

// The CPU kernel on the same inputs (fp32 both, sums in different orders).
TEST_F(VulkanSeq2SeqAttention, MatchesCpu) {
  vk::Device device;
  for (Seq2SeqScore kind : kScores) {
    const Problem p = with_score({kind, 4, 6, 100, 48, 40, 64, {100, 37, 0, 99}}, kind);
    SCOPED_TRACE(describe(p));
    const Values<float> x = random_values(p, 500);
    const Results gpu = run(device, p, x);

    Results cpu{std::vector<float>(gpu.context.size()), std::vector<float>(gpu.alpha.size()),
                std::vector<float>(gpu.ds.size()),      std::vector<float>(gpu.dh.size()),
                std::vector<float>(gpu.dw_query.size()), std::vector<float>(gpu.dw_key.size()),
                std::vector<float>(gpu.dv.size())};
    std::vector<float> keys(p.dot() ? 0 : p.B * p.S * p.K()), dkeys(keys.size());
    seqk::Seq2SeqAttentionInputs in{p.score, ConstView(x.s.data(), {p.B, p.Tq, p.Ds}),
                                    ConstView(x.h.data(), {p.B, p.S, p.Dh}), {}, p.lengths};
    seqk::Seq2SeqAttentionGrads grads{View(cpu.ds.data(), {p.B, p.Tq, p.Ds}), View(cpu.dh.data(), {p.B, p.S, p.Dh})};
    const ConstView w_key(x.w_key.data(), {p.K(), p.Dh});
    if (!p.dot()) {
      seqk::seq2seq_project_keys(in.h, w_key, View(keys.data(), {p.B, p.S, p.K()}));
      in.keys = ConstView(keys.data(), {p.B, p.S, p.K()});
      grads.dkeys = View(dkeys.data(), {p.B, p.S, p.K()});
    }
    if (p.additive()) {
      in.w_query = ConstView(x.w_query.data(), {p.A, p.Ds});
      in.v = ConstView(x.v.data(), {p.A});
      grads.dw_query = View(cpu.dw_query.data(), {p.A, p.Ds});
      grads.dv = View(cpu.dv.data(), {p.A});
    }
    seqk::seq2seq_attention_forward(in, View(cpu.context.data(), {p.B, p.Tq, p.Dh}),
                                    View(cpu.alpha.data(), {p.B, p.Tq, p.S}));
    seqk::seq2seq_attention_backward(in, ConstView(cpu.alpha.data(), {p.B, p.Tq, p.S}),
                                     ConstView(x.dcontext.data(), {p.B, p.Tq, p.Dh}), grads);
    if (!p.dot()) {
      seqk::seq2seq_project_keys_backward(in.h, w_key, grads.dkeys, grads.dh, View(cpu.dw_key.data(), {p.K(), p.Dh}));
    }
    expect_close(gpu, {to_double(cpu.context), to_double(cpu.alpha)},
                 {to_double(cpu.ds), to_double(cpu.dh), to_double(cpu.dw_query), to_double(cpu.dw_key),
                  to_double(cpu.dv)});
  }
}

// No atomics: a second run gives the same bits.
TEST_F(VulkanSeq2SeqAttention, SameBitsEveryRun) {
  vk::Device device;
  const Problem p{Seq2SeqScore::kAdditive, 3, 5, 80, 12, 10, 9, {80, 3, 41}};
  const Values<float> x = random_values(p, 600);
  const Results first = run(device, p, x), second = run(device, p, x);
  EXPECT_EQ(first.context, second.context);
  EXPECT_EQ(first.alpha, second.alpha);
  EXPECT_EQ(first.ds, second.ds);
  EXPECT_EQ(first.dh, second.dh);
  EXPECT_EQ(first.dw_query, second.dw_query);
  EXPECT_EQ(first.dw_key, second.dw_key);
  EXPECT_EQ(first.dv, second.dv);
}

// Every rejection throws seqk::Error naming the problem before anything is
// recorded.
TEST_F(VulkanSeq2SeqAttention, RejectsBadInput) {
  vk::Device device;
  const Problem p{Seq2SeqScore::kAdditive, 2, 3, 4, 5, 6, 7, {4, 0}};
  const Values<float> x = random_values(p, 700);
  vk::Stream setup(device);
  DeviceProblem g(device, setup, p, x);
  setup.submit();
  vk::Buffer context(device, p.B * p.Tq * p.Dh), alpha(device, p.B * p.Tq * p.S), dcontext(device, p.B * p.Tq * p.Dh),
      short_buffer(device, 3);
  DeviceGrads d(device, p, 0.0f);
  vk::Stream stream(device);
  auto expect_error = [&](const std::function<void()>& fn, const std::string& message) {
    SCOPED_TRACE(message);
    try {
      fn();
      ADD_FAILURE() << "no seqk::Error";
    } catch (const seqk::Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_EQ(stream.recorded(), 0u);
  };
  // Both the forward and the backward reject `in`.
  auto rejected = [&](const vk::Seq2SeqAttentionBuffers& in, const std::string& message) {
    expect_error([&] { vk::seq2seq_attention_forward(stream, in, context, alpha); }, message);
    expect_error([&] { vk::seq2seq_attention_backward(stream, in, alpha, dcontext, d.grads(false)); }, message);
  };
  vk::Seq2SeqAttentionBuffers in = g.in;
  in.s = nullptr;
  rejected(in, "s is null");
  in = g.in;
  in.keys = &short_buffer;
  rejected(in, "keys holds 3 floats, expected 56");
  in = g.in;
  in.source = 0;
  rejected(in, "S = 0");
  in = g.in;
  in.attention_size = 0;
  rejected(in, "additive scoring needs A > 0");
  const std::vector<int64_t> too_long = {5, 0};
  in = g.in;
  in.lengths = too_long;
  rejected(in, "lengths[0] = 5 is outside [0, S = 4]");
  in = g.in;
  in.score = Seq2SeqScore::kGeneral;
  rejected(in, "w_query must be null for general scoring");
  in.w_query = in.v = nullptr;
  expect_error([&] { vk::seq2seq_attention_forward(stream, in, context, alpha); }, "keys holds 56 floats, expected 40");
  in = g.in;
  in.score = Seq2SeqScore::kDot;
  rejected(in, "dot scoring needs Ds == Dh");
  in = g.in;
  in.v = g.s.get();
  rejected(in, "v holds 30 floats, expected 7");

  // Outputs that alias inputs or each other, or have the wrong size.
  expect_error([&] { vk::seq2seq_attention_forward(stream, g.in, context, short_buffer); }, "alpha holds 3 floats");
  vk::Seq2SeqAttentionGradBuffers bad = d.grads(false);
  bad.dkeys = const_cast<vk::Buffer*>(g.in.keys);
  expect_error([&] { vk::seq2seq_attention_backward(stream, g.in, alpha, dcontext, bad); }, "are the same buffer");
  bad = d.grads(false);
  bad.ds = const_cast<vk::Buffer*>(g.in.s);
  expect_error([&] { vk::seq2seq_attention_backward(stream, g.in, alpha, dcontext, bad); }, "ds and s are the same buffer");
  bad = d.grads(false);
  bad.dv = nullptr;
  expect_error([&] { vk::seq2seq_attention_backward(stream, g.in, alpha, dcontext, bad); }, "dv is null");
  expect_error([&] { vk::seq2seq_attention_backward(stream, g.in, alpha, short_buffer, d.grads(false)); },
               "dcontext holds 3 floats");

  // Loops longer than lavapipe runs (a GPU has no such budget).
  if (device.info().type == vk::DeviceType::kCpu) {
    in = g.in;
    in.source = 40000;
    in.lengths = {};
    rejected(in, "loop iterations per invocation; the device allows 32768");
  }

  // A buffer of another device.
  vk::Device other(device.info().index);
  vk::Buffer foreign(other, p.B * p.Tq * p.Ds);
  in = g.in;
  in.s = &foreign;
  rejected(in, "s belongs to another device");

  // The key projection.
  expect_error([&] { vk::seq2seq_project_keys(stream, *g.h, *g.w_key, short_buffer, p.B, p.S, p.Dh, p.A); },
               "keys holds 3 floats");
  expect_error([&] { vk::seq2seq_project_keys(stream, *g.h, *g.w_key, *d.dkeys, p.B, p.S, p.Dh, 0); },
               "K = 0");
  expect_error([&] {
    vk::seq2seq_project_keys_backward(stream, *g.h, *g.w_key, *d.dkeys, *d.dh, *d.dh, p.B, p.S, p.Dh, p.A);
  }, "dw_key holds");
}

}  // namespace
}  // namespace seqk_test
