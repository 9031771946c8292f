// Public GEMM entry point: argument checks, packing, splitting the work over
// the thread pool, and dynamic dispatch to the per-target tiles.
#include "seqk/gemm.h"

#include <algorithm>
#include <cstring>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {

// Splits the panels of B across threads when there are enough of them to go
// round (each thread then keeps its share of B hot); otherwise splits rows.
// Panels are dealt one by one, not in tile-wide groups, so an odd count
// (N = 1025 is 65 panels) still splits evenly.
void GemmParallel(const detail::GemmPanelsArgs& whole, ThreadPool* pool) {
  const size_t panels = whole.panel_end;
  const size_t threads = static_cast<size_t>(pool->num_threads());
  const bool split_panels = panels >= threads * kTilePanels || whole.m <= kTileRows;
  pool->run([&](int thread_index, int) {
    const size_t t = static_cast<size_t>(thread_index);
    detail::GemmPanelsArgs part = whole;
    if (split_panels) {
      part.panel_begin = panels * t / threads;
      part.panel_end = panels * (t + 1) / threads;
    } else {
      const size_t tiles = (whole.m + kTileRows - 1) / kTileRows;
      const size_t r0 = HWY_MIN(whole.m, (tiles * t / threads) * kTileRows);
      const size_t r1 = HWY_MIN(whole.m, (tiles * (t + 1) / threads) * kTileRows);
      part.a = whole.a + r0 * whole.a_row_stride;
      if (whole.a_second) part.a_second = whole.a_second + r0 * whole.a_row_stride;
      part.c = whole.c + r0 * whole.ldc;
      part.m = r1 - r0;
    }
    if (part.panel_begin < part.panel_end && part.m > 0) GemmPanels(part);
  });
}

// Measured on Zen 3 (AVX2), weight gradients with [x | h] read in place
// (rows 2 KiB apart) against packed, as the share of a training pass beside
// the forward recurrence: their GEMMs took 12-26% less time packed (LSTM and
// RNN at B=64, D=H=512; GRU at B=32, D=H=256).
bool PacksRowMajorB() { return kTilePanels == 1; }

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(GemmParallel);
HWY_EXPORT(PacksRowMajorB);

namespace {

void require_matrix(const ConstView& m, const char* name) {
  require(m.data() != nullptr, name, " is null");
  require(m.rank() == 2, name, " must be a matrix (rank 2), got shape ", m.shape_string());
  require(m.dim(0) > 0 && m.dim(1) > 0, name, " must not be empty, got shape ", m.shape_string());
}

}  // namespace

PackedMatrix::PackedMatrix(ConstView b) : PackedMatrix(b, [&] {
  require_matrix(b, "B");
  std::vector<int64_t> identity(static_cast<size_t>(b.dim(0)));
  for (size_t r = 0; r < identity.size(); ++r) identity[r] = static_cast<int64_t>(r);
  return identity;
}()) {}

PackedMatrix::PackedMatrix(ConstView b, const std::vector<int64_t>& order) {
  require_matrix(b, "B");
  require(!order.empty(), "row order for packing B is empty");
  for (int64_t source : order)
    require(source < b.dim(0), "row order refers to row ", source, " but B has ", b.dim(0), " rows");
  rows_ = static_cast<int64_t>(order.size());
  cols_ = b.dim(1);
  data_.assign(static_cast<size_t>(panels() * kPanelWidth * cols_), 0.0f);
  // In blocks of k, panel by panel: the 16 source elements of one (panel, k)
  // are either one cache line (a transposed view) or 16 rows advancing
  // together, and a block of k stays in cache while every panel takes its
  // part of it.
  constexpr int64_t kDepthBlock = 64;
  const int64_t rs = b.stride(0), cs = b.stride(1);
  for (int64_t k0 = 0; k0 < cols_; k0 += kDepthBlock) {
    const int64_t k1 = std::min(cols_, k0 + kDepthBlock);
    for (int64_t p = 0; p < panels(); ++p) {
      const int64_t first = p * kPanelWidth, width = std::min(kPanelWidth, rows_ - first);
      const int64_t* sources = order.data() + first;
      // A transposed view with 16 consecutive rows: each k is one 64-byte copy.
      bool consecutive = rs == 1 && width == kPanelWidth && sources[0] >= 0;
      for (int64_t j = 1; consecutive && j < kPanelWidth; ++j) consecutive = sources[j] == sources[0] + j;
      for (int64_t k = k0; k < k1; ++k) {
        float* dst = data_.data() + (p * cols_ + k) * kPanelWidth;
        if (consecutive) {
          std::memcpy(dst, b.data() + sources[0] + k * cs, kPanelWidth * sizeof(float));
          continue;
        }
        for (int64_t j = 0; j < width; ++j)
          if (sources[j] >= 0) dst[j] = b.data()[sources[j] * rs + k * cs];
      }
    }
  }
}

