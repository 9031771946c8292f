// Target-independent description of a slice of C = A·Bᵀ (+ bias) (+ C),
// shared by the GEMM entry point and the recurrent layers, which run the
// per-target GemmPanels on slices inside their own threaded loops.
#pragma once

#include <cstddef>

#include "seqk/gemm.h"

namespace seqk::detail {

// B as 16-column panels: row k of panel p (B's values (16p .. 16p+15, k)) is
// the 16 floats at data + p * panel_stride + k * k_stride. A PackedMatrix
// is one such source (k_stride 16); so is a row-major (K, N) matrix with N a
// multiple of 16, read in place with no copy (panel_stride 16, k_stride its
// row stride). Panels from `split` on come from a second source, so that
// [x | h] can be one operand while x and h lie apart.
struct PanelSource {
  const float* data;
  size_t panel_stride, k_stride;
};
struct BPanels {
  PanelSource first, second;
  size_t split;     // panels [0, split) from first, the rest from second
  size_t n, depth;  // B is (n, depth)

  size_t panels() const { return (n + kPanelWidth - 1) / kPanelWidth; }
  const PanelSource& source(size_t p) const { return p < split ? first : second; }
  const float* panel(size_t p) const {
    const PanelSource& s = source(p);
    return s.data + (p < split ? p : p - split) * s.panel_stride;
  }
};

// B (n, depth) from one source.
inline BPanels OneSource(PanelSource source, size_t n, size_t depth) {
  return {source, source, (n + kPanelWidth - 1) / kPanelWidth, n, depth};
}

// A packed matrix's panels from its column (depth) k0 on.
inline PanelSource SourceOf(const PackedMatrix& b, size_t k0 = 0) {
  return {b.panel(0) + k0 * kPanelWidth, kPanelWidth * static_cast<size_t>(b.cols()), kPanelWidth};
}

inline BPanels PanelsOf(const PackedMatrix& b) {
  return OneSource(SourceOf(b), static_cast<size_t>(b.rows()), static_cast<size_t>(b.cols()));
}

// Rows [0, m) and panels [panel_begin, panel_end) of B. A's element (r, k)
// is a[r * a_row_stride + k * a_k_stride]; C has row stride ldc; bias (if
// any) is indexed by column. B's panels from b.split on multiply a_second
// where it is set (same strides): the GRU's weight gradients [dW_ih | dW_hh]
// pair x with the input side's gate gradients and h with the hidden side's,
// as one product whose threads each read one of the two.
struct GemmPanelsArgs {
  const float* a;
  size_t a_row_stride, a_k_stride;
  size_t m;
  BPanels b;
  size_t panel_begin, panel_end;
  float* c;
  size_t ldc;
  const float* bias;
  bool accumulate;
  bool specialized;
  const float* a_second = nullptr;

  const float* a_of(size_t panel) const { return a_second && panel >= b.split ? a_second : a; }
};

// The whole of `args` over the pool's threads (dynamic dispatch to the best
// SIMD target), for callers whose B is not a PackedMatrix.
void gemm_panels(const GemmPanelsArgs& args, ThreadPool* pool);

// Whether B read in place from a row-major matrix (PanelSource with a large
// k_stride) is slower than packing it first on the SIMD target gemm_panels
// runs on. A tile one panel wide (AVX2 and narrower) reads 64 bytes per row
// of B; with rows a power of two apart, its B slice falls in a few L1 sets
// and is fetched again for every tile, where a packed one stays in L1. A
// 4-panel AVX-512 tile reads 256 bytes per row and lost little in place.
bool gemm_packs_row_major_b();

}  // namespace seqk::detail
