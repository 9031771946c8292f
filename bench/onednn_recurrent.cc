#include "bench/onednn_recurrent.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "bench/bench_util.h"

namespace seqk_bench {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Args = std::unordered_map<int, memory>;
constexpr auto kF32 = memory::data_type::f32;

memory random_memory(const memory::desc& desc, const dnnl::engine& engine, float bound, uint32_t seed) {
  memory mem(desc, engine);
  const std::vector<float> values = uniform_random(desc.get_size() / sizeof(float), bound, seed);
  std::memcpy(mem.get_data_handle(), values.data(), desc.get_size());
  return mem;
}

memory zero_memory(const memory::desc& desc, const dnnl::engine& engine) {
  memory mem(desc, engine);
  std::memset(mem.get_data_handle(), 0, desc.get_size());
  return mem;
}

// `user` in the layout a primitive asked for (a copy only if it differs).
// Memory objects are shared handles: passing one by value copies no data.
memory in_layout(memory user, const memory::desc& wanted, const dnnl::engine& engine, dnnl::stream& stream) {
  if (user.get_desc() == wanted) return user;
  memory converted(wanted, engine);
  dnnl::reorder(user, converted).execute(stream, user, converted);
  stream.wait();
  return converted;
}

// What every cell's primitive descriptors are built from.
struct Descs {
  dnnl::prop_kind forward_kind;
  dnnl::rnn_direction direction;
  memory::desc src, dst, bias, weights_layer, weights_iter;  // weights: format any
  memory::desc none;  // zero initial states, final states not wanted: as in the seqk rows
};

// Times `Forward` (and `Backward`) with descriptors from make_forward(descs)
// and make_backward(descs). gates: weight gates per unit; bias_gates: bias
// vectors per unit (the lbr_gru has one more, for the hidden side of n).
template <typename Forward, typename Backward, typename MakeForward, typename MakeBackward>
std::vector<double> time_primitive(const RecurrentShape& shape, const Stacking& stacking, Pass pass,
                                   int64_t iterations, memory::dim gates, memory::dim bias_gates,
                                   MakeForward make_forward, MakeBackward make_backward) {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);

  const memory::dim T = shape.steps, B = shape.batch, D = shape.input, H = shape.hidden;
  const memory::dim L = stacking.layers, dirs = stacking.bidirectional ? 2 : 1;
  const float weight_bound = 1.0f / std::sqrt(static_cast<float>(H));  // PyTorch's initialisation
  const bool training = pass == Pass::kForwardBackward;
  const Descs descs{training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference,
                    stacking.bidirectional ? dnnl::rnn_direction::bidirectional_concat
                                           : dnnl::rnn_direction::unidirectional_left2right,
                    {{T, B, D}, kF32, Tag::tnc},
                    {{T, B, dirs * H}, kF32, Tag::tnc},
                    {{L, dirs, bias_gates, H}, kF32, Tag::ldgo},
                    {{L, dirs, D, gates, H}, kF32, Tag::any},
                    {{L, dirs, H, gates, H}, kF32, Tag::any},
                    {}};
  const typename Forward::primitive_desc forward_pd(make_forward(descs), engine);

  // Random values in a plain layout (the gate order is irrelevant to speed).
  const memory weights_layer = random_memory({{L, dirs, D, gates, H}, kF32, Tag::ldigo}, engine, weight_bound, 1);
  const memory weights_iter = random_memory({{L, dirs, H, gates, H}, kF32, Tag::ldigo}, engine, weight_bound, 2);
  const memory bias = random_memory(descs.bias, engine, weight_bound, 3);
  const memory src = random_memory(descs.src, engine, 1.0f, 4);
  const memory dst(descs.dst, engine);

  Args forward_args{{DNNL_ARG_SRC_LAYER, src},
                    {DNNL_ARG_WEIGHTS_LAYER, in_layout(weights_layer, forward_pd.weights_layer_desc(), engine, stream)},
                    {DNNL_ARG_WEIGHTS_ITER, in_layout(weights_iter, forward_pd.weights_iter_desc(), engine, stream)},
                    {DNNL_ARG_BIAS, bias},
                    {DNNL_ARG_DST_LAYER, dst}};
  const Forward forward(forward_pd);
  std::function<void()> run = [&] { forward.execute(stream, forward_args); };

