// Register-blocked fp32 GEMM on packed B, for one SIMD target (included once
// per target through foreach_target.h by the .cc files that need it).
//
// A tile computes kRows rows of C by kPanels 16-column panels: kRows x
// (kPanels*16/lanes) accumulators stay in registers while k runs; each step
// loads one row of every B panel and broadcasts one A value per row.
// kDepth > 0 fixes the trip count at compile time (claim H1's specialised
// path); kDepth == 0 is the generic one.

#if defined(SEQK_CPU_GEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SEQK_CPU_GEMM_INL_H_
#undef SEQK_CPU_GEMM_INL_H_
#else
#define SEQK_CPU_GEMM_INL_H_
#endif

#include <cstddef>
#include <utility>

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/cpu/gemm_panels.h"
#include "seqk/gemm.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Vectors of at most one panel's width.
inline constexpr size_t kGemmLanes = HWY_MIN(size_t{16}, HWY_LANES(float));
using GemmTag = hn::FixedTag<float, kGemmLanes>;
inline constexpr size_t kVecsPerPanel = kPanelWidth / kGemmLanes;
// For software prefetches, one per cache line.
inline constexpr size_t kFloatsPerLine = 64 / sizeof(float);

// Tile shape per target: as many accumulators as the register file holds
// beside the B row and the broadcast A value.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
inline constexpr size_t kTileRows = 6, kTilePanels = 4;  // 24 of 32 zmm
#elif HWY_TARGET == HWY_AVX2
inline constexpr size_t kTileRows = 6, kTilePanels = 1;  // 12 of 16 ymm
#elif HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
inline constexpr size_t kTileRows = 1, kTilePanels = 1;
#elif HWY_ARCH_ARM
inline constexpr size_t kTileRows = 6, kTilePanels = 1;  // 24 of 32 q regs
#else
inline constexpr size_t kTileRows = 3, kTilePanels = 1;  // 12 of 16 xmm
#endif

// Depths with a compile-time specialised kernel; others take the generic one.
inline constexpr size_t kSpecializedDepths[] = {256, 512};
inline constexpr size_t kMaxDepthBlock = static_cast<size_t>(kGemmDepthBlock);

// A's element (r, k) is a[r * a_row_stride + k * a_k_stride]: row-major A
// steps k by 1, a transposed view steps r by 1 (then the kRows values of a
// k step share a cache line), so neither needs a copy. Row k of B's panel p
// is at b + p * panel_stride + k * b_k_stride (gemm_panels.h), loaded
// unaligned: as fast where it is aligned (packed), and a matrix read in
// place may start anywhere.
template <size_t kRows, size_t kPanels, size_t kDepth>
HWY_NOINLINE void GemmTile(const float* HWY_RESTRICT a, size_t a_row_stride, size_t a_k_stride,
                           const float* HWY_RESTRICT b, size_t panel_stride, size_t b_k_stride, size_t depth,
                           float* HWY_RESTRICT c, size_t ldc, size_t cols, const float* HWY_RESTRICT bias,
                           bool accumulate) {
  const GemmTag d;
  using V = hn::Vec<GemmTag>;
  constexpr size_t kVecs = kPanels * kVecsPerPanel;
  if constexpr (kDepth != 0) depth = kDepth;

  // The tile's C lines are usually far away (the recurrent layers' input
  // projection for this step, last touched long ago, or the fresh rows of a
  // large product, which a store must first read): start fetching them now
  // so they arrive while the k loop runs (about +2% at 8192 x 2048 x 512).
  for (size_t r = 0; r < kRows; ++r)
    for (size_t line = 0; line < kPanels * kPanelWidth; line += kFloatsPerLine)
      hwy::Prefetch(c + r * ldc + line);

  V acc[kRows][kVecs];
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVecs; ++v) acc[r][v] = hn::Zero(d);

  for (size_t k = 0; k < depth; ++k) {
    V bk[kVecs];
    for (size_t v = 0; v < kVecs; ++v) {
      const size_t panel = v / kVecsPerPanel, lane0 = (v % kVecsPerPanel) * kGemmLanes;
      bk[v] = hn::LoadU(d, b + panel * panel_stride + k * b_k_stride + lane0);
    }
    for (size_t r = 0; r < kRows; ++r) {
      const V ark = hn::Set(d, a[r * a_row_stride + k * a_k_stride]);
      for (size_t v = 0; v < kVecs; ++v) acc[r][v] = hn::MulAdd(ark, bk[v], acc[r][v]);
    }
  }

  if (cols == kPanels * kPanelWidth) {
    for (size_t r = 0; r < kRows; ++r) {
      for (size_t v = 0; v < kVecs; ++v) {
        V out = acc[r][v];
        float* dst = c + r * ldc + v * kGemmLanes;
        if (bias) out = hn::Add(out, hn::LoadU(d, bias + v * kGemmLanes));
        if (accumulate) out = hn::Add(out, hn::LoadU(d, dst));
        hn::StoreU(out, d, dst);
      }
    }
    return;
  }
  // Edge tile: the packed panels are zero-padded, C is not.
  HWY_ALIGN float tile[kRows][kPanels * kPanelWidth];
  for (size_t r = 0; r < kRows; ++r)
    for (size_t v = 0; v < kVecs; ++v) hn::Store(acc[r][v], d, &tile[r][v * kGemmLanes]);
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < cols; ++j) {
      float out = tile[r][j];
      if (bias) out += bias[j];
      if (accumulate) out += c[r * ldc + j];
      c[r * ldc + j] = out;
    }
  }
}

