// seqk::gemm and seqk::PackedMatrix against the fp64 reference, on every
// SIMD target this CPU has, plus bad-input checks.
//
// Tolerance (used throughout): for output element (i, j) with
//   magnitude = Σ_k |a_ik·b_jk| + |bias_j| + |c_in_ij|,
//   tol = 4 · FLT_EPSILON · (sqrt(K) + 2) · magnitude.
// Why: the kernel sums K fp32 products (plus bias and C), each rounding step
// errs by at most eps/2 of a partial sum bounded by `magnitude`; with
// random-sign rounding the sum of K such errors grows like sqrt(K), the +2
// covers the bias and accumulate additions, and the factor 4 is margin
// (blocked/FMA summation only does better; the largest error seen on the
// x86 targets is 1/11 of the tolerance). A real bug (a missing,
// duplicated or misplaced term, wrong row/column, stale value) is at least one
// term ≈ magnitude / K, which for the largest K = 700 is still ~100x the
// tolerance (4·1.19e-7·28.5 ≈ 1.4e-5 vs 1/700 ≈ 1.4e-3 of the magnitude).
// Where the exact result is 0 (zero rows of a PackedMatrix order, no bias)
// the tolerance is 0: the kernel must produce exactly 0.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/gemm.h"
#include "seqk/simd.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::GemmArgs;
using seqk::PackedMatrix;
using seqk::View;

constexpr int64_t kMs[] = {1, 2, 3, 4, 5, 6, 7, 8, 13, 64};
constexpr int64_t kNs[] = {1, 3, 16, 17, 64, 129};
// 256 and 512 are K-specialised micro-kernel sizes; 700 is larger than both.
constexpr int64_t kKs[] = {1, 3, 17, 64, 129, 256, 512, 700};

double gemm_tol(int64_t K, double magnitude) {
  return 4.0 * FLT_EPSILON * (std::sqrt(static_cast<double>(K)) + 2.0) * magnitude;
}

// How A is laid out in memory.
enum class ALayout {
  kContiguous,  // (M, K) row-major
  kTransposed,  // stored (K, M) row-major, viewed through .transposed()
  kPaddedRows,  // row stride K + 3
  kStrided,     // row stride 2K + 1, column stride 2 (every other element)
};

const char* layout_name(ALayout l) {
  switch (l) {
    case ALayout::kContiguous: return "contiguous";
    case ALayout::kTransposed: return "transposed";
    case ALayout::kPaddedRows: return "padded-rows";
    case ALayout::kStrided: return "strided";
  }
  return "?";
}

// An (M, K) matrix of random values held in storage of the given layout.
struct AMatrix {
  std::vector<float> storage;
  ConstView view;
};

AMatrix make_a(int64_t M, int64_t K, ALayout layout, uint64_t seed) {
  AMatrix a;
  switch (layout) {
    case ALayout::kContiguous:
      a.storage = random_floats(M * K, seed);
      a.view = ConstView(a.storage.data(), {M, K});
      break;
    case ALayout::kTransposed:
      a.storage = random_floats(K * M, seed);
      a.view = ConstView(a.storage.data(), {K, M}).transposed();
      break;
    case ALayout::kPaddedRows:
      a.storage = random_floats(M * (K + 3), seed);
      a.view = ConstView(a.storage.data(), {M, K}, {K + 3, 1});
      break;
    case ALayout::kStrided:
      a.storage = random_floats(M * (2 * K + 1), seed);
      a.view = ConstView(a.storage.data(), {M, K}, {2 * K + 1, 2});
      break;
  }
  return a;
}

struct Variant {
  bool bias = false;
  bool accumulate = false;
  bool specialized = true;
};

std::string describe(int64_t M, int64_t N, int64_t K, const Variant& v) {
  std::ostringstream s;
  s << "M=" << M << " N=" << N << " K=" << K << (v.bias ? " +bias" : "") << (v.accumulate ? " +accumulate" : "")
    << (v.specialized ? " specialized" : " generic");
  return s.str();
}