  Args backward_args;
  Backward backward;
  if (training) {
    const typename Backward::primitive_desc backward_pd(make_backward(descs), engine, forward_pd);
    const memory workspace(forward_pd.workspace_desc(), engine);
    forward_args[DNNL_ARG_WORKSPACE] = workspace;
    // oneDNN accumulates into the weight gradients: zero them once; the
    // extra add per element is noise next to the GEMMs.
    backward_args = {
        {DNNL_ARG_SRC_LAYER, src},
        {DNNL_ARG_WEIGHTS_LAYER, in_layout(weights_layer, backward_pd.weights_layer_desc(), engine, stream)},
        {DNNL_ARG_WEIGHTS_ITER, in_layout(weights_iter, backward_pd.weights_iter_desc(), engine, stream)},
        {DNNL_ARG_BIAS, bias},
        {DNNL_ARG_DST_LAYER, dst},
        {DNNL_ARG_WORKSPACE, workspace},
        {DNNL_ARG_DIFF_DST_LAYER, random_memory(descs.dst, engine, 1.0f, 5)},
        {DNNL_ARG_DIFF_SRC_LAYER, memory(descs.src, engine)},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, zero_memory(backward_pd.diff_weights_layer_desc(), engine)},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, zero_memory(backward_pd.diff_weights_iter_desc(), engine)},
        {DNNL_ARG_DIFF_BIAS, zero_memory(backward_pd.diff_bias_desc(), engine)},
    };
    backward = Backward(backward_pd);
    run = [&] {
      forward.execute(stream, forward_args);
      backward.execute(stream, backward_args);
    };
  }

  run();  // warm-up: first touches, OpenMP thread start
  stream.wait();
  std::vector<double> seconds;
  seconds.reserve(static_cast<size_t>(iterations));
  for (int64_t i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    stream.wait();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

}  // namespace

std::vector<double> onednn_iteration_seconds(seqk::CellKind cell, const RecurrentShape& shape,
                                             const Stacking& stacking, Pass pass, int64_t iterations, int threads) {
  omp_set_num_threads(threads);
  const auto backward_kind = dnnl::prop_kind::backward;
  switch (cell) {
    case seqk::CellKind::kLstm:
      return time_primitive<dnnl::lstm_forward, dnnl::lstm_backward>(
          shape, stacking, pass, iterations, 4, 4,
          [](const Descs& d) {
            return dnnl::lstm_forward::desc(d.forward_kind, d.direction, d.src, d.none, d.none, d.weights_layer,
                                            d.weights_iter, d.bias, d.dst, d.none, d.none);
          },
          [&](const Descs& d) {
            return dnnl::lstm_backward::desc(backward_kind, d.direction, d.src, d.none, d.none, d.weights_layer,
                                             d.weights_iter, d.bias, d.dst, d.none, d.none, d.src, d.none, d.none,
                                             d.weights_layer, d.weights_iter, d.bias, d.dst, d.none, d.none);
          });
    case seqk::CellKind::kGru:
      return time_primitive<dnnl::lbr_gru_forward, dnnl::lbr_gru_backward>(
          shape, stacking, pass, iterations, 3, 4,
          [](const Descs& d) {
            return dnnl::lbr_gru_forward::desc(d.forward_kind, d.direction, d.src, d.none, d.weights_layer,
                                               d.weights_iter, d.bias, d.dst, d.none);
          },
          [&](const Descs& d) {
            return dnnl::lbr_gru_backward::desc(backward_kind, d.direction, d.src, d.none, d.weights_layer,
                                                d.weights_iter, d.bias, d.dst, d.none, d.src, d.none, d.weights_layer,
                                                d.weights_iter, d.bias, d.dst, d.none);
          });
    case seqk::CellKind::kRnnTanh:
    case seqk::CellKind::kRnnRelu: {
      const auto activation =
          cell == seqk::CellKind::kRnnTanh ? dnnl::algorithm::eltwise_tanh : dnnl::algorithm::eltwise_relu;
      return time_primitive<dnnl::vanilla_rnn_forward, dnnl::vanilla_rnn_backward>(
          shape, stacking, pass, iterations, 1, 1,
          [&](const Descs& d) {
            return dnnl::vanilla_rnn_forward::desc(d.forward_kind, activation, d.direction, d.src, d.none,
                                                   d.weights_layer, d.weights_iter, d.bias, d.dst, d.none);
          },
          [&](const Descs& d) {
            return dnnl::vanilla_rnn_backward::desc(backward_kind, activation, d.direction, d.src, d.none,
                                                    d.weights_layer, d.weights_iter, d.bias, d.dst, d.none, d.src,
                                                    d.none, d.weights_layer, d.weights_iter, d.bias, d.dst, d.none);
          });
    }
  }
  return {};
}

const char* onednn_version() {
  // From the header, not dnnl_version(): the parent process must not call into oneDNN.
  static const std::string version = std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) +
                                     "." + std::to_string(DNNL_VERSION_PATCH);
  return version.c_str();
}

}  // namespace seqk_bench