void PackedMatrix::reset(int64_t rows, int64_t cols) {
  require(rows > 0 && cols > 0, "a packed matrix must have a positive size, got (", rows, ", ", cols, ")");
  require((rows + kPanelWidth - 1) / kPanelWidth <= std::numeric_limits<int64_t>::max() / kPanelWidth / cols,
          "a packed matrix of (", rows, ", ", cols, ") does not fit in memory");
  rows_ = rows;
  cols_ = cols;
  data_.resize(static_cast<size_t>(panels() * kPanelWidth * cols_));
  // Lanes past the last row are read by the micro-kernels (and thrown away):
  // zero, as packing leaves them, so no stale value is ever read.
  if (rows_ % kPanelWidth != 0) {
    float* last = data_.data() + (panels() - 1) * kPanelWidth * cols_;
    for (int64_t k = 0; k < cols_; ++k)
      std::fill(last + k * kPanelWidth + rows_ % kPanelWidth, last + (k + 1) * kPanelWidth, 0.0f);
  }
}

void PackedMatrix::set_column(int64_t k, int64_t n0, const float* values, int64_t count) {
  require(k >= 0 && k < cols_ && n0 >= 0 && count >= 0 && count <= rows_ - n0, "set_column(", k, ", ", n0,
          ", ", count, ") is outside the packed (", rows_, ", ", cols_, ")");
  for (int64_t n = n0; n < n0 + count;) {
    const int64_t lane = n % kPanelWidth, run = std::min(kPanelWidth - lane, n0 + count - n);
    float* dst = data_.data() + ((n / kPanelWidth) * cols_ + k) * kPanelWidth + lane;
    // A whole panel row is the common case (a row of x or h packed for the
    // weight gradients): as a copy of constant size it is two vector moves,
    // not a call.
    if (values && run == kPanelWidth) std::memcpy(dst, values + (n - n0), kPanelWidth * sizeof(float));
    else if (values) std::memcpy(dst, values + (n - n0), run * sizeof(float));
    else std::fill(dst, dst + run, 0.0f);
    n += run;
  }
}

void gemm(ConstView a, const PackedMatrix& b, View c, const GemmArgs& args, ThreadPool* pool) {
  require_matrix(a, "A");
  require(!b.empty(), "B is not packed (empty PackedMatrix)");
  require(c.data() != nullptr, "C is null");
  require(c.rank() == 2 && c.dim(0) == a.dim(0) && c.dim(1) == b.rows(), "C has shape ", c.shape_string(),
          ", expected (", a.dim(0), ", ", b.rows(), ") for A ", a.shape_string(), " and B (", b.rows(), ", ",
          b.cols(), ")");
  require(a.dim(1) == b.cols(), "A has ", a.dim(1), " columns but B has ", b.cols(), " (K must match)");
  require(c.stride(1) == 1 && c.stride(0) >= c.dim(1), "C must be row-major with unit column stride");

  require(a.stride(0) >= 0 && a.stride(1) >= 0, "A must have non-negative strides");
  const detail::GemmPanelsArgs whole{a.data(), static_cast<size_t>(a.stride(0)), static_cast<size_t>(a.stride(1)),
                                     static_cast<size_t>(a.dim(0)), detail::PanelsOf(b), 0,
                                     static_cast<size_t>(b.panels()), c.data(), static_cast<size_t>(c.stride(0)),
                                     args.bias, args.accumulate, args.specialized};
  detail::gemm_panels(whole, pool ? pool : &ThreadPool::global());
}

void detail::gemm_panels(const GemmPanelsArgs& args, ThreadPool* pool) {
  HWY_DYNAMIC_DISPATCH(GemmParallel)(args, pool);
}

bool detail::gemm_packs_row_major_b() { return HWY_DYNAMIC_DISPATCH(PacksRowMajorB)(); }

}  // namespace seqk
#endif  // HWY_ONCE