// Runs gemm for one variant into a C with row stride ldc (>= N) surrounded
// by sentinel guard elements, and checks values and that nothing outside the
// (M, N) window was written.
testing::AssertionResult run_and_check(ConstView a, const PackedMatrix& packed, const GemmReference& product,
                                       const std::vector<float>& bias, const Variant& v, int64_t ldc,
                                       seqk::ThreadPool* pool, uint64_t seed) {
  const int64_t M = a.dim(0), K = a.dim(1), N = packed.rows();
  constexpr int64_t kGuard = 19;
  std::vector<float> buffer(2 * kGuard + M * ldc, kSentinel);
  float* c = buffer.data() + kGuard;
  std::vector<float> c_in;
  if (v.accumulate) {
    c_in = random_floats(M * N, seed ^ 0xACC);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = c_in[i * N + j];
  }
  GemmArgs args;
  args.bias = v.bias ? bias.data() : nullptr;
  args.accumulate = v.accumulate;
  args.specialized = v.specialized;
  seqk::gemm(a, packed, View(c, {M, N}, {ldc, 1}), args, pool);

  std::vector<double> want(M * N), tol(M * N);
  std::vector<float> got(M * N);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double w = product.c[i * N + j], mag = product.magnitude[i * N + j];
      if (v.bias) {
        w += bias[j];
        mag += std::fabs(bias[j]);
      }
      if (v.accumulate) {
        w += c_in[i * N + j];
        mag += std::fabs(c_in[i * N + j]);
      }
      want[i * N + j] = w;
      tol[i * N + j] = gemm_tol(K, mag);
      got[i * N + j] = c[i * ldc + j];
    }
  }
  testing::AssertionResult values = close_elementwise("C", got.data(), want.data(), tol.data(), got.size());
  if (!values) return values;
  // Everything outside the window: guards and the padding between rows.
  for (std::size_t idx = 0; idx < buffer.size(); ++idx) {
    const int64_t off = static_cast<int64_t>(idx) - kGuard;
    const bool inside = off >= 0 && off < M * ldc && (off % ldc) < N;
    if (!inside && !all_sentinel(&buffer[idx], 1)) {
      return testing::AssertionFailure() << "gemm wrote outside C: buffer offset " << off << " (ldc " << ldc
                                         << ") holds " << buffer[idx];
    }
  }
  return testing::AssertionSuccess();
}

// Stops a sweep after this many failing cases so one bug does not print
// thousands of lines.
constexpr int kMaxReportedFailures = 12;

// For every (M, N, K) of the given lists: one reference product, then every
// variant.
void sweep(const std::vector<int64_t>& Ms, const std::vector<int64_t>& Ns, const std::vector<int64_t>& Ks,
           const std::vector<Variant>& variants, ALayout layout = ALayout::kContiguous, int64_t ldc_pad = 0) {
  int failures = 0;
  for (int64_t N : Ns) {
    for (int64_t K : Ks) {
      const uint64_t seed = static_cast<uint64_t>(N * 100003 + K);
      const std::vector<float> b = random_floats(N * K, seed);
      const std::vector<float> bias = random_floats(N, seed ^ 0xB1A5);
      const PackedMatrix packed(ConstView(b.data(), {N, K}));
      for (int64_t M : Ms) {
        const AMatrix a = make_a(M, K, layout, seed * 31 + M);
        const GemmReference product = reference_gemm(a.view, ConstView(b.data(), {N, K}), nullptr, nullptr);
        for (const Variant& v : variants) {
          testing::AssertionResult r = run_and_check(a.view, packed, product, bias, v, N + ldc_pad, nullptr, seed + M);
          if (!r) {
            ADD_FAILURE() << describe(M, N, K, v) << " A " << layout_name(layout) << " ldc N+" << ldc_pad << ": "
                          << r.message();
            if (++failures >= kMaxReportedFailures) {
              ADD_FAILURE() << "further failures of this sweep not reported";
              return;
            }
          }
        }
      }
    }
  }
}

std::vector<int64_t> all(const int64_t* begin, const int64_t* end) { return std::vector<int64_t>(begin, end); }

class Gemm : public TargetTest {};

TEST_P(Gemm, AllShapesSpecializedAndGeneric) {
  sweep(all(std::begin(kMs), std::end(kMs)), all(std::begin(kNs), std::end(kNs)), all(std::begin(kKs), std::end(kKs)),
        {Variant{false, false, true}, Variant{false, false, false}});
}

TEST_P(Gemm, AllShapesBiasAccumulateBoth) {
  std::vector<Variant> variants;
  for (bool specialized : {true, false}) {
    variants.push_back({true, false, specialized});
    variants.push_back({false, true, specialized});
    variants.push_back({true, true, specialized});
  }
  sweep({1, 3, 6, 8, 13, 64}, all(std::begin(kNs), std::end(kNs)), all(std::begin(kKs), std::end(kKs)), variants);
}

