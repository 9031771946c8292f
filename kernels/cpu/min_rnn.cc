// MinRnnLayer: one GEMM for all gates over the whole sequence, the gates
// elementwise into the scan's coefficient and input, then the linear scan;
// backward is the reverse scan, the gates' derivatives, and GEMMs for the
// weight and input gradients.
#include "seqk/min_rnn.h"

#include <vector>

#include "kernels/cpu/min_rnn_gates.h"
#include "kernels/min_rnn_args.h"
#include "seqk/error.h"
#include "seqk/scan.h"

namespace seqk {

MinRnnLayer::MinRnnLayer(MinRnnKind kind, int64_t input_size, int64_t hidden_size)
    : kind_(kind), input_size_(input_size), hidden_size_(hidden_size) {
  require(input_size > 0, "min-RNN input_size must be positive, got ", input_size);
  require(hidden_size > 0, "min-RNN hidden_size must be positive, got ", hidden_size);
}

void MinRnnLayer::set_parameters(const MinRnnParams& params) {
  detail::check_min_rnn_params(params, {kind_, input_size_, hidden_size_});
  const int64_t rows = gates() * hidden_size_;
  w_ = PackedMatrix(params.w);
  w_t_ = PackedMatrix(params.w.transposed());
  bias_.assign(params.b.data(), params.b.data() + rows);
  has_parameters_ = true;
}

void MinRnnLayer::forward(ConstView x, ConstView h0, View y, MinRnnSaved* saved, ThreadPool* pool) const {
  require(has_parameters_, "min-RNN parameters are not set (call set_parameters first)");
  const auto [T, B] = detail::check_min_rnn_forward(x, h0, y, {kind_, input_size_, hidden_size_});
  const int64_t D = input_size_, H = hidden_size_, G = gates(), rows = T * B;

  MinRnnSaved local;
  MinRnnSaved& keep = saved ? *saved : local;
  keep.steps_ = T;
  keep.batch_ = B;
  keep.pre_.resize(static_cast<size_t>(rows * G * H));
  keep.coefficients_.resize(static_cast<size_t>(rows * H));
  gemm(ConstView(x.data(), {rows, D}), w_, View(keep.pre_.data(), {rows, G * H}), {.bias = bias_.data()}, pool);
  AlignedVector b(static_cast<size_t>(rows * H));
  pool = pool ? pool : &ThreadPool::global();
  detail::min_gates_forward({kind_ == MinRnnKind::kLstm, static_cast<size_t>(rows), static_cast<size_t>(H),
                             keep.pre_.data(), keep.coefficients_.data(), b.data(), nullptr, nullptr, nullptr, pool});
  linear_scan({ConstView(keep.coefficients_.data(), {T, B, H}), ConstView(b.data(), {T, B, H}), h0, y}, pool);
}

void MinRnnLayer::backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinRnnSaved& saved, View dx,
                           View dh0, const MinRnnGrads& grads, ThreadPool* pool) const {
  require(has_parameters_, "min-RNN parameters are not set (call set_parameters first)");
  const auto [T, B] =
      detail::check_min_rnn_backward(x, h0, y, dy, dx, dh0, grads, {kind_, input_size_, hidden_size_});
  const int64_t D = input_size_, H = hidden_size_, G = gates(), rows = T * B;
  require(saved.steps_ == T && saved.batch_ == B && !saved.pre_.empty(),
          "saved does not come from the training forward of this x (run forward with a MinRnnSaved first)");

  // The scan's gradients: da (of its coefficient), db (of its input), dh0.
  pool = pool ? pool : &ThreadPool::global();
  AlignedVector da(static_cast<size_t>(rows * H)), db(da.size());
  linear_scan_backward({ConstView(saved.coefficients_.data(), {T, B, H}), h0, y, dy, View(da.data(), {T, B, H}),
                        View(db.data(), {T, B, H}), dh0},
                       pool);
  // Through the gates to their pre-activations.
  AlignedVector dpre(static_cast<size_t>(rows * G * H));
  detail::min_gates_backward({kind_ == MinRnnKind::kLstm, static_cast<size_t>(rows), static_cast<size_t>(H),
                              saved.pre_.data(), nullptr, nullptr, da.data(), db.data(), dpre.data(), pool});
  // dW = dpreᵀ · x, db = dpre summed over the rows, dx = dpre · W.
  gemm(ConstView(dpre.data(), {rows, G * H}).transposed(), PackedMatrix(ConstView(x.data(), {rows, D}).transposed()),
       grads.w, {}, pool);
  std::vector<double> bias_sum(static_cast<size_t>(G * H), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < G * H; ++j) bias_sum[j] += dpre[r * G * H + j];
  for (int64_t j = 0; j < G * H; ++j) grads.b.data()[j] = static_cast<float>(bias_sum[j]);
  if (!dx.empty()) gemm(ConstView(dpre.data(), {rows, G * H}), w_t_, View(dx.data(), {rows, D}), {}, pool);
}

}  // namespace seqk
