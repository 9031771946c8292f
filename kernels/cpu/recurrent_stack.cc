// RecurrentStack: layers composed over one sequence layout. The reverse
// direction runs an ordinary layer over each sequence with its steps
// reversed within its own length, so its first step is the sequence's true
// end; reversing is a permutation of rows, its own inverse.
#include "seqk/recurrent_stack.h"

#include <algorithm>
#include <cstring>

#include "kernels/recurrent_args.h"

namespace seqk {

namespace {

// body(r) for every row, the rows shared among the pool's threads: the
// stack's copies between layers are memory-bound, and one thread draws only
// part of the bandwidth.
template <typename Body>
void for_rows(int64_t rows, ThreadPool* pool, Body&& body) {
  pool->run([&](int thread_index, int num_threads) {
    for (int64_t r = rows * thread_index / num_threads; r < rows * (thread_index + 1) / num_threads; ++r) body(r);
  });
}

// body(dir, pool) for each direction of a layer. Two run at once, each on
// half of the pool's threads: each direction's steps then wait for half as
// many threads, and on two threads for none. (Halves of a larger pool are
// pools of their own, started for the call.)
template <typename Body>
void for_directions(int64_t dirs, ThreadPool* pool, Body&& body) {
  const int threads = pool->num_threads();
  if (dirs == 1 || threads == 1) {
    for (int64_t dir = 0; dir < dirs; ++dir) body(dir, pool);
    return;
  }
  ThreadPool halves[2] = {ThreadPool(threads / 2), ThreadPool(threads - threads / 2)};
  pool->run([&](int thread_index, int) {
    if (thread_index < 2) body(thread_index, &halves[thread_index]);
  });
}

}  // namespace

struct RecurrentStack::Layout {
  detail::SequenceShape shape;
  bool packed;
  std::span<const int64_t> lengths, batch_sizes;
  std::vector<int64_t> reversed;  // row -> the row of the same sequence's mirrored step

