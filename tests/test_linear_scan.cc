// The diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + b_t: forward against
// a sequential fp64 loop, backward against finite differences of it, on
// every SIMD target, with both parallel forms (threads over channels, and
// over chunks of steps dealt to the threads in turn when the channels are
// few), T up to 100k,
// a = 0 and a = 1, and bad shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reference.h"
#include "seqk/error.h"
#include "seqk/scan.h"
#include "seqk/thread_pool.h"

namespace seqk_test {
namespace {

using seqk::ConstView;
using seqk::View;

// h_t = a_t h_{t-1} + b_t in double; (T, C) rows, h0 (C) or empty.
std::vector<double> reference_scan(const std::vector<float>& a, const std::vector<float>& b,
                                   const std::vector<float>& h0, int64_t T, int64_t C) {
  std::vector<double> h(T * C), state(C, 0.0);
  for (int64_t c = 0; c < C && !h0.empty(); ++c) state[c] = h0[c];
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) h[t * C + c] = state[c] = a[t * C + c] * state[c] + b[t * C + c];
  return h;
}

struct ScanCase {
  int64_t T, B, D;
};

// The error of the chunked form grows with the run of products it
// reassociates; 1e-5 relative (plus 1e-6) is ~100 ulp, far above what a
// step of fp32 rounding does and far below a wrong carry (O(1)).
testing::AssertionResult close_scan(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                                    double relative = 1e-5) {
  std::vector<double> tol(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) tol[i] = relative * std::fabs(want[i]) + 1e-6;
  return close_elementwise(what, got.data(), want.data(), tol.data(), want.size());
}

class LinearScan : public TargetTest {};

TEST_P(LinearScan, ForwardMatchesSequentialFp64) {
  // Small scans (one thread), and long ones on 2+ threads: one chunk per
  // thread (300 × 64, 3000 × 64), and five chunks of up to 2048 steps, the
  // last short, so each thread runs several, handing the state on (10000 × 64).
  for (const ScanCase& s : {ScanCase{1, 1, 1}, ScanCase{7, 3, 5}, ScanCase{100, 1, 3}, ScanCase{257, 2, 7},
                            ScanCase{33, 4, 40}, ScanCase{300, 1, 64}, ScanCase{3000, 2, 32},
                            ScanCase{10000, 2, 32}}) {
    for (int threads : {1, 2, 3}) {
      for (bool with_h0 : {false, true}) {
        SCOPED_TRACE(testing::Message() << "T=" << s.T << " B=" << s.B << " D=" << s.D << " threads=" << threads
                                        << (with_h0 ? " h0" : ""));
        const int64_t C = s.B * s.D;
        const std::vector<float> a = random_floats(s.T * C, 11, -0.99f, 0.99f), b = random_floats(s.T * C, 12);
        const std::vector<float> h0 = with_h0 ? random_floats(C, 13) : std::vector<float>();
        std::vector<float> h(s.T * C, kSentinel);
        seqk::ThreadPool pool(threads);
        seqk::linear_scan({ConstView(a.data(), {s.T, s.B, s.D}), ConstView(b.data(), {s.T, s.B, s.D}),
                           with_h0 ? ConstView(h0.data(), {s.B, s.D}) : ConstView(), View(h.data(), {s.T, s.B, s.D})},
                          &pool);
        EXPECT_TRUE(close_scan("h", h, reference_scan(a, b, h0, s.T, C)));
      }
    }
  }
}

// L = Σ w ⊙ h; central differences in double of the sequential loop.
TEST_P(LinearScan, BackwardMatchesFiniteDifferences) {
  for (const ScanCase& s : {ScanCase{6, 2, 3}, ScanCase{40, 1, 2}, ScanCase{5, 3, 40}}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "T=" << s.T << " C=" << s.B * s.D << " threads=" << threads);
      const int64_t T = s.T, C = s.B * s.D;
      std::vector<float> a = random_floats(T * C, 21, -0.99f, 0.99f), b = random_floats(T * C, 22),
                         h0 = random_floats(C, 23);
      const std::vector<float> w = random_floats(T * C, 24);
      auto loss = [&] {
        const std::vector<double> h = reference_scan(a, b, h0, T, C);
        double sum = 0;
        for (int64_t i = 0; i < T * C; ++i) sum += w[i] * h[i];
        return sum;
      };
      // Perturbing the float inputs by 1e-3 keeps the step exact in float;
      // the loss is linear in b and h0 and polynomial of low degree per
      // element in a, so central differences are accurate to ~1e-7 here.
      auto fd = [&](std::vector<float>& v) {
        std::vector<double> grad(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
          const float saved = v[i];
          v[i] = saved + 1e-3f;
          const double plus = loss();
          v[i] = saved - 1e-3f;
          const double minus = loss();
          v[i] = saved;
          grad[i] = (plus - minus) / (static_cast<double>(saved + 1e-3f) - static_cast<double>(saved - 1e-3f));
        }
        return grad;
      };
      std::vector<float> h(T * C), da(T * C, kSentinel), db(T * C, kSentinel), dh0(C, kSentinel);
      seqk::ThreadPool pool(threads);
      const ConstView a_view(a.data(), {T, s.B, s.D}), h0_view(h0.data(), {s.B, s.D});
      seqk::linear_scan({a_view, ConstView(b.data(), {T, s.B, s.D}), h0_view, View(h.data(), {T, s.B, s.D})}, &pool);
      seqk::linear_scan_backward({a_view, h0_view, ConstView(h.data(), {T, s.B, s.D}), ConstView(w.data(), {T, s.B, s.D}),
                                  View(da.data(), {T, s.B, s.D}), View(db.data(), {T, s.B, s.D}),
                                  View(dh0.data(), {s.B, s.D})},
                                 &pool);
      EXPECT_TRUE(close_scan("da", da, fd(a), 1e-4));
      EXPECT_TRUE(close_scan("db", db, fd(b), 1e-4));
      EXPECT_TRUE(close_scan("dh0", dh0, fd(h0), 1e-4));
    }
  }
}

