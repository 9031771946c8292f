// minGRU and minLSTM on Vulkan: forward and backward against the CPU layer
// and the fp64 reference of min_rnn_problem.h (test_min_rnn.cc checks that
// against finite differences), one backward against finite differences
// directly, the record API on one stream with the optional outputs left
// out, and bad input. Runs under the validation layers (vulkan_fixture.h).
//
// Sizes are small (lavapipe is slow) and awkward: T = 130 spans several of
// the scan's chunks with a partial last one, B·H = 70 channels two of its
// 64-wide workgroups, and no T·B·H a multiple of the gate shaders' 256.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <tuple>
#include <vector>

#include "min_rnn_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/min_rnn.h"
#include "seqk/vulkan.h"
#include "seqk/vulkan_min_rnn.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;
using seqk::ConstView;
using seqk::MinRnnKind;
using seqk::View;

class VulkanMinRnn : public Vulkan {
 protected:
  vk::Device& device() {
    static vk::Device device;  // one per process: opening a device under validation is slow
    return device;
  }
};

const char* name(MinRnnKind kind) { return kind == MinRnnKind::kGru ? "minGRU" : "minLSTM"; }

// A layer's outputs on the host, y and the gradients of L = Σ w_y ⊙ y.
struct Results {
  std::vector<float> y, dx, dh0, dw, db;
};

// Forward and backward through `layer`'s host-view API (the CPU and the
// Vulkan layer share it); dh0 is asked for even where h0 is zeros.
template <typename Saved, typename Layer>
Results run(Layer& layer, const MinRnnProblem& p) {
  const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G();
  Results r{std::vector<float>(T * B * H), std::vector<float>(T * B * D), std::vector<float>(B * H),
            std::vector<float>(G * H * D), std::vector<float>(G * H)};
  Saved saved;
  layer.forward(p.x_view(), p.h0_view(), View(r.y.data(), {T, B, H}), &saved);
  layer.backward(p.x_view(), p.h0_view(), ConstView(r.y.data(), {T, B, H}), p.dy_view(), saved,
                 View(r.dx.data(), {T, B, D}), View(r.dh0.data(), {B, H}),
                 {View(r.dw.data(), {G * H, D}), View(r.db.data(), {G * H})});
  return r;
}

// Against fp64: fp32 through GEMMs and the scan, as the CPU suite allows.
// Against the CPU layer: both fp32 with different sums (GEMM blocking, the
// scan's chunks, σ's rounding), so a tenth of that.
testing::AssertionResult close_to(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                                  double relative) {
  return close_uniform(what, got.data(), want.data(), relative * max_abs(want) + 1e-6, want.size());
}

void expect_close(const Results& got, const MinRnnReference& want, double relative) {
  EXPECT_TRUE(close_to("y", got.y, want.y, relative));
  EXPECT_TRUE(close_to("dx", got.dx, want.dx, relative));
  EXPECT_TRUE(close_to("dh0", got.dh0, want.dh0, relative));
  EXPECT_TRUE(close_to("dw", got.dw, want.dw, relative));
  EXPECT_TRUE(close_to("db", got.db, want.db, relative));
}

MinRnnReference as_reference(const Results& r) {
  return {to_double(r.y), to_double(r.dx), to_double(r.dh0), to_double(r.dw), to_double(r.db)};
}

TEST_F(VulkanMinRnn, MatchesCpuAndFp64Reference) {
  for (MinRnnKind kind : {MinRnnKind::kGru, MinRnnKind::kLstm}) {
    for (const auto& [T, B, D, H] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {7, 3, 5, 17},
                                     {130, 2, 3, 9}, {7, 1, 4, 70}}) {
      for (bool with_h0 : {true, false}) {
        SCOPED_TRACE(testing::Message() << name(kind) << " T=" << T << " B=" << B << " D=" << D << " H=" << H
                                        << (with_h0 ? " h0" : " no h0"));
        const MinRnnProblem p = make_min_rnn_problem(kind, T, B, D, H, with_h0);
        vk::MinRnnLayer gpu(device(), kind, D, H);
        seqk::MinRnnLayer cpu(kind, D, H);
        gpu.set_parameters(p.params());
        cpu.set_parameters(p.params());
        const Results got = run<vk::MinRnnSaved>(gpu, p);
        expect_close(got, reference_min_rnn(p), 1e-4);
        expect_close(got, as_reference(run<seqk::MinRnnSaved>(cpu, p)), 1e-5);
      }
    }
  }
}

// Inputs 30 times larger: gate pre-activations of tens (at most 30·√D + |b|
// ≈ 68), where σ saturates: above about 17, 1 − z rounds to 0 in fp32.
TEST_F(VulkanMinRnn, SaturatedGatesMatchCpuAndFp64Reference) {
  for (MinRnnKind kind : {MinRnnKind::kGru, MinRnnKind::kLstm}) {
    SCOPED_TRACE(name(kind));
    MinRnnProblem p = make_min_rnn_problem(kind, 7, 3, 5, 17);
    for (float& v : p.x) v *= 30.0f;
    vk::MinRnnLayer gpu(device(), kind, p.D, p.H);
    seqk::MinRnnLayer cpu(kind, p.D, p.H);
    gpu.set_parameters(p.params());
    cpu.set_parameters(p.params());
    const Results got = run<vk::MinRnnSaved>(gpu, p);
    expect_close(got, reference_min_rnn(p), 1e-4);
    expect_close(got, as_reference(run<seqk::MinRnnSaved>(cpu, p)), 1e-5);
  }
}

