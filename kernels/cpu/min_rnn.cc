// MinRnnLayer: one GEMM for all gates over the whole sequence, the gates
// elementwise into the scan's coefficient and input, then the linear scan;
// backward is the reverse scan, the gates' derivatives, and GEMMs for the
// weight and input gradients.
#include "seqk/min_rnn.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "seqk/error.h"
#include "seqk/scan.h"

namespace seqk {
namespace {

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

}  // namespace

MinRnnLayer::MinRnnLayer(MinRnnKind kind, int64_t input_size, int64_t hidden_size)
    : kind_(kind), input_size_(input_size), hidden_size_(hidden_size) {
  require(input_size > 0, "min-RNN input_size must be positive, got ", input_size);
  require(hidden_size > 0, "min-RNN hidden_size must be positive, got ", hidden_size);
}

void MinRnnLayer::set_parameters(const MinRnnParams& params) {
  const int64_t rows = gates() * hidden_size_, D = input_size_;
  require_shape(params.w, "w", {rows, D});
  require_shape(params.b, "b", {rows});
  for (const auto& [view, name] : {std::pair{params.w, "w"}, {params.b, "b"}})
    for (int64_t i = 0; i < view.numel(); ++i)
      require(std::isfinite(view.data()[i]), name, " has a non-finite value at flat index ", i);
  w_ = PackedMatrix(params.w);
  w_t_ = PackedMatrix(params.w.transposed());
  bias_.assign(params.b.data(), params.b.data() + rows);
  has_parameters_ = true;
}

void MinRnnLayer::forward(ConstView x, ConstView h0, View y, MinRnnSaved* saved, ThreadPool* pool) const {
  require(has_parameters_, "min-RNN parameters are not set (call set_parameters first)");
  require(x.data() != nullptr && x.rank() == 3, "x must be (T, B, D), got ", x.shape_string());
  const int64_t T = x.dim(0), B = x.dim(1), D = input_size_, H = hidden_size_, G = gates(), rows = T * B;
  require(T > 0 && B > 0, "x has an empty dimension: ", x.shape_string());
  require_shape(x, "x", {T, B, D});
  require_shape(y, "y", {T, B, H});
  if (!h0.empty()) require_shape(h0, "h0", {B, H});

  MinRnnSaved local;
  MinRnnSaved& keep = saved ? *saved : local;
  keep.steps_ = T;
  keep.batch_ = B;
  keep.gates_.resize(static_cast<size_t>(rows * G * H));
  float* gate = keep.gates_.data();
  gemm(ConstView(x.data(), {rows, D}), w_, View(gate, {rows, G * H}), {.bias = bias_.data()}, pool);
  AlignedVector a(static_cast<size_t>(rows * H)), b(static_cast<size_t>(rows * H));
  for (int64_t r = 0; r < rows; ++r) {
    float* g = gate + r * G * H;
    for (int64_t j = 0; j < H; ++j) {
      const int64_t i = r * H + j;
      if (kind_ == MinRnnKind::kGru) {
        g[j] = sigmoid(g[j]);  // z; g[H + j] is h̃
        a[i] = 1.0f - g[j];
        b[i] = g[j] * g[H + j];
      } else {
        g[j] = sigmoid(g[j]);          // f
        g[H + j] = sigmoid(g[H + j]);  // i; g[2H + j] is h̃
        const float sum = g[j] + g[H + j];
        a[i] = g[j] / sum;
        b[i] = g[H + j] / sum * g[2 * H + j];
      }
    }
  }
  linear_scan({ConstView(a.data(), {T, B, H}), ConstView(b.data(), {T, B, H}), h0, y}, pool);
}

void MinRnnLayer::backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinRnnSaved& saved, View dx,
                           View dh0, const MinRnnGrads& grads, ThreadPool* pool) const {
  require(has_parameters_, "min-RNN parameters are not set (call set_parameters first)");
  require(x.data() != nullptr && x.rank() == 3, "x must be (T, B, D), got ", x.shape_string());
  const int64_t T = x.dim(0), B = x.dim(1), D = input_size_, H = hidden_size_, G = gates(), rows = T * B;
  require(saved.steps_ == T && saved.batch_ == B && !saved.gates_.empty(),
          "saved does not come from the training forward of this x (run forward with a MinRnnSaved first)");
  require_shape(x, "x", {T, B, D});
  require_shape(y, "y", {T, B, H});
  require_shape(dy, "dy", {T, B, H});
  if (!h0.empty()) require_shape(h0, "h0", {B, H});
  if (!dx.empty()) require_shape(dx, "dx", {T, B, D});
  if (!dh0.empty()) require_shape(dh0, "dh0", {B, H});
  require_shape(grads.w, "grads.w", {G * H, D});
  require_shape(grads.b, "grads.b", {G * H});

  // The scan's gradients: da (of its coefficient), db (of its input), dh0.
  const float* gate = saved.gates_.data();
  AlignedVector a(static_cast<size_t>(rows * H)), da(a.size()), db(a.size());
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate + r * G * H;
    for (int64_t j = 0; j < H; ++j)
      a[r * H + j] = kind_ == MinRnnKind::kGru ? 1.0f - g[j] : g[j] / (g[j] + g[H + j]);
  }
  linear_scan_backward({ConstView(a.data(), {T, B, H}), h0, y, dy, View(da.data(), {T, B, H}),
                        View(db.data(), {T, B, H}), dh0},
                       pool);
  // Through the gates to their pre-activations.
  AlignedVector dpre(static_cast<size_t>(rows * G * H));
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gate + r * G * H;
    float* dg = dpre.data() + r * G * H;
    for (int64_t j = 0; j < H; ++j) {
      const float d_coef = da[r * H + j], d_input = db[r * H + j];
      if (kind_ == MinRnnKind::kGru) {
        // a = 1 − z, b = z ⊙ h̃.
        const float z = g[j];
        dg[j] = (d_input * g[H + j] - d_coef) * z * (1.0f - z);
        dg[H + j] = d_input * z;
      } else {
        // a = f / s, b = (i / s) ⊙ h̃, s = f + i.
        const float f = g[j], i = g[H + j], candidate = g[2 * H + j], s = f + i;
        const float d_i_norm = d_input * candidate;  // of i / s
        const float df = (d_coef - d_i_norm) * i / (s * s), di = (d_i_norm - d_coef) * f / (s * s);
        dg[j] = df * f * (1.0f - f);
        dg[H + j] = di * i * (1.0f - i);
        dg[2 * H + j] = d_input * i / s;
      }
    }
  }
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