// Beyond the sizes above: K spanning several 512-deep blocks (accumulating
// across blocks, some of them specialised), M past the row blocking, and a
// partial group of panels (N = 48).
TEST_P(Gemm, DeepAndTallShapes) {
  const std::vector<Variant> variants = {{false, false, true}, {true, true, true}, {true, false, false}};
  sweep({1, 7, 100}, {17, 48, 129}, {768, 1024, 1100}, variants);
}

TEST_P(Gemm, StridedAViews) {
  const std::vector<Variant> variants = {{false, false, true}, {true, true, true}, {true, false, false}};
  for (ALayout layout : {ALayout::kTransposed, ALayout::kPaddedRows, ALayout::kStrided}) {
    sweep({1, 3, 8, 13}, {3, 17, 129}, {1, 17, 256, 512, 700}, variants, layout);
  }
}

TEST_P(Gemm, CRowStrideLeavesPaddingUntouched) {
  const std::vector<Variant> variants = {
      {false, false, true}, {true, false, true}, {false, true, true}, {true, true, false}};
  for (int64_t pad : {1, 16}) {
    sweep({1, 5, 8, 13}, {1, 3, 16, 17, 129}, {3, 64, 256, 512, 700}, variants, ALayout::kContiguous, pad);
  }
}

// B handed over as the transpose of a row-major (K, N) matrix: the packing
// must follow b's strides.
TEST_P(Gemm, PackFromTransposedView) {
  for (int64_t N : {1, 17, 129}) {
    for (int64_t K : {3, 256, 700}) {
      const std::vector<float> b_kn = random_floats(K * N, N * 7 + K);
      const ConstView b = ConstView(b_kn.data(), {K, N}).transposed();  // (N, K), strides (1, N)
      const PackedMatrix packed(b);
      EXPECT_EQ(packed.rows(), N);
      EXPECT_EQ(packed.cols(), K);
      for (int64_t M : {1, 6, 13}) {
        const AMatrix a = make_a(M, K, ALayout::kContiguous, M + 1000 * K);
        const GemmReference product = reference_gemm(a.view, b, nullptr, nullptr);
        const std::vector<float> bias = random_floats(N, 5);
        for (bool specialized : {true, false}) {
          const Variant v{true, false, specialized};
          EXPECT_TRUE(run_and_check(a.view, packed, product, bias, v, N, nullptr, 9)) << describe(M, N, K, v);
        }
      }
    }
  }
}

// PackedMatrix(b, order): packed row r is b[order[r]], zeros where order[r]
// < 0, so those output columns must be exactly the bias (or 0).
TEST_P(Gemm, PackedOrderWithZeroRows) {
  const std::vector<std::vector<int64_t>> orders = {
      {3, -1, 0, 4, -1, 1, 2, 2},                                                       // 8 rows, repeats
      {-1},                                                                             // a single zero row
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, -1, -1, 16, 4, -1, 0},     // crosses a panel
  };
  const int64_t n_src = 17;
  for (const auto& order : orders) {
    for (int64_t K : {1, 17, 256, 512, 700}) {
      const std::vector<float> b = random_floats(n_src * K, K);
      const ConstView b_view(b.data(), {n_src, K});
      const PackedMatrix packed(b_view, order);
      ASSERT_EQ(packed.rows(), static_cast<int64_t>(order.size()));
      ASSERT_EQ(packed.cols(), K);
      const int64_t N = packed.rows();
      const std::vector<float> bias = random_floats(N, 77);
      for (int64_t M : {1, 5, 8, 13}) {
        const AMatrix a = make_a(M, K, ALayout::kContiguous, M * 3 + K);
        const GemmReference product = reference_gemm(a.view, b_view, nullptr, nullptr, &order);
        for (const Variant& v : {Variant{false, false, true}, Variant{true, true, true}, Variant{false, false, false},
                                 Variant{true, false, false}}) {
          EXPECT_TRUE(run_and_check(a.view, packed, product, bias, v, N + 2, nullptr, 11))
              << describe(M, N, K, v) << " order size " << order.size();
        }
      }
    }
  }
}

