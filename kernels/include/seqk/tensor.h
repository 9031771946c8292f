// A non-owning, strided view of a float tensor of rank 1 to 4. Kernels take
// views so callers keep their own storage (std::vector, mmap, a framework's
// buffer); strides are in elements, not bytes.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "seqk/error.h"

namespace seqk {

inline constexpr int kMaxRank = 4;

template <typename T>
class TensorView {
 public:
  TensorView() = default;

  // Contiguous row-major view: the last dimension has stride 1.
  TensorView(T* data, std::initializer_list<int64_t> shape) : data_(data), rank_(static_cast<int>(shape.size())) {
    require(rank_ >= 1 && rank_ <= kMaxRank, "tensor rank must be 1..", kMaxRank, ", got ", rank_);
    int i = 0;
    for (int64_t extent : shape) shape_[i++] = extent;
    int64_t stride = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      strides_[d] = stride;
      stride *= shape_[d];
    }
  }

  TensorView(T* data, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides)
      : TensorView(data, shape) {
    require(strides.size() == shape.size(), "tensor has ", shape.size(), " dims but ", strides.size(), " strides");
    int i = 0;
    for (int64_t stride : strides) strides_[i++] = stride;
  }

  // A view of const T from a view of T.
  template <typename U>
  TensorView(const TensorView<U>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), rank_(other.rank()), shape_(other.shape()), strides_(other.strides()) {}

  T* data() const { return data_; }
  int rank() const { return rank_; }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t stride(int i) const { return strides_[i]; }
  const std::array<int64_t, kMaxRank>& shape() const { return shape_; }
  const std::array<int64_t, kMaxRank>& strides() const { return strides_; }
  bool empty() const { return data_ == nullptr; }

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < rank_; ++d) n *= shape_[d];
    return n;
  }

  bool contiguous() const {
    int64_t expected = 1;
    for (int d = rank_ - 1; d >= 0; --d) {
      if (shape_[d] != 1 && strides_[d] != expected) return false;
      expected *= shape_[d];
    }
    return true;
  }

  // The 2-D view with rows and columns swapped (no data is moved).
  TensorView transposed() const {
    require(rank_ == 2, "transposed() needs a rank-2 view, got rank ", rank_);
    TensorView t = *this;
    std::swap(t.shape_[0], t.shape_[1]);
    std::swap(t.strides_[0], t.strides_[1]);
    return t;
  }

  std::string shape_string() const {
    std::string s = "(";
    for (int d = 0; d < rank_; ++d) s += (d ? ", " : "") + std::to_string(shape_[d]);
    return s + ")";
  }

 private:
  T* data_ = nullptr;
  int rank_ = 0;
  std::array<int64_t, kMaxRank> shape_{};
  std::array<int64_t, kMaxRank> strides_{};
};

using View = TensorView<float>;
using ConstView = TensorView<const float>;

// Throws seqk::Error unless `view` is non-null, contiguous and has exactly
// the expected shape. `name` is the argument's name in the message.
template <typename T>
void require_shape(const TensorView<T>& view, const char* name, std::initializer_list<int64_t> expected) {
  require(view.data() != nullptr, name, " is null");
  bool same = view.rank() == static_cast<int>(expected.size());
  int d = 0;
  std::string want = "(";
  for (int64_t extent : expected) {
    if (same && view.dim(d) != extent) same = false;
    want += (d ? ", " : "") + std::to_string(extent);
    ++d;
  }
  want += ")";
  require(same, name, " has shape ", view.shape_string(), ", expected ", want);
  require(view.contiguous(), name, " must be contiguous (row-major)");
}

}  // namespace seqk