  // A (rows, width) buffer viewed in the user's layout.
  ConstView view(const float* data, int64_t width) const {
    return packed ? ConstView(data, {shape.rows, width}) : ConstView(data, {shape.steps, shape.batch, width});
  }
  View view(float* data, int64_t width) const {
    return packed ? View(data, {shape.rows, width}) : View(data, {shape.steps, shape.batch, width});
  }
  // out[r] = in[reversed[r]], rows of `width`.
  void reverse(const float* in, float* out, int64_t width, ThreadPool* pool) const {
    for_rows(shape.rows, pool, [&](int64_t r) {
      std::memcpy(out + r * width, in + reversed[r] * width, width * sizeof(float));
    });
  }
};

namespace {

// Row b of (L·dirs, B, H) state `index`, or empty.
ConstView state_slice(const ConstView& states, int64_t index, int64_t batch, int64_t hidden) {
  return states.empty() ? ConstView() : ConstView(states.data() + index * batch * hidden, {batch, hidden});
}
View state_slice(const View& states, int64_t index, int64_t batch, int64_t hidden) {
  return states.empty() ? View() : View(states.data() + index * batch * hidden, {batch, hidden});
}

// Copies `width` columns of each of `rows` rows from one row stride to another.
void copy_columns(const float* from, int64_t from_stride, float* to, int64_t to_stride, int64_t rows, int64_t width,
                  ThreadPool* pool) {
  for_rows(rows, pool, [&](int64_t r) {
    std::memcpy(to + r * to_stride, from + r * from_stride, width * sizeof(float));
  });
}

}  // namespace

RecurrentStack::RecurrentStack(CellKind cell, int64_t input_size, int64_t hidden_size, int64_t num_layers,
                               bool bidirectional)
    : cell_(cell),
      input_size_(input_size),
      hidden_size_(hidden_size),
      num_layers_(num_layers),
      directions_(bidirectional ? 2 : 1) {
  require(num_layers >= 1, "num_layers must be >= 1, got ", num_layers);
  for (int64_t l = 0; l < num_layers; ++l)
    for (int64_t dir = 0; dir < directions_; ++dir) layers_.emplace_back(cell, layer_input_size(l), hidden_size);
}

int64_t RecurrentStack::layer_input_size(int64_t layer) const {
  return layer == 0 ? input_size_ : directions_ * hidden_size_;
}

int64_t RecurrentStack::parameter_count() const {
  int64_t count = 0;
  for (const RecurrentLayer& layer : layers_) count += layer.parameter_count();
  return count;
}

void RecurrentStack::set_parameters(std::span<const RecurrentParams> params) {
  require(static_cast<int64_t>(params.size()) == num_layers_ * directions_, "a stack of ", num_layers_,
          " layers and ", directions_, " direction(s) takes ", num_layers_ * directions_, " parameter sets, got ",
          params.size());
  for (std::size_t i = 0; i < params.size(); ++i) layers_[i].set_parameters(params[i]);
}

RecurrentStack::Layout RecurrentStack::layout(const ConstView& x, std::span<const int64_t> lengths,
                                              std::span<const int64_t> batch_sizes) const {
  Layout layout{detail::sequence_shape(x, lengths, batch_sizes, {cell_, input_size_, hidden_size_}),
                !batch_sizes.empty(), lengths, batch_sizes, {}};
  layout.reversed = detail::mirrored_rows(layout.shape, lengths, layout.packed);
  return layout;
}

void RecurrentStack::forward(const RecurrentForwardArgs& args, ThreadPool* pool) const {
  run_forward(args, nullptr, pool);
}

void RecurrentStack::forward(const RecurrentForwardArgs& args, RecurrentStackSaved& saved, ThreadPool* pool) const {
  run_forward(args, &saved, pool);
}

void RecurrentStack::run_forward(const RecurrentForwardArgs& args, RecurrentStackSaved* saved,
                                 ThreadPool* pool) const {
  const Layout lay = layout(args.x, args.lengths, args.batch_sizes);
  const int64_t rows = lay.shape.rows, batch = lay.shape.batch, H = hidden_size_, dirs = directions_;
  const int64_t states = num_layers_ * dirs, out_width = dirs * H;
  if (lay.packed) {
    require_shape(args.y, "y", {rows, out_width});
  } else {
    require_shape(args.y, "y", {lay.shape.steps, batch, out_width});
  }
  for (const auto& [view, name] : {std::pair{args.h0, "h0"}, {args.c0, "c0"}})
    if (!view.empty()) require_shape(view, name, {states, batch, H});
  for (const auto& [view, name] : {std::pair{args.h_n, "h_n"}, {args.c_n, "c_n"}})
    if (!view.empty()) require_shape(view, name, {states, batch, H});

  if (saved) {
    // Resized, not rebuilt: a training loop passes the same saved every
    // step, and its buffers (tens of MiB) then keep their pages instead of
    // being faulted in again, which costs as much as a layer's arithmetic.
    saved->layers.resize(static_cast<std::size_t>(states));
    saved->inputs.resize(static_cast<std::size_t>(states));
    saved->outputs.resize(static_cast<std::size_t>(states));
    saved->rows = rows;
  }
  pool = pool ? pool : &ThreadPool::global();
  // Each layer writes where its output is wanted, with no copy after: one
  // direction straight into the next layer's input (which a training forward
  // keeps as the layer's saved output) or y; two into their own outputs
  // (kept, when training), then interleaved into the next layer's input (kept
  // as that layer's saved input, when training) or y.
  const bool one_direction = dirs == 1;
  RecurrentStackSaved::ForwardBuffers own_buffers;
  std::unique_lock<std::mutex> lease;
  auto& [input, output, reversed_input, direction_output, reversed_output] =
      saved ? saved->forward_buffers : inference_buffers_.take(lease, own_buffers);
  // A buffer of `rows` rows of `width`, resized.
  auto sized = [&](AlignedVector& buffer, int64_t width) {
    buffer.resize(static_cast<std::size_t>(rows * width));
    return buffer.data();
  };
  const float* in = args.x.data();
  for (int64_t l = 0; l < num_layers_; ++l) {
    const int64_t width = layer_input_size(l);
    const bool last = l + 1 == num_layers_;
    // The next layer's input, or y.
    float* out = last ? args.y.data()
                 : saved ? sized(one_direction ? saved->outputs[l] : saved->inputs[(l + 1) * dirs], out_width)
                         : sized(output, out_width);
    for_directions(dirs, pool, [&](int64_t dir, ThreadPool* dir_pool) {
      const int64_t index = l * dirs + dir;
      const float* dir_in = in;
      if (dir == 1) {
        float* reversed = sized(saved ? saved->inputs[index] : reversed_input, width);
        lay.reverse(in, reversed, width, dir_pool);
        dir_in = reversed;
      }
      float* layer_out = one_direction ? out : sized(saved ? saved->outputs[index] : direction_output[dir], H);
      const RecurrentForwardArgs layer_args{lay.view(dir_in, width),
                                            lay.view(layer_out, H),
                                            state_slice(args.h0, index, batch, H),
                                            state_slice(args.c0, index, batch, H),
                                            state_slice(args.h_n, index, batch, H),
                                            state_slice(args.c_n, index, batch, H),
                                            args.lengths,
                                            args.batch_sizes};
      if (saved) {
        layers_[index].forward(layer_args, saved->layers[index], dir_pool);
        // The last layer of one direction wrote y, which backward is not given: keep a copy.
        if (one_direction && last) copy_columns(layer_out, H, sized(saved->outputs[index], H), H, rows, H, dir_pool);
      } else {
        layers_[index].forward(layer_args, dir_pool);
      }
      if (one_direction) return;
      const float* dir_out = layer_out;
      if (dir == 1) {
        float* reversed = sized(reversed_output, H);
        lay.reverse(layer_out, reversed, H, dir_pool);
        dir_out = reversed;
      }
      copy_columns(dir_out, H, out + dir * H, out_width, rows, H, dir_pool);
    });
    in = out;
    if (!saved) input.swap(output);  // `in` is now `input`'s data; the next layer writes `output`
  }
  if (saved) {
    // Inputs backward reads elsewhere (x, or with one direction the saved
    // output of the layer below) are not kept.
    for (int64_t index = 0; index < states; ++index) {
      const bool kept = index % dirs == 1 || (!one_direction && index >= dirs);
      if (!kept) saved->inputs[static_cast<std::size_t>(index)].clear();
    }
  }
}

void RecurrentStack::backward(const RecurrentBackwardArgs& args, const RecurrentStackSaved& saved,
                              std::span<const RecurrentGrads> grads, ThreadPool* pool) const {
  const Layout lay = layout(args.x, args.lengths, args.batch_sizes);
  const int64_t rows = lay.shape.rows, batch = lay.shape.batch, H = hidden_size_, dirs = directions_;
  const int64_t states = num_layers_ * dirs, out_width = dirs * H;
  require(saved.rows == rows && static_cast<int64_t>(saved.layers.size()) == states,
          "saved comes from another forward (run the training forward of this stack on this x first)");
  require(static_cast<int64_t>(grads.size()) == states, "backward of a stack of ", num_layers_, " layers and ", dirs,
          " direction(s) takes ", states, " gradient sets, got ", grads.size());
  if (lay.packed) {
    require_shape(args.dy, "dy", {rows, out_width});
  } else {
    require_shape(args.dy, "dy", {lay.shape.steps, batch, out_width});
  }
  for (const auto& [view, name] : {std::pair{args.dh_n, "dh_n"}, {args.dc_n, "dc_n"}, {args.h0, "h0"},
                                   {args.c0, "c0"}})
    if (!view.empty()) require_shape(view, name, {states, batch, H});
  for (const auto& [view, name] : {std::pair{args.dh0, "dh0"}, {args.dc0, "dc0"}})
    if (!view.empty()) require_shape(view, name, {states, batch, H});
  if (!args.dx.empty()) {
    if (lay.packed) {
      require_shape(args.dx, "dx", {rows, input_size_});
    } else {
      require_shape(args.dx, "dx", {lay.shape.steps, batch, input_size_});
    }
  }

  // From the top layer down: each direction's share of dL/d(output), in its
  // own time order, then its dL/d(input) added into the layer below's (the
  // forward direction's written there, the reverse one's added).
  pool = pool ? pool : &ThreadPool::global();
  auto& [d_output, d_input, dy_dir, reversed_dy, dx_dir, reversed_dx] = saved.backward_buffers;
  for (AlignedVector& buffer : dy_dir) buffer.resize(static_cast<std::size_t>(dirs == 2 ? rows * H : 0));
  // dL/d(output) of layer l: dy itself at the top, then what the layer
  // above wrote; the bottom layer writes dx straight into args.dx.
  const float* d_out = args.dy.data();
  for (int64_t l = num_layers_ - 1; l >= 0; --l) {
    const int64_t width = layer_input_size(l);
    const bool want_dx = l > 0 || !args.dx.empty();
    d_input.resize(want_dx && l > 0 ? static_cast<std::size_t>(rows * width) : 0);
    float* d_in = l > 0 ? d_input.data() : args.dx.data();
    dx_dir.resize(want_dx && dirs == 2 ? static_cast<std::size_t>(rows * width) : 0);
    for_directions(dirs, pool, [&](int64_t dir, ThreadPool* dir_pool) {
      const int64_t index = l * dirs + dir;
      const float* dy = d_out;
      if (dirs == 2) {
        copy_columns(d_out + dir * H, out_width, dy_dir[dir].data(), H, rows, H, dir_pool);
        dy = dy_dir[dir].data();
      }
      if (dir == 1) {
        reversed_dy.resize(static_cast<std::size_t>(rows * H));
        lay.reverse(dy_dir[dir].data(), reversed_dy.data(), H, dir_pool);
        dy = reversed_dy.data();
      }
      const float* in = !saved.inputs[index].empty() ? saved.inputs[index].data()
                        : l > 0                        ? saved.outputs[index - 1].data()
                                                       : args.x.data();
      const RecurrentBackwardArgs layer_args{lay.view(in, width),
                                             lay.view(saved.outputs[index].data(), H),
                                             state_slice(args.h0, index, batch, H),
                                             state_slice(args.c0, index, batch, H),
                                             lay.view(dy, H),
                                             state_slice(args.dh_n, index, batch, H),
                                             state_slice(args.dc_n, index, batch, H),
                                             want_dx ? lay.view(dir == 0 ? d_in : dx_dir.data(), width) : View(),
                                             state_slice(args.dh0, index, batch, H),
                                             state_slice(args.dc0, index, batch, H),
                                             args.lengths,
                                             args.batch_sizes};
      layers_[index].backward(layer_args, saved.layers[index], grads[index], dir_pool);
      if (want_dx && dir == 1) {
        reversed_dx.resize(static_cast<std::size_t>(rows * width));
        lay.reverse(dx_dir.data(), reversed_dx.data(), width, dir_pool);
      }
    });
    if (want_dx && dirs == 2) {
      for_rows(rows, pool, [&](int64_t r) {
        for (int64_t i = r * width; i < (r + 1) * width; ++i) d_in[i] += reversed_dx[i];
      });
    }
    d_output.swap(d_input);
    d_out = d_output.data();
  }
}

}  // namespace seqk
