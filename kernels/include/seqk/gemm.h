// fp32 GEMM: C = A·Bᵀ (+ bias) (+ C), B packed once.
//
// A is any strided (M, K) view; B is given as an (N, K) view (so Bᵀ is the
// usual (K, N) right operand; pass b.transposed() of a (K, N) matrix to use it
// as is) and packed into 16-column panels, k-major inside a panel, which the
// register-blocked Highway micro-kernels stream through. Packing is
// independent of the SIMD target, so one PackedMatrix serves every target.
#pragma once

#include <cstdint>
#include <vector>

#include "seqk/aligned.h"
#include "seqk/tensor.h"
#include "seqk/thread_pool.h"

namespace seqk {

inline constexpr int64_t kPanelWidth = 16;
// K runs in blocks of this many (so a tile's A rows and B panels stay in L2);
// a K that is a multiple of it runs only on the depth-specialised kernels.
inline constexpr int64_t kGemmDepthBlock = 512;

class PackedMatrix {
 public:
  PackedMatrix() = default;

  // Packs b (N, K): panel p holds rows [16p, 16p+16) of b, stored as K groups
  // of 16 floats; rows past N are zero. Throws on a null, empty or
  // non-finite-sized view.
  explicit PackedMatrix(ConstView b);

  // Packs rows of b in the given order: packed row r is b row order[r], or
  // zeros where order[r] < 0. This is how layers interleave gates.
  PackedMatrix(ConstView b, const std::vector<int64_t>& order);

  // Makes this an (rows, cols) matrix to fill column by column with
  // set_column, for an operand built a row of Bᵀ at a time: it is packed as
  // it is written, with no copy to pack afterwards. The storage is kept when
  // large enough; values are unspecified until set (the zero padding past
  // `rows` excepted). Throws on a negative or zero size.
  void reset(int64_t rows, int64_t cols);

  // Rows [n0, n0 + count) of column k: `values`, or zeros where null.
  // Throws, writing nothing, where they are outside the matrix.
  void set_column(int64_t k, int64_t n0, const float* values, int64_t count);

  int64_t rows() const { return rows_; }  // N
  int64_t cols() const { return cols_; }  // K
  int64_t panels() const { return (rows_ + kPanelWidth - 1) / kPanelWidth; }
  const float* panel(int64_t p) const { return data_.data() + p * kPanelWidth * cols_; }
  bool empty() const { return rows_ == 0; }

 private:
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  AlignedVector data_;
};

struct GemmArgs {
  const float* bias = nullptr;  // (N): added to every row of C
  bool accumulate = false;      // C += A·Bᵀ instead of C = A·Bᵀ
  // Use the K-specialised micro-kernels where K matches one (claim H1);
  // false forces the generic path, for comparison.
  bool specialized = true;
};

// C (M, N) = A (M, K) · Bᵀ (+ bias) (+ C). C must be row-major with unit
// column stride (any row stride >= N); A may have any strides. Runs on
// `pool` (the global pool when null).
void gemm(ConstView a, const PackedMatrix& b, View c, const GemmArgs& args = {}, ThreadPool* pool = nullptr);

}  // namespace seqk