// minLSTM's gates both near 0 (pre-activations near −100, where σ is below
// fp32's smallest normal): f / (f + i) is still σ(k_f − k_i), finite.
TEST_F(VulkanMinRnn, MinLstmWithVanishingGatesMatchesFp64Reference) {
  MinRnnProblem p = make_min_rnn_problem(MinRnnKind::kLstm, 5, 2, 3, 20);
  for (int64_t j = 0; j < 2 * p.H; ++j) p.b[j] -= 100.0f;
  vk::MinRnnLayer layer(device(), MinRnnKind::kLstm, p.D, p.H);
  layer.set_parameters(p.params());
  expect_close(run<vk::MinRnnSaved>(layer, p), reference_min_rnn(p), 1e-4);
}

TEST_F(VulkanMinRnn, BackwardMatchesFiniteDifferences) {
  for (MinRnnKind kind : {MinRnnKind::kGru, MinRnnKind::kLstm}) {
    SCOPED_TRACE(name(kind));
    MinRnnProblem p = make_min_rnn_problem(kind, 5, 2, 3, 4);
    vk::MinRnnLayer layer(device(), kind, p.D, p.H);
    layer.set_parameters(p.params());
    const Results got = run<vk::MinRnnSaved>(layer, p);
    // FD steps of 1e-3 on a loss whose curvature (through σ) is O(1).
    EXPECT_TRUE(close_to("dx", got.dx, min_rnn_fd(p, p.x), 1e-4));
    EXPECT_TRUE(close_to("dh0", got.dh0, min_rnn_fd(p, p.h0), 1e-4));
    EXPECT_TRUE(close_to("dw", got.dw, min_rnn_fd(p, p.w), 1e-4));
    EXPECT_TRUE(close_to("db", got.db, min_rnn_fd(p, p.b), 1e-4));
  }
}

std::unique_ptr<vk::Buffer> upload(vk::Device& device, const std::vector<float>& values) {
  auto buffer = std::make_unique<vk::Buffer>(device, values.size());
  buffer->upload(values);
  return buffer;
}

// Inference forward, training forward and backward recorded on one stream
// and submitted once, dx and dh0 not asked for: the same dispatches as the
// host-view API runs, so the same numbers (1e-6 absolute).
TEST_F(VulkanMinRnn, RecordApiChainsOnOneStream) {
  for (MinRnnKind kind : {MinRnnKind::kGru, MinRnnKind::kLstm}) {
    SCOPED_TRACE(name(kind));
    const MinRnnProblem p = make_min_rnn_problem(kind, 9, 3, 4, 6);
    const int64_t T = p.T, B = p.B, H = p.H, G = p.G();
    vk::MinRnnLayer layer(device(), kind, p.D, p.H);
    layer.set_parameters(p.params());
    const Results want = run<vk::MinRnnSaved>(layer, p);

    auto x = upload(device(), p.x), h0 = upload(device(), p.h0), dy = upload(device(), p.w_y);
    vk::Buffer y_inference(device(), T * B * H), y(device(), T * B * H), dw(device(), G * H * p.D), db(device(), G * H);
    vk::Stream stream(device());
    vk::MinRnnSaved saved;
    layer.record_forward(stream, {T, B, x.get(), h0.get(), &y_inference});
    layer.record_forward(stream, {T, B, x.get(), h0.get(), &y}, saved);
    layer.record_backward(stream, {T, B, x.get(), h0.get(), &y, dy.get(), nullptr, nullptr}, saved, {&dw, &db});
    stream.submit();
    const MinRnnReference expected = as_reference(want);
    EXPECT_TRUE(close_to("inference y", y_inference.download(), expected.y, 0.0));
    EXPECT_TRUE(close_to("y", y.download(), expected.y, 0.0));
    EXPECT_TRUE(close_to("dw", dw.download(), expected.dw, 0.0));
    EXPECT_TRUE(close_to("db", db.download(), expected.db, 0.0));
  }
}