// Explicit pools of 1, 2 and 3 threads (more threads than row/column blocks
// for the small shapes) must all give correct results.
TEST_P(Gemm, ExplicitThreadPools) {
  for (int threads : {1, 2, 3}) {
    seqk::ThreadPool pool(threads);
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{64, 129, 700}, {3, 17, 256}, {1, 1, 1},
                           {13, 64, 512}, {8, 16, 17}}) {
      const std::vector<float> b = random_floats(N * K, 3);
      const PackedMatrix packed(ConstView(b.data(), {N, K}));
      const AMatrix a = make_a(M, K, ALayout::kContiguous, 4);
      const GemmReference product = reference_gemm(a.view, ConstView(b.data(), {N, K}), nullptr, nullptr);
      const std::vector<float> bias = random_floats(N, 5);
      for (const Variant& v : {Variant{false, false, true}, Variant{true, true, true}, Variant{true, true, false}}) {
        EXPECT_TRUE(run_and_check(a.view, packed, product, bias, v, N + 3, &pool, 6))
            << describe(M, N, K, v) << " threads " << threads;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Gemm, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// ---------------------------------------------------------------------------
// PackedMatrix layout (documented in gemm.h, independent of the target).

TEST(PackedMatrix, LayoutIsSixteenRowPanelsKMajor) {
  for (int64_t N : {1, 16, 17, 40}) {
    for (int64_t K : {1, 5, 33}) {
      const std::vector<float> b = random_floats(N * K, N + K);
      const PackedMatrix packed(ConstView(b.data(), {N, K}));
      ASSERT_EQ(packed.rows(), N);
      ASSERT_EQ(packed.cols(), K);
      ASSERT_EQ(packed.panels(), (N + 15) / 16);
      ASSERT_FALSE(packed.empty());
      for (int64_t p = 0; p < packed.panels(); ++p) {
        const float* panel = packed.panel(p);
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t j = 0; j < seqk::kPanelWidth; ++j) {
            const int64_t row = p * seqk::kPanelWidth + j;
            const float want = row < N ? b[row * K + k] : 0.0f;
            ASSERT_EQ(panel[k * seqk::kPanelWidth + j], want) << "N=" << N << " K=" << K << " panel " << p << " k "
                                                              << k << " j " << j;
          }
        }
      }
    }
  }
}

TEST(PackedMatrix, OrderLayout) {
  const int64_t K = 7;
  const std::vector<float> b = random_floats(5 * K, 1);
  const std::vector<int64_t> order = {4, -1, 0, 0, 2, -1, 1, 3, 4, 2, 1, 0, -1, 3, 3, 2, 1, -1, 0};
  const PackedMatrix packed(ConstView(b.data(), {5, K}), order);
  ASSERT_EQ(packed.rows(), static_cast<int64_t>(order.size()));
  ASSERT_EQ(packed.panels(), 2);
  for (int64_t r = 0; r < 2 * seqk::kPanelWidth; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      const int64_t src = r < packed.rows() ? order[r] : -1;
      const float want = src >= 0 ? b[src * K + k] : 0.0f;
      ASSERT_EQ(packed.panel(r / 16)[k * 16 + r % 16], want) << "row " << r << " k " << k;
    }
  }
}