// The backward of scans long enough to run in chunks, one per thread or
// several (10000 × 64, as in the forward test), against the reverse
// recurrence in fp64: g_t = dh_t + a_{t+1} g_{t+1}, db = g, da_t = g_t h_{t-1},
// dh0 = a_1 g_1.
TEST_P(LinearScan, LongBackwardMatchesFp64) {
  for (const ScanCase& s : {ScanCase{300, 1, 64}, ScanCase{3000, 2, 32}, ScanCase{10000, 2, 32}}) {
    for (int threads : {2, 3}) {
      SCOPED_TRACE(testing::Message() << "T=" << s.T << " C=" << s.B * s.D << " threads=" << threads);
      const int64_t T = s.T, C = s.B * s.D;
      const std::vector<float> a = random_floats(T * C, 41, -0.99f, 0.99f), h = random_floats(T * C, 42),
                               h0 = random_floats(C, 43), dh = random_floats(T * C, 44);
      std::vector<double> g(T * C), da(T * C), dh0(C);
      for (int64_t t = T - 1; t >= 0; --t)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = t * C + c;
          g[i] = dh[i] + (t + 1 < T ? static_cast<double>(a[i + C]) * g[i + C] : 0.0);
          da[i] = g[i] * (t > 0 ? h[i - C] : h0[c]);
        }
      for (int64_t c = 0; c < C; ++c) dh0[c] = a[c] * g[c];
      std::vector<float> got_da(T * C, kSentinel), got_db(T * C, kSentinel), got_dh0(C, kSentinel);
      seqk::ThreadPool pool(threads);
      seqk::linear_scan_backward({ConstView(a.data(), {T, s.B, s.D}), ConstView(h0.data(), {s.B, s.D}),
                                  ConstView(h.data(), {T, s.B, s.D}), ConstView(dh.data(), {T, s.B, s.D}),
                                  View(got_da.data(), {T, s.B, s.D}), View(got_db.data(), {T, s.B, s.D}),
                                  View(got_dh0.data(), {s.B, s.D})},
                                 &pool);
      EXPECT_TRUE(close_scan("db", got_db, g));
      EXPECT_TRUE(close_scan("da", got_da, da));
      EXPECT_TRUE(close_scan("dh0", got_dh0, dh0));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, LinearScan, testing::ValuesIn(seqk::available_simd_targets()), target_test_name);

// T = 100,000 on 3 channels and 2 threads (three chunks of ~44k steps dealt
// to the two in turn, the last short), a near 1 so the state remembers
// far back and grows to ~30. Tolerance: 1e-5 of the largest |h|, for every
// element: fp32 rounding of a state of that size is absolute (~1e-6 of it
// per step, random in sign), so it does not shrink where h crosses zero; a
// wrong carry is off by O(the state).
TEST(LinearScanLong, HundredThousandSteps) {
  const int64_t T = 100000, C = 3;
  const std::vector<float> a = random_floats(T * C, 31, 0.999f, 1.0f), b = random_floats(T * C, 32);
  const std::vector<float> h0 = random_floats(C, 33, 10.0f, 20.0f);  // a state that lasts through the chunks
  for (const bool with_h0 : {false, true}) {
    SCOPED_TRACE(with_h0 ? "h0" : "no h0");
    std::vector<float> h(T * C);
    seqk::ThreadPool pool(2);
    seqk::linear_scan({ConstView(a.data(), {T, 1, C}), ConstView(b.data(), {T, 1, C}),
                       with_h0 ? ConstView(h0.data(), {1, C}) : ConstView(), View(h.data(), {T, 1, C})},
                      &pool);
    const std::vector<double> want = reference_scan(a, b, with_h0 ? h0 : std::vector<float>(), T, C);
    EXPECT_TRUE(close_uniform("h", h.data(), want.data(), 1e-5 * max_abs(want), want.size()));
  }
}

// a = 0: h_t = b_t exactly; a = 1: the running sum (exact for small integers).
TEST(LinearScanLong, EdgeCoefficients) {
  const int64_t T = 50, C = 5;
  std::vector<float> zeros(T * C, 0.0f), ones(T * C, 1.0f), b(T * C);
  for (int64_t i = 0; i < T * C; ++i) b[i] = static_cast<float>(i % 7) - 3.0f;
  std::vector<float> h(T * C);
  seqk::ThreadPool pool(2);
  seqk::linear_scan({ConstView(zeros.data(), {T, 1, C}), ConstView(b.data(), {T, 1, C}), {}, View(h.data(), {T, 1, C})},
                    &pool);
  EXPECT_EQ(h, b);
  seqk::linear_scan({ConstView(ones.data(), {T, 1, C}), ConstView(b.data(), {T, 1, C}), {}, View(h.data(), {T, 1, C})},
                    &pool);
  for (int64_t c = 0; c < C; ++c) {
    float sum = 0;
    for (int64_t t = 0; t < T; ++t) {
      sum += b[t * C + c];
      ASSERT_EQ(h[t * C + c], sum) << "t=" << t << " c=" << c;
    }
  }
}

// A long scan in chunks with an initial state, every a 1 except
// a few halves (one at step 0): every value is a small multiple of 1/4, so
// the chunked scan must be exact. A chunk that loses one coefficient of its
// product (the first row's, say) is off by a multiple of the state.
TEST(LinearScanLong, ChunkProductsAreExact) {
  const int64_t T = 20000;
  std::vector<float> a(T, 1.0f), b(T);
  for (const int64_t t : {int64_t{0}, int64_t{7001}, int64_t{13333}}) a[t] = 0.5f;
  for (int64_t t = 0; t < T; ++t) b[t] = static_cast<float>(t % 7) - 3.0f;
  const std::vector<float> h0{8.0f};
  const std::vector<double> want = reference_scan(a, b, h0, T, 1);
  for (const int threads : {2, 3}) {
    std::vector<float> h(T);
    seqk::ThreadPool pool(threads);
    seqk::linear_scan({ConstView(a.data(), {T, 1, 1}), ConstView(b.data(), {T, 1, 1}), ConstView(h0.data(), {1, 1}),
                       View(h.data(), {T, 1, 1})},
                      &pool);
    for (int64_t t = 0; t < T; ++t) ASSERT_EQ(h[t], want[t]) << "t=" << t << " threads=" << threads;
  }
}

TEST(LinearScanLong, RejectsBadShapes) {
  std::vector<float> a(24, 0.5f), b(24, 0.5f), h(24, kSentinel), h0(6, 0.0f);
  const ConstView a_view(a.data(), {4, 2, 3});
  EXPECT_THROW(seqk::linear_scan({a_view, ConstView(b.data(), {4, 3, 2}), {}, View(h.data(), {4, 2, 3})}),
               seqk::Error);
  EXPECT_THROW(seqk::linear_scan({a_view, ConstView(b.data(), {4, 2, 3}), ConstView(h0.data(), {3, 2}),
                                  View(h.data(), {4, 2, 3})}),
               seqk::Error);
  EXPECT_THROW(seqk::linear_scan({ConstView(a.data(), {0, 2, 3}), ConstView(b.data(), {0, 2, 3}), {},
                                  View(h.data(), {0, 2, 3})}),
               seqk::Error);
  EXPECT_TRUE(all_sentinel(h.data(), h.size()));
}

}  // namespace
}  // namespace seqk_test
