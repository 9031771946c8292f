// Target-independent description of a slice of C = A·Bᵀ (+ bias) (+ C),
// shared by the GEMM entry point and the recurrent layers, which run the
// per-target GemmPanels on slices inside their own threaded loops.
#pragma once

#include <cstddef>

#include "seqk/gemm.h"

namespace seqk::detail {

// Rows [0, m) and panels [panel_begin, panel_end) of B. A's element (r, k)
// is a[r * a_row_stride + k * a_k_stride]; C has row stride ldc; bias (if
// any) is indexed by column.
struct GemmPanelsArgs {
  const float* a;
  size_t a_row_stride, a_k_stride;
  size_t m;
  const PackedMatrix* b;
  size_t panel_begin, panel_end;
  float* c;
  size_t ldc;
  const float* bias;
  bool accumulate;
  bool specialized;
};

}  // namespace seqk::detail