// Filled column by column (each in pieces that cross panel boundaries, one
// of zeros) after a reset that reuses larger storage full of stale values:
// the same panels as packing the whole matrix, padding lanes zero.
TEST(PackedMatrix, ResetAndSetColumnsMatchPacking) {
  PackedMatrix filled;
  filled.reset(50, 40);
  for (int64_t k = 0; k < 40; ++k) {
    const std::vector<float> stale(50, std::nanf(""));
    filled.set_column(k, 0, stale.data(), 50);
  }
  for (int64_t N : {1, 16, 17, 40}) {
    for (int64_t K : {1, 5, 33}) {
      std::vector<float> b = random_floats(N * K, N + K);
      for (int64_t k = 0; k < K; ++k) b[(N / 2) * K + k] = 0.0f;  // row N/2 is set from null
      const PackedMatrix packed(ConstView(b.data(), {N, K}));
      filled.reset(N, K);
      for (int64_t k = 0; k < K; ++k) {
        std::vector<float> column(N);
        for (int64_t n = 0; n < N; ++n) column[n] = b[n * K + k];
        // Rows [0, N/2), row N/2 from null, rows (N/2, N).
        filled.set_column(k, 0, column.data(), N / 2);
        filled.set_column(k, N / 2, nullptr, 1);
        filled.set_column(k, N / 2 + 1, column.data() + N / 2 + 1, N - N / 2 - 1);
      }
      ASSERT_EQ(filled.rows(), N);
      ASSERT_EQ(filled.cols(), K);
      for (int64_t p = 0; p < packed.panels(); ++p)
        for (int64_t i = 0; i < K * seqk::kPanelWidth; ++i)
          ASSERT_EQ(filled.panel(p)[i], packed.panel(p)[i]) << "N=" << N << " K=" << K << " panel " << p << " at " << i;
    }
  }
  EXPECT_THROW(filled.reset(0, 3), seqk::Error);
  EXPECT_THROW(filled.reset(3, -1), seqk::Error);
  EXPECT_THROW(filled.reset(int64_t{1} << 40, int64_t{1} << 40), seqk::Error);
  // Outside the matrix: an error, and nothing written.
  filled.reset(20, 3);
  const std::vector<float> ones(21, 1.0f);
  for (int64_t k = 0; k < 3; ++k) filled.set_column(k, 0, nullptr, 20);
  EXPECT_THROW(filled.set_column(3, 0, ones.data(), 1), seqk::Error);
  EXPECT_THROW(filled.set_column(-1, 0, ones.data(), 1), seqk::Error);
  EXPECT_THROW(filled.set_column(0, 15, ones.data(), 6), seqk::Error);
  EXPECT_THROW(filled.set_column(0, -1, ones.data(), 2), seqk::Error);
  EXPECT_THROW(filled.set_column(0, 0, ones.data(), -1), seqk::Error);
  for (int64_t p = 0; p < filled.panels(); ++p)
    for (int64_t i = 0; i < 3 * seqk::kPanelWidth; ++i) ASSERT_EQ(filled.panel(p)[i], 0.0f) << "panel " << p << " at " << i;
}

TEST(PackedMatrix, DefaultIsEmpty) {
  const PackedMatrix packed;
  EXPECT_TRUE(packed.empty());
  EXPECT_EQ(packed.rows(), 0);
  EXPECT_EQ(packed.panels(), 0);
}

// ---------------------------------------------------------------------------
// Bad input: seqk::Error, and C left exactly as it was.

class GemmBadInput : public testing::Test {
 protected:
  static constexpr int64_t M = 5, N = 17, K = 9;
  std::vector<float> a = random_floats(M * K, 1);
  std::vector<float> b = random_floats(N * K, 2);
  std::vector<float> c = std::vector<float>((M + 2) * (N + 2), kSentinel);  // room for the wrong shapes
  PackedMatrix packed{ConstView(b.data(), {N, K})};

  void expect_rejected(ConstView a_view, const PackedMatrix& p, View c_view, const char* what,
                       const GemmArgs& args = {}) {
    SCOPED_TRACE(what);
    try {
      seqk::gemm(a_view, p, c_view, args);
      ADD_FAILURE() << "gemm accepted " << what;
    } catch (const seqk::Error& e) {
      EXPECT_THAT(e.what(), testing::StartsWith("seqk: "));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "gemm threw a non-seqk exception for " << what << ": " << e.what();
    }
    EXPECT_TRUE(all_sentinel(c.data(), c.size())) << "C was written despite the error";
  }
};

TEST_F(GemmBadInput, GoodCallWorks) {
  // The fixture's shapes are valid: the failures below are caused by the one
  // thing each of them changes.
  seqk::gemm(ConstView(a.data(), {M, K}), packed, View(c.data(), {M, N}));
  EXPECT_FALSE(all_sentinel(c.data(), M * N));
}

TEST_F(GemmBadInput, NullPointers) {
  expect_rejected(ConstView(nullptr, {M, K}), packed, View(c.data(), {M, N}), "null A");
  expect_rejected(ConstView(), packed, View(c.data(), {M, N}), "default (null, rank 0) A");
  expect_rejected(ConstView(a.data(), {M, K}), packed, View(nullptr, {M, N}), "null C");
  expect_rejected(ConstView(a.data(), {M, K}), packed, View(), "default C");
  expect_rejected(ConstView(a.data(), {M, K}), PackedMatrix(), View(c.data(), {M, N}), "empty PackedMatrix");
  EXPECT_THROW(PackedMatrix{ConstView(nullptr, {N, K})}, seqk::Error);
  EXPECT_THROW(PackedMatrix{ConstView{}}, seqk::Error);
}

TEST_F(GemmBadInput, MismatchedK) {
  expect_rejected(ConstView(a.data(), {M, K - 1}), packed, View(c.data(), {M, N}), "A has K-1 columns");
  expect_rejected(ConstView(a.data(), {M - 1, K + 1}), packed, View(c.data(), {M - 1, N}), "A has K+1 columns");
}

