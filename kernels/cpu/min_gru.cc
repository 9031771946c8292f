// MinGruLayer: one GEMM for both gates over the whole sequence, the gates
// elementwise, then the linear scan; backward is the reverse scan, the
// gates' derivatives, and GEMMs for the weight and input gradients.
#include "seqk/min_gru.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "seqk/error.h"
#include "seqk/scan.h"

namespace seqk {

MinGruLayer::MinGruLayer(int64_t input_size, int64_t hidden_size)
    : input_size_(input_size), hidden_size_(hidden_size) {
  require(input_size > 0, "minGRU input_size must be positive, got ", input_size);
  require(hidden_size > 0, "minGRU hidden_size must be positive, got ", hidden_size);
}

void MinGruLayer::set_parameters(const MinGruParams& params) {
  const int64_t H = hidden_size_, D = input_size_;
  require_shape(params.w_z, "w_z", {H, D});
  require_shape(params.w_h, "w_h", {H, D});
  require_shape(params.b_z, "b_z", {H});
  require_shape(params.b_h, "b_h", {H});
  for (const auto& [view, name] : {std::pair{params.w_z, "w_z"}, {params.w_h, "w_h"}, {params.b_z, "b_z"},
                                   {params.b_h, "b_h"}})
    for (int64_t i = 0; i < view.numel(); ++i)
      require(std::isfinite(view.data()[i]), name, " has a non-finite value at flat index ", i);
  AlignedVector w(static_cast<size_t>(2 * H * D));
  std::memcpy(w.data(), params.w_z.data(), H * D * sizeof(float));
  std::memcpy(w.data() + H * D, params.w_h.data(), H * D * sizeof(float));
  w_ = PackedMatrix(ConstView(w.data(), {2 * H, D}));
  w_t_ = PackedMatrix(ConstView(w.data(), {2 * H, D}).transposed());
  bias_.assign(static_cast<size_t>(2 * H), 0.0f);
  std::memcpy(bias_.data(), params.b_z.data(), H * sizeof(float));
  std::memcpy(bias_.data() + H, params.b_h.data(), H * sizeof(float));
  has_parameters_ = true;
}

void MinGruLayer::forward(ConstView x, ConstView h0, View y, MinGruSaved* saved, ThreadPool* pool) const {
  require(has_parameters_, "minGRU parameters are not set (call set_parameters first)");
  require(x.data() != nullptr && x.rank() == 3, "x must be (T, B, D), got ", x.shape_string());
  const int64_t T = x.dim(0), B = x.dim(1), D = input_size_, H = hidden_size_, rows = T * B;
  require(T > 0 && B > 0, "x has an empty dimension: ", x.shape_string());
  require_shape(x, "x", {T, B, D});
  require_shape(y, "y", {T, B, H});
  if (!h0.empty()) require_shape(h0, "h0", {B, H});

  AlignedVector pre(static_cast<size_t>(rows * 2 * H));
  gemm(ConstView(x.data(), {rows, D}), w_, View(pre.data(), {rows, 2 * H}), {.bias = bias_.data()}, pool);
  MinGruSaved local;
  MinGruSaved& keep = saved ? *saved : local;
  keep.steps_ = T;
  keep.batch_ = B;
  keep.z_.resize(static_cast<size_t>(rows * H));
  keep.candidate_.resize(static_cast<size_t>(rows * H));
  AlignedVector a(static_cast<size_t>(rows * H)), b(static_cast<size_t>(rows * H));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < H; ++j) {
      const float z = 1.0f / (1.0f + std::exp(-pre[r * 2 * H + j])), candidate = pre[r * 2 * H + H + j];
      keep.z_[r * H + j] = z;
      keep.candidate_[r * H + j] = candidate;
      a[r * H + j] = 1.0f - z;
      b[r * H + j] = z * candidate;
    }
  }
  linear_scan({ConstView(a.data(), {T, B, H}), ConstView(b.data(), {T, B, H}), h0, y}, pool);
}

void MinGruLayer::backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinGruSaved& saved, View dx,
                           View dh0, const MinGruGrads& grads, ThreadPool* pool) const {
  require(has_parameters_, "minGRU parameters are not set (call set_parameters first)");
  require(x.data() != nullptr && x.rank() == 3, "x must be (T, B, D), got ", x.shape_string());
  const int64_t T = x.dim(0), B = x.dim(1), D = input_size_, H = hidden_size_, rows = T * B;
  require(saved.steps_ == T && saved.batch_ == B && !saved.z_.empty(),
          "saved does not come from the training forward of this x (run forward with a MinGruSaved first)");
  require_shape(x, "x", {T, B, D});
  require_shape(y, "y", {T, B, H});
  require_shape(dy, "dy", {T, B, H});
  if (!h0.empty()) require_shape(h0, "h0", {B, H});
  if (!dx.empty()) require_shape(dx, "dx", {T, B, D});
  if (!dh0.empty()) require_shape(dh0, "dh0", {B, H});
  require_shape(grads.w_z, "grads.w_z", {H, D});
  require_shape(grads.w_h, "grads.w_h", {H, D});
  require_shape(grads.b_z, "grads.b_z", {H});
  require_shape(grads.b_h, "grads.b_h", {H});

  // The scan's gradients: da (of 1 - z), db (of z ⊙ h̃), dh0.
  AlignedVector a(static_cast<size_t>(rows * H)), da(a.size()), db(a.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = 1.0f - saved.z_[i];
  linear_scan_backward({ConstView(a.data(), {T, B, H}), h0, y, dy, View(da.data(), {T, B, H}),
                        View(db.data(), {T, B, H}), dh0},
                       pool);
  // The gates' pre-activations: dz = db ⊙ h̃ − da, through σ'; dh̃ = db ⊙ z.
  AlignedVector dpre(static_cast<size_t>(rows * 2 * H));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < H; ++j) {
      const float z = saved.z_[r * H + j], g = db[r * H + j];
      dpre[r * 2 * H + j] = (g * saved.candidate_[r * H + j] - da[r * H + j]) * z * (1.0f - z);
      dpre[r * 2 * H + H + j] = g * z;
    }
  }
  // [dW_z; dW_h] = dpreᵀ · x, and the biases' gradients: dpre summed over rows.
  AlignedVector dw(static_cast<size_t>(2 * H * D));
  gemm(ConstView(dpre.data(), {rows, 2 * H}).transposed(), PackedMatrix(ConstView(x.data(), {rows, D}).transposed()),
       View(dw.data(), {2 * H, D}), {}, pool);
  std::memcpy(grads.w_z.data(), dw.data(), H * D * sizeof(float));
  std::memcpy(grads.w_h.data(), dw.data() + H * D, H * D * sizeof(float));
  std::vector<double> bias_sum(static_cast<size_t>(2 * H), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < 2 * H; ++j) bias_sum[j] += dpre[r * 2 * H + j];
  for (int64_t j = 0; j < H; ++j) {
    grads.b_z.data()[j] = static_cast<float>(bias_sum[j]);
    grads.b_h.data()[j] = static_cast<float>(bias_sum[H + j]);
  }
  if (!dx.empty()) gemm(ConstView(dpre.data(), {rows, 2 * H}), w_t_, View(dx.data(), {rows, D}), {}, pool);
}

}  // namespace seqk
