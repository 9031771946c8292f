#include "bench/onednn_lstm.h"

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

}  // namespace

std::vector<double> onednn_lstm_iteration_seconds(const LstmShape& shape, LstmPass pass, int64_t iterations,
                                                  int threads) {
  omp_set_num_threads(threads);
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);

  const memory::dim T = shape.steps, B = shape.batch, D = shape.input, H = shape.hidden;
  const float weight_bound = 1.0f / std::sqrt(static_cast<float>(H));  // PyTorch's LSTM initialisation
  const memory::desc src_desc({T, B, D}, kF32, Tag::tnc);
  const memory::desc dst_desc({T, B, H}, kF32, Tag::tnc);
  const memory::desc bias_desc({1, 1, 4, H}, kF32, Tag::ldgo);
  const memory::desc weights_layer_any({1, 1, D, 4, H}, kF32, Tag::any);
  const memory::desc weights_iter_any({1, 1, H, 4, H}, kF32, Tag::any);
  const memory::desc none;  // zero initial states, final states not wanted: as in the seqk rows
  const auto direction = dnnl::rnn_direction::unidirectional_left2right;
  const bool training = pass == LstmPass::kForwardBackward;

  const dnnl::lstm_forward::primitive_desc forward_pd(
      dnnl::lstm_forward::desc(training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference,
                               direction, src_desc, none, none, weights_layer_any, weights_iter_any, bias_desc,
                               dst_desc, none, none),
      engine);

  // Random values in a plain layout (the gate order is irrelevant to speed).
  const memory weights_layer = random_memory({{1, 1, D, 4, H}, kF32, Tag::ldigo}, engine, weight_bound, 1);
  const memory weights_iter = random_memory({{1, 1, H, 4, H}, kF32, Tag::ldigo}, engine, weight_bound, 2);
  const memory bias = random_memory(bias_desc, engine, weight_bound, 3);
  const memory src = random_memory(src_desc, engine, 1.0f, 4);
  const memory dst(dst_desc, engine);

  Args forward_args{{DNNL_ARG_SRC_LAYER, src},
                    {DNNL_ARG_WEIGHTS_LAYER, in_layout(weights_layer, forward_pd.weights_layer_desc(), engine, stream)},
                    {DNNL_ARG_WEIGHTS_ITER, in_layout(weights_iter, forward_pd.weights_iter_desc(), engine, stream)},
                    {DNNL_ARG_BIAS, bias},
                    {DNNL_ARG_DST_LAYER, dst}};
  const dnnl::lstm_forward forward(forward_pd);
  std::function<void()> run = [&] { forward.execute(stream, forward_args); };

  Args backward_args;
  dnnl::lstm_backward backward;
  if (training) {
    const dnnl::lstm_backward::primitive_desc backward_pd(
        dnnl::lstm_backward::desc(dnnl::prop_kind::backward, direction, src_desc, none, none, weights_layer_any,
                                  weights_iter_any, bias_desc, dst_desc, none, none, src_desc, none, none,
                                  weights_layer_any, weights_iter_any, bias_desc, dst_desc, none, none),
        engine, forward_pd);
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
        {DNNL_ARG_DIFF_DST_LAYER, random_memory(dst_desc, engine, 1.0f, 5)},
        {DNNL_ARG_DIFF_SRC_LAYER, memory(src_desc, engine)},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, zero_memory(backward_pd.diff_weights_layer_desc(), engine)},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, zero_memory(backward_pd.diff_weights_iter_desc(), engine)},
        {DNNL_ARG_DIFF_BIAS, zero_memory(backward_pd.diff_bias_desc(), engine)},
    };
    backward = dnnl::lstm_backward(backward_pd);
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

const char* onednn_version() {
  // From the header, not dnnl_version(): the parent process must not call into oneDNN.
  static const std::string version = std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) +
                                     "." + std::to_string(DNNL_VERSION_PATCH);
  return version.c_str();
}

}  // namespace seqk_bench
