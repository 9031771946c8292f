// The Vulkan recurrent layers (LSTM, GRU, vanilla RNN): forward against the
// fp64 reference and backward against finite differences (the same problems
// and tolerances as the CPU suites, lstm_problem.h), the device-resident
// record API against the CPU layer, and bad input. Runs under the validation
// layers (vulkan_fixture.h).
//
// Sizes are small and awkward on purpose: lavapipe is slow, and hidden sizes
// that are not multiples of a workgroup's units or batch tile exercise the
// edges of the step kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "lstm_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/lstm.h"
#include "seqk/vulkan.h"
#include "seqk/recurrent_stack.h"
#include "seqk/vulkan_recurrent.h"
#include "seqk/vulkan_recurrent_stack.h"
#include "vulkan_fixture.h"

namespace seqk_test {
namespace {

namespace vk = seqk::vk;

class VulkanRecurrent : public Vulkan {
 protected:
  vk::Device& device() {
    static vk::Device device;  // one per process: opening a device under validation is slow
    return device;
  }
};

// D, H, B, T: units per workgroup and batch tiles do not divide H and B.
struct Sizes {
  int64_t D, H, B, T;
};
constexpr Sizes kForwardSizes[] = {{1, 1, 1, 1},  {3, 5, 2, 4},   {7, 17, 3, 5},  {20, 33, 9, 3},
                                   {5, 64, 1, 6}, {2, 130, 10, 2}, {4, 8, 2, 40}};

constexpr seqk::CellKind kCells[] = {seqk::CellKind::kLstm, seqk::CellKind::kGru, seqk::CellKind::kRnnTanh,
                                     seqk::CellKind::kRnnRelu};

TEST_F(VulkanRecurrent, ForwardMatchesFp64Reference) {
  for (seqk::CellKind cell : kCells) {
    for (const Sizes& s : kForwardSizes) {
      for (bool with_state : {false, true}) {
        const Problem p = make_problem(s.D, s.H, s.B, s.T, with_state, 3, cell);
        vk::RecurrentLayer layer(device(), cell, s.D, s.H);
        layer.set_parameters(p.params());
        EXPECT_TRUE(forward_matches_reference<vk::RecurrentSaved>(layer, p));
      }
    }
  }
}

// h_n and c_n are optional outputs: not asked for, not written.
TEST_F(VulkanRecurrent, OptionalOutputsAreLeftAlone) {
  const Problem p = make_problem(3, 17, 2, 3, true, 4);
  vk::LstmLayer layer(device(), 3, 17);
  layer.set_parameters(p.params());
  Outputs out(p);
  layer.forward(out.args(p, /*want_h_n=*/false, /*want_c_n=*/false));
  EXPECT_TRUE(all_sentinel(out.h_n.data(), out.h_n.size()));
  EXPECT_TRUE(all_sentinel(out.c_n.data(), out.c_n.size()));
  EXPECT_TRUE(close_forward("y", out.y, p.reference().y, p));
}

const GradCase kVulkanGradCases[] = {
    {3, 5, 2, 4, true}, {3, 17, 2, 4, true}, {1, 1, 1, 1, true}, {7, 33, 3, 3, true}, {3, 5, 2, 4, false},
    {4, 17, 1, 3, false}, {2, 9, 10, 2, true},
};

TEST_F(VulkanRecurrent, BackwardMatchesFiniteDifferences) {
  for (seqk::CellKind cell : kCells) {
    for (GradCase c : kVulkanGradCases) {
      c.cell = cell;
      SCOPED_TRACE(testing::Message() << seqk::to_string(cell) << " D=" << c.D << " H=" << c.H << " B=" << c.B
                                      << " T=" << c.T << (c.with_state ? " with states" : " no states"));
      const GradProblem g = make_grad_problem(c);
      const FdGradients& fd = fd_gradients(c);
      vk::RecurrentLayer layer(device(), cell, c.D, c.H);
      layer.set_parameters(g.p.params());
      const Analytic a = run_backward_on<vk::RecurrentSaved>(layer, g, c, /*want_dx=*/true, NAN, nullptr);
      EXPECT_TRUE(close_gradient("dx", a.dx, fd.x));
      expect_gradients_close(a, fd, c.with_state);
      if (!c.with_state) {
        for (float v : a.dh0) ASSERT_TRUE(std::isnan(v)) << "dh0 was written though not asked for";
      }
      if (!c.with_state || !seqk::has_cell_state(cell)) {
        for (float v : a.dc0) ASSERT_TRUE(std::isnan(v)) << "dc0 was written though not asked for";
      }
    }
  }
}

// Two stacked layers recorded on one stream, the first one's y feeding the
// second one's x on the device, one submit; forward and backward against the
// CPU layers (both fp32, so the tolerance is relative to each tensor's scale).
TEST_F(VulkanRecurrent, StackedLayersStayOnTheDevice) {
  const int64_t D = 6, H1 = 11, H2 = 7, B = 3, T = 5;
  const Problem p1 = make_problem(D, H1, B, T, true, 7);
  const Problem p2 = make_problem(H1, H2, B, T, false, 8);
  const std::vector<float> dy2 = random_floats(T * B * H2, 81);

  // CPU.
  seqk::LstmLayer cpu1(D, H1), cpu2(H1, H2);
  cpu1.set_parameters(p1.params());
  cpu2.set_parameters(p2.params());
  std::vector<float> y1(T * B * H1), y2(T * B * H2), dx(T * B * D), dy1(T * B * H1);
  std::vector<float> dw_ih1(4 * H1 * D), dw_hh1(4 * H1 * H1), db_ih1(4 * H1), db_hh1(4 * H1);
  std::vector<float> dw_ih2(4 * H2 * H1), dw_hh2(4 * H2 * H2), db_ih2(4 * H2), db_hh2(4 * H2);
  seqk::LstmSaved saved1, saved2;
  cpu1.forward({p1.x_view(), View(y1.data(), {T, B, H1}), p1.h0_view(), p1.c0_view(), {}, {}, {}, {}}, saved1);
  cpu2.forward({ConstView(y1.data(), {T, B, H1}), View(y2.data(), {T, B, H2}), {}, {}, {}, {}, {}, {}}, saved2);
  LstmBackwardArgs back2;
  back2.x = ConstView(y1.data(), {T, B, H1});
  back2.y = ConstView(y2.data(), {T, B, H2});
  back2.dy = ConstView(dy2.data(), {T, B, H2});
  back2.dx = View(dy1.data(), {T, B, H1});
  cpu2.backward(back2, saved2,
                {View(dw_ih2.data(), {4 * H2, H1}), View(dw_hh2.data(), {4 * H2, H2}), View(db_ih2.data(), {4 * H2}),
                 View(db_hh2.data(), {4 * H2})});
  LstmBackwardArgs back1;
  back1.x = p1.x_view();
  back1.y = ConstView(y1.data(), {T, B, H1});
  back1.h0 = p1.h0_view();
  back1.c0 = p1.c0_view();
  back1.dy = ConstView(dy1.data(), {T, B, H1});
  back1.dx = View(dx.data(), {T, B, D});
  cpu1.backward(back1, saved1,
                {View(dw_ih1.data(), {4 * H1, D}), View(dw_hh1.data(), {4 * H1, H1}), View(db_ih1.data(), {4 * H1}),
                 View(db_hh1.data(), {4 * H1})});

  // Vulkan: everything recorded on one stream, one submit.
  vk::Device& dev = device();
  vk::LstmLayer gpu1(dev, D, H1), gpu2(dev, H1, H2);
  gpu1.set_parameters(p1.params());
  gpu2.set_parameters(p2.params());
  auto buffer = [&](const std::vector<float>& values) {
    auto b = std::make_unique<vk::Buffer>(dev, values.size());
    b->upload(values);
    return b;
  };
  auto x = buffer(p1.x), h0 = buffer(p1.h0), c0 = buffer(p1.c0), d_y2 = buffer(dy2);
  vk::Buffer g_y1(dev, T * B * H1), g_y2(dev, T * B * H2), g_dy1(dev, T * B * H1), g_dx(dev, T * B * D);
  vk::Buffer g_dw_ih1(dev, 4 * H1 * D), g_dw_hh1(dev, 4 * H1 * H1), g_db_ih1(dev, 4 * H1), g_db_hh1(dev, 4 * H1);
  vk::Buffer g_dw_ih2(dev, 4 * H2 * H1), g_dw_hh2(dev, 4 * H2 * H2), g_db_ih2(dev, 4 * H2), g_db_hh2(dev, 4 * H2);
  vk::LstmSaved s1, s2;
  vk::Stream stream(dev);
  gpu1.record_forward(stream, {T, B, x.get(), &g_y1, h0.get(), c0.get(), nullptr, nullptr, {}}, s1);
  gpu2.record_forward(stream, {T, B, &g_y1, &g_y2, nullptr, nullptr, nullptr, nullptr, {}}, s2);
  gpu2.record_backward(stream, {T, B, &g_y1, &g_y2, nullptr, nullptr, d_y2.get(), nullptr, nullptr, &g_dy1, nullptr, nullptr, {}},
                       s2, {&g_dw_ih2, &g_dw_hh2, &g_db_ih2, &g_db_hh2});
  gpu1.record_backward(stream, {T, B, x.get(), &g_y1, h0.get(), c0.get(), &g_dy1, nullptr, nullptr, &g_dx, nullptr, nullptr, {}}, s1,
                       {&g_dw_ih1, &g_dw_hh1, &g_db_ih1, &g_db_hh1});
  stream.submit();

  // Tolerance: 1e-5 of the tensor's largest magnitude (see close_gradient).
  auto expect_close = [](const char* what, const vk::Buffer& got, const std::vector<float>& want) {
    EXPECT_TRUE(close_gradient(what, got.download(), to_double(want)));
  };
  expect_close("y2", g_y2, y2);
  expect_close("dx", g_dx, dx);
  expect_close("dw_ih1", g_dw_ih1, dw_ih1);
  expect_close("dw_hh1", g_dw_hh1, dw_hh1);
  expect_close("db_hh1", g_db_hh1, db_hh1);
  expect_close("dw_ih2", g_dw_ih2, dw_ih2);
  expect_close("dw_hh2", g_dw_hh2, dw_hh2);
  expect_close("db_ih2", g_db_ih2, db_ih2);
}

// H = 512 and B = 11: workgroups of several sequences (4 on lavapipe, 8 on
// GPUs with 48 KiB of shared memory), the last one partly empty, and the
// deep dot-product splits large layers get. Forward and backward against
// the CPU layer (sizes too large for finite differences).
TEST_F(VulkanRecurrent, LargeHiddenMatchesCpu) {
  for (seqk::CellKind cell : {seqk::CellKind::kLstm, seqk::CellKind::kGru, seqk::CellKind::kRnnTanh}) {
    SCOPED_TRACE(seqk::to_string(cell));
    const GradCase c{3, 512, 11, 2, true, cell};
    const GradProblem g = make_grad_problem(c);
    seqk::RecurrentLayer cpu(cell, c.D, c.H);
    cpu.set_parameters(g.p.params());
    vk::RecurrentLayer gpu(device(), cell, c.D, c.H);
    gpu.set_parameters(g.p.params());
    const Analytic want = run_backward_on<seqk::RecurrentSaved>(cpu, g, c, true, NAN, nullptr);
    const Analytic got = run_backward_on<vk::RecurrentSaved>(gpu, g, c, true, NAN, nullptr);
    const std::pair<const char*, const std::vector<float> Analytic::*> fields[] = {
        {"dx", &Analytic::dx},       {"dh0", &Analytic::dh0},     {"dw_ih", &Analytic::dw_ih},
        {"dw_hh", &Analytic::dw_hh}, {"db_ih", &Analytic::db_ih}, {"db_hh", &Analytic::db_hh}};
    for (const auto& [name, field] : fields) EXPECT_TRUE(close_gradient(name, got.*field, to_double(want.*field)));
    if (g.p.has_c()) {
      EXPECT_TRUE(close_gradient("dc0", got.dc0, to_double(want.dc0)));
    }

    Outputs cpu_out(g.p), gpu_out(g.p);
    cpu.forward(cpu_out.args(g.p));
    gpu.forward(gpu_out.args(g.p));
    EXPECT_TRUE(close_forward("y", gpu_out.y, to_double(cpu_out.y), g.p));
    if (g.p.has_c()) {
      EXPECT_TRUE(close_forward("c_n", gpu_out.c_n, to_double(cpu_out.c_n), g.p));
    }
  }
}

// A layer's outputs and gradients for rows of x (T·B padded, N packed),
// to compare the Vulkan layer with the CPU one.
struct LayerOutputs {
  LayerOutputs(int64_t rows, int64_t B, int64_t D, int64_t H, int64_t G)
      : y(rows * H), h_n(B * H), c_n(B * H), dx(rows * D), dh0(B * H), dc0(B * H), dw_ih(G * H * D),
        dw_hh(G * H * H), db_ih(G * H), db_hh(G * H) {}
  std::vector<float> y, h_n, c_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

void expect_matches(const LayerOutputs& got, const LayerOutputs& want, bool has_c) {
  const std::pair<const char*, std::vector<float> LayerOutputs::*> fields[] = {
      {"y", &LayerOutputs::y},         {"h_n", &LayerOutputs::h_n},     {"dx", &LayerOutputs::dx},
      {"dh0", &LayerOutputs::dh0},     {"dw_ih", &LayerOutputs::dw_ih}, {"dw_hh", &LayerOutputs::dw_hh},
      {"db_ih", &LayerOutputs::db_ih}, {"db_hh", &LayerOutputs::db_hh}};
  for (const auto& [name, field] : fields) EXPECT_TRUE(close_gradient(name, got.*field, to_double(want.*field)));
  if (has_c) {
    EXPECT_TRUE(close_gradient("c_n", got.c_n, to_double(want.c_n)));
    EXPECT_TRUE(close_gradient("dc0", got.dc0, to_double(want.dc0)));
  }
}

// Padded sequences with lengths (unsorted, with ties and a length of 1):
// forward and backward against the CPU layer, which test_variable_length.cc
// checks against running every sequence alone.
TEST_F(VulkanRecurrent, PaddedSequencesMatchCpu) {
  const std::vector<int64_t> lengths = {6, 2, 4, 1, 6};
  for (seqk::CellKind cell : kCells) {
    SCOPED_TRACE(seqk::to_string(cell));
    const Problem p = make_problem(3, 17, 5, 6, true, 23, cell);
    const int64_t T = p.T, B = p.B, D = p.D, H = p.H, G = p.G();
    const std::vector<float> dy = random_floats(T * B * H, 71), dh_n = random_floats(B * H, 72),
                             dc_n = random_floats(B * H, 73);
    auto run = [&](auto& layer, auto& saved) {
      LayerOutputs o(T * B, B, D, H, G);
      const bool c = p.has_c();
      layer.forward({p.x_view(), View(o.y.data(), {T, B, H}), p.h0_view(), p.c0_view(), View(o.h_n.data(), {B, H}),
                     c ? View(o.c_n.data(), {B, H}) : View(), lengths, {}},
                    saved);
      layer.backward({p.x_view(), ConstView(o.y.data(), {T, B, H}), p.h0_view(), p.c0_view(),
                      ConstView(dy.data(), {T, B, H}), ConstView(dh_n.data(), {B, H}),
                      c ? ConstView(dc_n.data(), {B, H}) : ConstView(), View(o.dx.data(), {T, B, D}),
                      View(o.dh0.data(), {B, H}), c ? View(o.dc0.data(), {B, H}) : View(), lengths, {}},
                     saved,
                     {View(o.dw_ih.data(), {G * H, D}), View(o.dw_hh.data(), {G * H, H}), View(o.db_ih.data(), {G * H}),
                      View(o.db_hh.data(), {G * H})});
      return o;
    };
    seqk::RecurrentLayer cpu(cell, D, H);
    cpu.set_parameters(p.params());
    vk::RecurrentLayer gpu(device(), cell, D, H);
    gpu.set_parameters(p.params());
    seqk::RecurrentSaved cpu_saved;
    vk::RecurrentSaved gpu_saved;
    const LayerOutputs want = run(cpu, cpu_saved), got = run(gpu, gpu_saved);
    expect_matches(got, want, p.has_c());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b)
        if (t >= lengths[b]) {
          for (int64_t j = 0; j < H; ++j) ASSERT_EQ(got.y[(t * B + b) * H + j], 0.0f) << "y past the end";
        }
  }
}

// Packed sequences (batch_sizes): forward and backward against the CPU
// layer on the same packed batch (test_variable_length.cc checks the CPU's
// packed results against running every sequence alone).
TEST_F(VulkanRecurrent, PackedSequencesMatchCpu) {
  const std::vector<int64_t> batch_sizes = {5, 4, 3, 3, 2, 2};  // lengths 6, 6, 4, 2, 1
  const int64_t N = 19, B = 5, D = 3, H = 17;
  for (seqk::CellKind cell : kCells) {
    SCOPED_TRACE(seqk::to_string(cell));
    const Problem p = make_problem(D, H, B, 1, true, 29, cell);  // parameters and states; x below
    const int64_t G = p.G();
    const std::vector<float> x = random_floats(N * D, 81), dy = random_floats(N * H, 82),
                             dh_n = random_floats(B * H, 83), dc_n = random_floats(B * H, 84);
    auto run = [&](auto& layer, auto& saved) {
      LayerOutputs o(N, B, D, H, G);
      const bool c = p.has_c();
      layer.forward({ConstView(x.data(), {N, D}), View(o.y.data(), {N, H}), p.h0_view(), p.c0_view(),
                     View(o.h_n.data(), {B, H}), c ? View(o.c_n.data(), {B, H}) : View(), {}, batch_sizes},
                    saved);
      layer.backward({ConstView(x.data(), {N, D}), ConstView(o.y.data(), {N, H}), p.h0_view(), p.c0_view(),
                      ConstView(dy.data(), {N, H}), ConstView(dh_n.data(), {B, H}),
                      c ? ConstView(dc_n.data(), {B, H}) : ConstView(), View(o.dx.data(), {N, D}),
                      View(o.dh0.data(), {B, H}), c ? View(o.dc0.data(), {B, H}) : View(), {}, batch_sizes},
                     saved,
                     {View(o.dw_ih.data(), {G * H, D}), View(o.dw_hh.data(), {G * H, H}), View(o.db_ih.data(), {G * H}),
                      View(o.db_hh.data(), {G * H})});
      return o;
    };
    seqk::RecurrentLayer cpu(cell, D, H);
    cpu.set_parameters(p.params());
    vk::RecurrentLayer gpu(device(), cell, D, H);
    gpu.set_parameters(p.params());
    seqk::RecurrentSaved cpu_saved;
    vk::RecurrentSaved gpu_saved;
    const LayerOutputs want = run(cpu, cpu_saved), got = run(gpu, gpu_saved);
    expect_matches(got, want, p.has_c());
  }
}

// Two bidirectional layers over padded sequences, and one bidirectional GRU
// layer over packed ones, recorded on one stream: forward and backward
// against the CPU stack (test_recurrent_stack.cc checks it against an fp64
// reference that runs each sequence alone).
TEST_F(VulkanRecurrent, BidirectionalStackMatchesCpu) {
  struct Case {
    seqk::CellKind cell;
    int64_t layers;
    bool packed;
  };
  for (const Case& c : {Case{seqk::CellKind::kLstm, 2, false}, Case{seqk::CellKind::kGru, 2, false},
                        Case{seqk::CellKind::kGru, 1, true}, Case{seqk::CellKind::kRnnTanh, 2, true}}) {
    SCOPED_TRACE(testing::Message() << seqk::to_string(c.cell) << " layers " << c.layers
                                    << (c.packed ? " packed" : " padded"));
    const int64_t D = 3, H = 5, B = 4, T = 5, S = 2 * c.layers, G = seqk::gates_per_unit(c.cell);
    const std::vector<int64_t> lengths = {5, 3, 5, 1};    // padded
    const std::vector<int64_t> batch_sizes = {4, 3, 3, 2, 2};  // packed: lengths 5, 5, 3, 1 (sorted)
    const int64_t rows = c.packed ? 14 : T * B;
    const bool has_c = seqk::has_cell_state(c.cell);
    seqk::RecurrentStack cpu(c.cell, D, H, c.layers, true);
    vk::RecurrentStack gpu(device(), c.cell, D, H, c.layers, true);
    std::vector<std::vector<float>> values;
    std::vector<seqk::RecurrentParams> params;
    for (int64_t i = 0; i < S; ++i) {
      const int64_t in = i < 2 ? D : 2 * H;
      const float k = 1.0f / std::sqrt(static_cast<float>(H));
      for (const auto& [size, seed] : {std::pair{G * H * in, 1}, {G * H * H, 2}, {G * H, 3}, {G * H, 4}})
        values.push_back(random_floats(size, 40 + 4 * i + seed, -k, k));
      params.push_back({ConstView(values[4 * i].data(), {G * H, in}), ConstView(values[4 * i + 1].data(), {G * H, H}),
                        ConstView(values[4 * i + 2].data(), {G * H}), ConstView(values[4 * i + 3].data(), {G * H})});
    }
    cpu.set_parameters(params);
    gpu.set_parameters(params);
    const std::vector<float> x = random_floats(rows * D, 91), h0 = random_floats(S * B * H, 92),
                             c0 = random_floats(S * B * H, 93), dy = random_floats(rows * 2 * H, 94),
                             dh_n = random_floats(S * B * H, 95), dc_n = random_floats(S * B * H, 96);
    const std::span<const int64_t> len = c.packed ? std::span<const int64_t>() : lengths;
    const std::span<const int64_t> sizes = c.packed ? std::span<const int64_t>(batch_sizes) : std::span<const int64_t>();

    auto seq = [&](const float* data, int64_t width) {
      return c.packed ? ConstView(data, {rows, width}) : ConstView(data, {T, B, width});
    };
    auto seq_out = [&](float* data, int64_t width) {
      return c.packed ? View(data, {rows, width}) : View(data, {T, B, width});
    };
    struct Out {
      std::vector<float> y, h_n, c_n, dx, dh0, dc0;
      std::vector<std::vector<float>> dw;  // per set: w_ih, w_hh, b_ih, b_hh
    };
    auto make_out = [&] {
      Out o{std::vector<float>(rows * 2 * H), std::vector<float>(S * B * H), std::vector<float>(S * B * H),
            std::vector<float>(rows * D),     std::vector<float>(S * B * H), std::vector<float>(S * B * H), {}};
      for (const auto& v : values) o.dw.emplace_back(v.size());
      return o;
    };

    // CPU.
    Out want = make_out();
    std::vector<seqk::RecurrentGrads> cpu_grads;
    for (int64_t i = 0; i < S; ++i) {
      const int64_t in = i < 2 ? D : 2 * H;
      cpu_grads.push_back({View(want.dw[4 * i].data(), {G * H, in}), View(want.dw[4 * i + 1].data(), {G * H, H}),
                           View(want.dw[4 * i + 2].data(), {G * H}), View(want.dw[4 * i + 3].data(), {G * H})});
    }
    auto states = [&](const std::vector<float>& v) { return ConstView(v.data(), {S, B, H}); };
    seqk::RecurrentStackSaved cpu_saved;
    cpu.forward({seq(x.data(), D), seq_out(want.y.data(), 2 * H), states(h0), has_c ? states(c0) : ConstView(),
                 View(want.h_n.data(), {S, B, H}), has_c ? View(want.c_n.data(), {S, B, H}) : View(), len, sizes},
                cpu_saved);
    cpu.backward({seq(x.data(), D), seq(want.y.data(), 2 * H), states(h0), has_c ? states(c0) : ConstView(),
                  seq(dy.data(), 2 * H), states(dh_n), has_c ? states(dc_n) : ConstView(), seq_out(want.dx.data(), D),
                  View(want.dh0.data(), {S, B, H}), has_c ? View(want.dc0.data(), {S, B, H}) : View(), len, sizes},
                 cpu_saved, cpu_grads);

    // Vulkan: everything on one stream.
    vk::Device& dev = device();
    auto upload = [&](const std::vector<float>& v) {
      auto buffer = std::make_unique<vk::Buffer>(dev, v.size());
      buffer->upload(v);
      return buffer;
    };
    auto g_x = upload(x), g_h0 = upload(h0), g_c0 = upload(c0), g_dy = upload(dy), g_dh_n = upload(dh_n),
         g_dc_n = upload(dc_n);
    vk::Buffer g_y(dev, rows * 2 * H), g_h_n(dev, S * B * H), g_c_n(dev, S * B * H), g_dx(dev, rows * D),
        g_dh0(dev, S * B * H), g_dc0(dev, S * B * H);
    std::vector<std::unique_ptr<vk::Buffer>> g_dw;
    std::vector<vk::RecurrentGradBuffers> gpu_grads;
    for (const auto& v : values) g_dw.push_back(std::make_unique<vk::Buffer>(dev, v.size()));
    for (int64_t i = 0; i < S; ++i)
      gpu_grads.push_back({g_dw[4 * i].get(), g_dw[4 * i + 1].get(), g_dw[4 * i + 2].get(), g_dw[4 * i + 3].get()});
    vk::RecurrentStackSaved gpu_saved;
    vk::Stream stream(dev);
    gpu.record_forward(stream,
                       {T, B, g_x.get(), &g_y, g_h0.get(), has_c ? g_c0.get() : nullptr, &g_h_n,
                        has_c ? &g_c_n : nullptr, len, sizes},
                       gpu_saved);
    gpu.record_backward(stream,
                        {T, B, g_x.get(), &g_y, g_h0.get(), has_c ? g_c0.get() : nullptr, g_dy.get(), g_dh_n.get(),
                         has_c ? g_dc_n.get() : nullptr, &g_dx, &g_dh0, has_c ? &g_dc0 : nullptr, len, sizes},
                        gpu_saved, gpu_grads);
    stream.submit();

    auto expect_close = [](const char* what, const vk::Buffer& got, const std::vector<float>& w) {
      EXPECT_TRUE(close_gradient(what, got.download(), to_double(w)));
    };
    expect_close("y", g_y, want.y);
    expect_close("h_n", g_h_n, want.h_n);
    expect_close("dx", g_dx, want.dx);
    expect_close("dh0", g_dh0, want.dh0);
    if (has_c) {
      expect_close("c_n", g_c_n, want.c_n);
      expect_close("dc0", g_dc0, want.dc0);
    }
    for (std::size_t i = 0; i < g_dw.size(); ++i) {
      SCOPED_TRACE(testing::Message() << "parameter set " << i / 4 << ", tensor " << i % 4);
      expect_close("grad", *g_dw[i], want.dw[i]);
    }
  }
}

// Bad input: a clear error naming the argument, and nothing written.
TEST_F(VulkanRecurrent, RejectsBadInput) {
  const Problem p = make_problem(3, 5, 2, 4, true, 9);
  vk::LstmLayer layer(device(), 3, 5);
  Outputs out(p);
  EXPECT_THROW(
      {
        try {
          layer.forward(out.args(p));
        } catch (const seqk::Error& e) {
          EXPECT_NE(std::string(e.what()).find("set_parameters"), std::string::npos) << e.what();
          throw;
        }
      },
      seqk::Error);
  std::vector<float> bad_w = p.w_hh;
  bad_w[3] = NAN;
  LstmParams params = p.params();
  params.w_hh = ConstView(bad_w.data(), {20, 5});
  EXPECT_THROW(layer.set_parameters(params), seqk::Error);
  layer.set_parameters(p.params());

  // Host API: wrong shapes.
  LstmForwardArgs args = out.args(p);
  args.h0 = ConstView(p.h0.data(), {2, 4});
  EXPECT_THROW(layer.forward(args), seqk::Error);
  EXPECT_TRUE(all_sentinel(out.y.data(), out.y.size()));

  // Record API: wrong buffer sizes, saved from another shape.
  vk::Device& dev = device();
  vk::Buffer x(dev, 4 * 2 * 3), y(dev, 4 * 2 * 5), short_y(dev, 4 * 2 * 5 - 1), h(dev, 2 * 5);
  vk::Stream stream(dev);
  EXPECT_THROW(layer.record_forward(stream, {4, 2, &x, &short_y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {4, 2, &x, &y, &short_y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {0, 2, &x, &y}), seqk::Error);
  EXPECT_THROW(layer.record_forward(stream, {4, 2, &x, &y, nullptr, nullptr, &y}), seqk::Error);
  EXPECT_EQ(stream.recorded(), 0u) << "a rejected call recorded work";
  vk::LstmSaved saved;
  vk::Buffer dx(dev, 4 * 2 * 3), g_ih(dev, 20 * 3), g_hh(dev, 20 * 5), g_b(dev, 20), g_b2(dev, 20);
  EXPECT_THROW(layer.record_backward(stream, {4, 2, &x, &y, nullptr, nullptr, &y}, saved, {&g_ih, &g_hh, &g_b, &g_b2}),
               seqk::Error);  // saved is empty
  layer.record_forward(stream, {4, 2, &x, &y}, saved);
  EXPECT_THROW(layer.record_backward(stream, {3, 2, &x, &y, nullptr, nullptr, &y}, saved, {&g_ih, &g_hh, &g_b, &g_b2}),
               seqk::Error);  // T differs from saved
  EXPECT_THROW(layer.record_backward(stream, {4, 2, &x, &y, nullptr, nullptr, &y}, saved, {&g_ih, &g_ih, &g_b, &g_b2}),
               seqk::Error);  // grads.w_hh has the wrong size
  // Outputs sharing a buffer with another argument: rejected before anything is recorded.
  const std::size_t recorded = stream.recorded();
  EXPECT_THROW(layer.record_backward(stream, {4, 2, &x, &y, nullptr, nullptr, &y, nullptr, nullptr, &x}, saved,
                                     {&g_ih, &g_hh, &g_b, &g_b2}),
               seqk::Error);  // dx is x
  EXPECT_THROW(layer.record_backward(stream, {4, 2, &x, &y, nullptr, nullptr, &y}, saved, {&g_ih, &g_hh, &g_b, &g_b}),
               seqk::Error);  // both bias gradients in one buffer
  vk::Buffer h0(dev, 2 * 5);
  EXPECT_THROW(layer.record_forward(stream, {4, 2, &x, &y, &h0, nullptr, nullptr, &h0}), seqk::Error);  // c_n is h0
  vk::RecurrentLayer gru(dev, seqk::CellKind::kGru, 3, 5);
  const Problem gru_problem = make_problem(3, 5, 2, 4, true, 9, seqk::CellKind::kGru);
  gru.set_parameters(gru_problem.params());
  EXPECT_THROW(gru.record_forward(stream, {4, 2, &x, &y, nullptr, &h0}), seqk::Error);  // c0: only the LSTM has c
  EXPECT_THROW(gru.record_backward(stream, {4, 2, &x, &y, nullptr, nullptr, &y}, saved, {&g_ih, &g_hh, &g_b, &g_b2}),
               seqk::Error);  // saved comes from an LSTM
  const std::vector<int64_t> too_long = {5, 2};
  EXPECT_THROW(layer.record_forward(stream, {4, 2, &x, &y, nullptr, nullptr, nullptr, nullptr, too_long}),
               seqk::Error);  // a length past T
  EXPECT_EQ(stream.recorded(), recorded) << "a rejected call recorded work";
  stream.submit();
}

// On a CPU device the GEMM splits K into accumulating passes to stay within
// lavapipe's loop limit; K = 20000 takes several passes at every tiling.
TEST_F(VulkanRecurrent, GemmWithLongDepthMatchesFp64) {
  const int64_t m = 3, n = 5, k = 20000;
  const std::vector<float> a = random_floats(m * k, 91), b = random_floats(n * k, 92);
  vk::Device& dev = device();
  vk::Buffer ga(dev, m * k), gb(dev, n * k), gc(dev, m * n);
  ga.upload(a);
  gb.upload(b);
  for (uint32_t tile : {8u, 16u, 64u}) {
    vk::Stream stream(dev);
    vk::gemm(stream, ga, gb, gc, m, n, k, nullptr, tile);
    if (dev.info().type == vk::DeviceType::kCpu) {
      EXPECT_GT(stream.recorded(), 1u) << "tile " << tile << ": K was not split";
    }
    stream.submit();
    const GemmReference ref = reference_gemm(ConstView(a.data(), {m, k}), ConstView(b.data(), {n, k}), nullptr, nullptr);
    std::vector<double> tol(ref.magnitude.size());
    for (std::size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-6 * ref.magnitude[i] * std::sqrt(double(k)) + 1e-6;
    const std::vector<float> c = gc.download();
    EXPECT_TRUE(close_elementwise("c", c.data(), ref.c.data(), tol.data(), c.size())) << "tile " << tile;
  }
}

}  // namespace
}  // namespace seqk_test