using GemmTileFn = void (*)(const float*, size_t, size_t, const float*, size_t, size_t, size_t, float*, size_t,
                            size_t, const float*, bool);

// tiles[rows - 1][panels - 1] for one depth.
template <size_t kDepth>
struct GemmTileTable {
  GemmTileFn tiles[kTileRows][kTilePanels];
  GemmTileTable() { Fill(std::make_index_sequence<kTileRows * kTilePanels>()); }
  template <size_t... kIndex>
  void Fill(std::index_sequence<kIndex...>) {
    ((tiles[kIndex / kTilePanels][kIndex % kTilePanels] =
          &GemmTile<kIndex / kTilePanels + 1, kIndex % kTilePanels + 1, kDepth>),
     ...);
  }
};

inline const GemmTileFn (&GemmTilesForDepth(size_t depth, bool specialized))[kTileRows][kTilePanels] {
  static const GemmTileTable<0> generic;
  static const GemmTileTable<kSpecializedDepths[0]> depth0;
  static const GemmTileTable<kSpecializedDepths[1]> depth1;
  if (specialized && depth == kSpecializedDepths[0]) return depth0.tiles;
  if (specialized && depth == kSpecializedDepths[1]) return depth1.tiles;
  return generic.tiles;
}

// Rows of A per block: the block's A rows (kMaxDepthBlock deep) stay in L2
// while every panel group passes over them.
inline constexpr size_t kRowBlock = 16 * kTileRows;

inline void GemmPanels(const detail::GemmPanelsArgs& args) {
  const detail::BPanels& b = args.b;
  const size_t depth = b.depth, n = b.n;
  for (size_t k0 = 0; k0 < depth; k0 += kMaxDepthBlock) {
    const size_t kc = HWY_MIN(kMaxDepthBlock, depth - k0);
    const auto& tiles = GemmTilesForDepth(kc, args.specialized);
    const bool first = k0 == 0;
    const bool accumulate = args.accumulate || !first;
    for (size_t m0 = 0; m0 < args.m; m0 += kRowBlock) {
      const size_t m1 = HWY_MIN(args.m, m0 + kRowBlock);
      for (size_t p = args.panel_begin, panels; p < args.panel_end; p += panels) {
        // A tile's panels come from one source.
        const size_t source_end = p < b.split ? HWY_MIN(b.split, args.panel_end) : args.panel_end;
        panels = HWY_MIN(kTilePanels, source_end - p);
        const detail::PanelSource& source = b.source(p);
        const size_t col0 = p * kPanelWidth;
        const size_t cols = HWY_MIN(panels * kPanelWidth, n - col0);
        const float* b_tile = b.panel(p) + k0 * source.k_stride;
        const float* bias = first && args.bias ? args.bias + col0 : nullptr;
        // Rows in tiles as even as the tile height allows (32 rows as 5, 5,
        // 6, 5, 5, 6, not 5 x 6 + 2: a tile of 2 rows reads as much of B as
        // a full one, for a third of the work).
        const size_t row_tiles = (m1 - m0 + kTileRows - 1) / kTileRows;
        for (size_t tile = 0; tile < row_tiles; ++tile) {
          const size_t r = m0 + (m1 - m0) * tile / row_tiles;
          const size_t rows = m0 + (m1 - m0) * (tile + 1) / row_tiles - r;
          tiles[rows - 1][panels - 1](args.a_of(p) + r * args.a_row_stride + k0 * args.a_k_stride, args.a_row_stride,
                                      args.a_k_stride, b_tile, source.panel_stride, source.k_stride, kc,
                                      args.c + r * args.ldc + col0, args.ldc, cols, bias, accumulate);
        }
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#endif  // SEQK_CPU_GEMM_INL_H_