TEST_F(VulkanMinRnn, RejectsBadInputBeforeRecording) {
  const int64_t T = 3, B = 2, D = 3, H = 4, G = 3;
  vk::Device& dev = device();
  vk::MinRnnLayer layer(dev, MinRnnKind::kLstm, D, H);
  vk::Buffer x(dev, T * B * D), y(dev, T * B * H), h0(dev, B * H), dy(dev, T * B * H);
  vk::Buffer short_x(dev, T * B * D - 1), short_y(dev, T * B * H - 1);
  vk::Buffer dx(dev, T * B * D), dh0(dev, B * H), dw(dev, G * H * D), db(dev, G * H);
  vk::Stream stream(dev);
  EXPECT_THROW(layer.record_forward(stream, {T, B, &x, nullptr, &y}), seqk::Error);  // no parameters yet

  std::vector<float> w(G * H * D, 0.1f), b(G * H, 0.0f), nan_w(G * H * D, NAN);
  EXPECT_THROW(layer.set_parameters({ConstView(nan_w.data(), {G * H, D}), ConstView(b.data(), {G * H})}), seqk::Error);
  EXPECT_THROW(layer.set_parameters({ConstView(w.data(), {2 * H, D}), ConstView(b.data(), {2 * H})}),
               seqk::Error);  // minGRU's shape
  layer.set_parameters({ConstView(w.data(), {G * H, D}), ConstView(b.data(), {G * H})});

  EXPECT_THROW(layer.record_forward(stream, {T, B, &x, nullptr, &short_y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {T, B, nullptr, nullptr, &y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {T, B, &x, &dy, &y}), seqk::Error);  // h0 of (T, B, H)
  EXPECT_THROW(layer.record_forward(stream, {0, B, &x, nullptr, &y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {int64_t{1} << 31, B, &x, nullptr, &y}), seqk::Error);  // 32-bit indexing

  vk::MinRnnSaved saved;
  const vk::MinRnnBackwardBuffers good{T, B, &x, &h0, &y, &dy, &dx, &dh0};
  EXPECT_THROW(layer.record_backward(stream, good, saved, {&dw, &db}), seqk::Error);  // saved is empty
  EXPECT_EQ(stream.recorded(), 0u);
  {
    // A forward of another T: its saved does not fit these arguments.
    vk::Buffer x2(dev, 2 * B * D), y2(dev, 2 * B * H);
    vk::Stream other(dev);
    layer.record_forward(other, {2, B, &x2, nullptr, &y2}, saved);
    other.submit();
    EXPECT_THROW(layer.record_backward(stream, good, saved, {&dw, &db}), seqk::Error);
  }
  layer.record_forward(stream, {T, B, &x, &h0, &y}, saved);
  const std::size_t recorded = stream.recorded();
  auto backward_throws = [&](const vk::MinRnnBackwardBuffers& args, const vk::MinRnnGradBuffers& grads) {
    EXPECT_THROW(layer.record_backward(stream, args, saved, grads), seqk::Error);
  };
  backward_throws({T, B, &x, &h0, &y, &dy, &dx, &dh0}, {&dw, nullptr});
  backward_throws({T, B, &x, &h0, &y, &dy, &dx, &dh0}, {&db, &dw});  // swapped sizes
  backward_throws({T, B, &x, &h0, &y, &dy, &x, &dh0}, {&dw, &db});   // dx is x
  backward_throws({T, B, &x, &h0, &y, &dy, &dx, &h0}, {&dw, &db});   // dh0 is h0
  backward_throws({T, B, &x, &h0, &short_y, &dy, &dx, &dh0}, {&dw, &db});
  backward_throws({T, B, &short_x, &h0, &y, &dy, &dx, &dh0}, {&dw, &db});  // x is read last, by the GEMMs
  vk::MinRnnLayer gru(dev, MinRnnKind::kGru, D, H);
  std::vector<float> gru_w(2 * H * D, 0.1f), gru_b(2 * H, 0.0f);
  gru.set_parameters({ConstView(gru_w.data(), {2 * H, D}), ConstView(gru_b.data(), {2 * H})});
  vk::Buffer gru_dw(dev, 2 * H * D), gru_db(dev, 2 * H);
  EXPECT_THROW(gru.record_backward(stream, good, saved, {&gru_dw, &gru_db}), seqk::Error);  // saved by the minLSTM
  EXPECT_EQ(stream.recorded(), recorded);

  // Buffers and streams of another device (another Device on the same GPU).
  vk::Device other_device;
  vk::Buffer foreign_y(other_device, T * B * H);
  vk::Stream foreign_stream(other_device);
  EXPECT_THROW(layer.record_forward(stream, {T, B, &x, nullptr, &foreign_y}), seqk::Error);  // y: the scan's, last
  // (The first dispatch would throw too, but saying less.)
  EXPECT_THAT([&] { layer.record_forward(foreign_stream, {T, B, &x, nullptr, &y}); },
              testing::ThrowsMessage<seqk::Error>(testing::HasSubstr("the stream belongs to another device")));
  EXPECT_EQ(stream.recorded(), recorded);
  EXPECT_EQ(foreign_stream.recorded(), 0u);

  // The host-view API checks shapes as the CPU layer does, before uploading.
  std::vector<float> host_x(T * B * D), host_y(T * B * H, kSentinel);
  EXPECT_THROW(layer.forward(ConstView(host_x.data(), {T, B, D}), {}, View(host_y.data(), {T, H, B})), seqk::Error);
  EXPECT_TRUE(all_sentinel(host_y.data(), host_y.size()));
}

}  // namespace
}  // namespace seqk_test