TEST_F(GemmBadInput, ZeroSizes) {
  expect_rejected(ConstView(a.data(), {0, K}), packed, View(c.data(), {0, N}), "M = 0");
  expect_rejected(ConstView(a.data(), {M, 0}), packed, View(c.data(), {M, N}), "K = 0 in A");
  expect_rejected(ConstView(a.data(), {M, K}), packed, View(c.data(), {M, 0}), "N = 0 in C");
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {0, K})), seqk::Error) << "N = 0";
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {N, 0})), seqk::Error) << "K = 0";
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {-1, K})), seqk::Error) << "N < 0";
  expect_rejected(ConstView(a.data(), {-2, K}), packed, View(c.data(), {-2, N}), "M < 0");
}

TEST_F(GemmBadInput, WrongCShape) {
  const ConstView a_view(a.data(), {M, K});
  expect_rejected(a_view, packed, View(c.data(), {M, N + 1}), "C has N+1 columns");
  expect_rejected(a_view, packed, View(c.data(), {M, N - 1}), "C has N-1 columns");
  expect_rejected(a_view, packed, View(c.data(), {M + 1, N}), "C has M+1 rows");
  expect_rejected(a_view, packed, View(c.data(), {M - 1, N}), "C has M-1 rows");
  expect_rejected(a_view, packed, View(c.data(), {M * N}), "C has rank 1");
  expect_rejected(a_view, packed, View(c.data(), {1, M, N}), "C has rank 3");
  expect_rejected(a_view, packed, View(c.data(), {N, M}).transposed(), "C has column stride M");
  expect_rejected(a_view, packed, View(c.data(), {M, N}, {N - 1, 1}), "C rows overlap (row stride N-1)");
  expect_rejected(ConstView(a.data(), {1, M, K}), packed, View(c.data(), {M, N}), "A has rank 3");
}

TEST_F(GemmBadInput, BadOrder) {
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {N, K}), std::vector<int64_t>{0, 1, N}), seqk::Error)
      << "order entry == N reads past b";
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {N, K}), std::vector<int64_t>{0, 1000}), seqk::Error)
      << "order entry far past b";
  EXPECT_THROW(PackedMatrix(ConstView(b.data(), {N, K}), std::vector<int64_t>{}), seqk::Error) << "empty order";
}

// ---------------------------------------------------------------------------
// SIMD target selection.

TEST(SimdTargets, AvailableAndPinnable) {
  const std::vector<seqk::SimdTarget> targets = seqk::available_simd_targets();
  ASSERT_FALSE(targets.empty());
  const seqk::SimdTarget before = seqk::active_simd_target();
  EXPECT_EQ(before.bits, targets.front().bits) << "by default the best available target runs";
  for (const seqk::SimdTarget& t : targets) {
    EXPECT_FALSE(t.name.empty());
    {
      seqk::ScopedSimdTarget scope(t.bits);
      EXPECT_EQ(seqk::active_simd_target().bits, t.bits);
      EXPECT_EQ(seqk::active_simd_target().name, t.name);
    }
    EXPECT_EQ(seqk::active_simd_target().bits, before.bits) << "guard did not restore dispatch after " << t.name;
  }
  for (std::size_t i = 0; i < targets.size(); ++i)
    for (std::size_t j = i + 1; j < targets.size(); ++j) EXPECT_NE(targets[i].bits, targets[j].bits);
}

TEST(SimdTargets, UnavailableTargetThrows) {
  int64_t all_bits = 0;
  for (const seqk::SimdTarget& t : seqk::available_simd_targets()) all_bits |= t.bits;
  EXPECT_THROW(seqk::ScopedSimdTarget scope(0), seqk::Error);
  // Bits of no available target (Highway uses bits 0..62 for its targets).
  int checked = 0;
  for (int bit = 0; bit < 63; ++bit) {
    const int64_t bits = int64_t{1} << bit;
    if (all_bits & bits) continue;
    EXPECT_THROW(seqk::ScopedSimdTarget scope(bits), seqk::Error) << "bit " << bit;
    ++checked;
  }
  EXPECT_GT(checked, 0);
  // Two targets at once is not one target.
  if (seqk::available_simd_targets().size() >= 2) {
    EXPECT_THROW(seqk::ScopedSimdTarget scope(all_bits), seqk::Error);
  }
}

}  // namespace
}  // namespace seqk_test
