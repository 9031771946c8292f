// Batches of sequences of different lengths: padded with `lengths`, and
// packed with `batch_sizes` (through pack/unpack), must each give what
// running every sequence alone gives, forward and backward, for every cell;
// plus the bucketing helper and the errors for bad lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lstm_problem.h"
#include "reference.h"
#include "seqk/error.h"
#include "seqk/recurrent_layer.h"
#include "seqk/sequence_batch.h"

namespace seqk_test {
namespace {

using seqk::CellKind;
using seqk::RecurrentLayer;
using seqk::RecurrentSaved;

// What one layer call returns; every buffer pre-filled with a sentinel.
struct Result {
  std::vector<float> y, h_n, c_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

// A batch of B sequences, padded to T steps, with states and the gradients
// fed to backward (dy also over the padding: the layer must ignore it there).
struct Batch {
  Problem p;  // x (T, B, D), h0, c0, parameters
  std::vector<int64_t> lengths;
  std::vector<float> dy, dh_n, dc_n;
};

Batch make_batch(CellKind cell, std::vector<int64_t> lengths, int64_t D = 3, int64_t H = 17) {
  Batch batch;
  const int64_t B = static_cast<int64_t>(lengths.size()), T = *std::max_element(lengths.begin(), lengths.end());
  batch.p = make_problem(D, H, B, T, true, 21, cell);
  batch.lengths = std::move(lengths);
  batch.dy = random_floats(T * B * H, 61);
  batch.dh_n = random_floats(B * H, 62);
  if (batch.p.has_c()) batch.dc_n = random_floats(B * H, 63);
  return batch;
}

// D, H: a partial 16-unit block; multiples of 16, where the weight gradients
// read x (and, but for packed sequences, h_{t-1}) where they lie.
constexpr std::pair<int64_t, int64_t> kSizes[] = {{3, 17}, {16, 32}};

// Forward (training) then backward over x with `lengths` or `batch_sizes`
// (one empty); x, y, dy in that layout; states in the layer's batch order.
Result run(const RecurrentLayer& layer, const Problem& p, const std::vector<float>& x, int64_t rows_or_steps,
           int64_t batch, std::span<const int64_t> lengths, std::span<const int64_t> batch_sizes,
           const std::vector<float>& h0, const std::vector<float>& c0, const std::vector<float>& dy,
           const std::vector<float>& dh_n, const std::vector<float>& dc_n) {
  const int64_t D = p.D, H = p.H, G = p.G();
  const bool packed = !batch_sizes.empty();
  auto seq = [&](std::vector<float>& v, int64_t width) {
    return packed ? View(v.data(), {rows_or_steps, width}) : View(v.data(), {rows_or_steps, batch, width});
  };
  auto cseq = [&](const std::vector<float>& v, int64_t width) {
    return packed ? ConstView(v.data(), {rows_or_steps, width}) : ConstView(v.data(), {rows_or_steps, batch, width});
  };
  auto state = [&](const std::vector<float>& v) { return v.empty() ? ConstView() : ConstView(v.data(), {batch, H}); };
  const int64_t n = packed ? rows_or_steps : rows_or_steps * batch;
  Result r;
  r.y.assign(n * H, kSentinel);
  r.h_n.assign(batch * H, kSentinel);
  r.c_n.assign(batch * H, kSentinel);
  seqk::RecurrentForwardArgs f{cseq(x, D), seq(r.y, H), state(h0), state(c0), View(r.h_n.data(), {batch, H}),
                               p.has_c() ? View(r.c_n.data(), {batch, H}) : View(), lengths, batch_sizes};
  RecurrentSaved saved;
  layer.forward(f, saved);

  r.dx.assign(n * D, kSentinel);
  r.dh0.assign(batch * H, kSentinel);
  r.dc0.assign(batch * H, kSentinel);
  r.dw_ih.assign(G * H * D, kSentinel);
  r.dw_hh.assign(G * H * H, kSentinel);
  r.db_ih.assign(G * H, kSentinel);
  r.db_hh.assign(G * H, kSentinel);
  seqk::RecurrentBackwardArgs b{cseq(x, D), cseq(r.y, H), state(h0), state(c0), cseq(dy, H), state(dh_n),
                                state(dc_n), seq(r.dx, D), View(r.dh0.data(), {batch, H}),
                                p.has_c() ? View(r.dc0.data(), {batch, H}) : View(), lengths, batch_sizes};
  layer.backward(b, saved,
                 {View(r.dw_ih.data(), {G * H, D}), View(r.dw_hh.data(), {G * H, H}), View(r.db_ih.data(), {G * H}),
                  View(r.db_hh.data(), {G * H})});
  return r;
}

// Every sequence alone (B = 1, its own length): outputs in the padded
// layout (0 past each length), per-sequence states, summed weight gradients.
Result run_each_alone(const RecurrentLayer& layer, const Batch& batch) {
  const Problem& p = batch.p;
  const int64_t B = p.B, T = p.T, D = p.D, H = p.H, G = p.G();
  Result all;
  all.y.assign(T * B * H, 0.0f);
  all.dx.assign(T * B * D, 0.0f);
  all.h_n.assign(B * H, 0.0f);
  all.c_n.assign(B * H, 0.0f);
  all.dh0.assign(B * H, 0.0f);
  all.dc0.assign(B * H, 0.0f);
  all.dw_ih.assign(G * H * D, 0.0f);
  all.dw_hh.assign(G * H * H, 0.0f);
  all.db_ih.assign(G * H, 0.0f);
  all.db_hh.assign(G * H, 0.0f);
  auto row = [](const std::vector<float>& v, int64_t index, int64_t width) {
    return v.empty() ? std::vector<float>() : std::vector<float>(v.begin() + index * width, v.begin() + (index + 1) * width);
  };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = batch.lengths[b];
    std::vector<float> x, dy;
    for (int64_t t = 0; t < len; ++t) {
      const std::vector<float> xt = row(p.x, t * B + b, D), dyt = row(batch.dy, t * B + b, H);
      x.insert(x.end(), xt.begin(), xt.end());
      dy.insert(dy.end(), dyt.begin(), dyt.end());
    }
    const Result one = run(layer, p, x, len, 1, {}, {}, row(p.h0, b, H), row(p.c0, b, H), dy, row(batch.dh_n, b, H),
                           row(batch.dc_n, b, H));
    for (int64_t t = 0; t < len; ++t) {
      std::copy_n(one.y.begin() + t * H, H, all.y.begin() + (t * B + b) * H);
      std::copy_n(one.dx.begin() + t * D, D, all.dx.begin() + (t * B + b) * D);
    }
    std::copy_n(one.h_n.begin(), H, all.h_n.begin() + b * H);
    std::copy_n(one.dh0.begin(), H, all.dh0.begin() + b * H);
    if (p.has_c()) {
      std::copy_n(one.c_n.begin(), H, all.c_n.begin() + b * H);
      std::copy_n(one.dc0.begin(), H, all.dc0.begin() + b * H);
    }
    for (auto field : {&Result::dw_ih, &Result::dw_hh, &Result::db_ih, &Result::db_hh})
      for (std::size_t i = 0; i < (all.*field).size(); ++i) (all.*field)[i] += (one.*field)[i];
  }
  return all;
}

// Both fp32, with different batching: 1e-5 of each tensor's scale (as in
// close_gradient); padding must be exactly 0, which the tolerance of a
// tensor with nonzero values does not test, so it is checked separately.
void expect_same(const Result& got, const Result& want, bool has_c) {
  auto close = [](const char* what, const std::vector<float>& g, const std::vector<float>& w) {
    EXPECT_TRUE(close_gradient(what, g, to_double(w)));
  };
  close("y", got.y, want.y);
  close("h_n", got.h_n, want.h_n);
  close("dx", got.dx, want.dx);
  close("dh0", got.dh0, want.dh0);
  close("dw_ih", got.dw_ih, want.dw_ih);
  close("dw_hh", got.dw_hh, want.dw_hh);
  close("db_ih", got.db_ih, want.db_ih);
  close("db_hh", got.db_hh, want.db_hh);
  if (has_c) {
    close("c_n", got.c_n, want.c_n);
    close("dc0", got.dc0, want.dc0);
  }
  for (std::size_t i = 0; i < want.y.size(); ++i) {
    if (want.y[i] == 0.0f) {
      ASSERT_EQ(got.y[i], 0.0f) << "y at padded index " << i;
    }
  }
  for (std::size_t i = 0; i < want.dx.size(); ++i) {
    if (want.dx[i] == 0.0f) {
      ASSERT_EQ(got.dx[i], 0.0f) << "dx at padded index " << i;
    }
  }
}

constexpr CellKind kCells[] = {CellKind::kLstm, CellKind::kGru, CellKind::kRnnTanh};
// Unsorted, with ties, a length-1 sequence and two of the full length.
const std::vector<int64_t> kLengths = {6, 2, 4, 1, 6};

// Runs check(batch, layer, each sequence's results alone) for every size
// and cell, on batches of kLengths.
template <class Check>
void for_each_batch(Check check) {
  for (auto [D, H] : kSizes) {
    for (CellKind cell : kCells) {
      SCOPED_TRACE(std::string(seqk::to_string(cell)) + " D=" + std::to_string(D) + " H=" + std::to_string(H));
      const Batch batch = make_batch(cell, kLengths, D, H);
      RecurrentLayer layer(cell, D, H);
      layer.set_parameters(batch.p.params());
      check(batch, layer, run_each_alone(layer, batch));
    }
  }
}

TEST(VariableLength, PaddedWithLengthsEqualsEachSequenceAlone) {
  for_each_batch([](const Batch& batch, const RecurrentLayer&, const Result& want) {
    const Problem& p = batch.p;
    // Chunks of one step too: lengths are absolute, the chunks relative.
    for (int64_t limit : {int64_t{0}, int64_t{1}}) {
      RecurrentLayer chunked(p.cell, p.D, p.H);
      chunked.set_parameters(p.params());
      if (limit > 0) chunked.set_workspace_limit(limit);
      const Result got =
          run(chunked, p, p.x, p.T, p.B, batch.lengths, {}, p.h0, p.c0, batch.dy, batch.dh_n, batch.dc_n);
      expect_same(got, want, p.has_c());
    }
  });
}

TEST(VariableLength, PackedEqualsEachSequenceAlone) {
  for_each_batch([](const Batch& batch, const RecurrentLayer& layer, const Result& want) {
    const Problem& p = batch.p;
    const seqk::PackedLayout layout = seqk::packed_layout(batch.lengths);
    EXPECT_EQ(layout.batch_sizes, (std::vector<int64_t>{5, 4, 3, 3, 2, 2}));
    EXPECT_EQ(layout.sorted_indices, (std::vector<int64_t>{0, 4, 2, 1, 3}));
    const int64_t N = layout.rows(), B = p.B, T = p.T, D = p.D, H = p.H;
    ASSERT_EQ(N, 19);
    auto pack = [&](const std::vector<float>& padded, int64_t width) {
      std::vector<float> out(N * width);
      seqk::pack(layout, ConstView(padded.data(), {T, B, width}), View(out.data(), {N, width}));
      return out;
    };
    auto sort = [&](const std::vector<float>& v) {
      if (v.empty()) return v;
      std::vector<float> out(v.size());
      seqk::sort_rows(layout, ConstView(v.data(), {B, H}), View(out.data(), {B, H}));
      return out;
    };
    const Result packed = run(layer, p, pack(p.x, D), N, B, {}, layout.batch_sizes, sort(p.h0), sort(p.c0),
                              pack(batch.dy, H), sort(batch.dh_n), sort(batch.dc_n));
    // Back to the padded layout and the original order.
    Result got = packed;
    got.y.assign(T * B * H, kSentinel);
    got.dx.assign(T * B * D, kSentinel);
    seqk::unpack(layout, ConstView(packed.y.data(), {N, H}), View(got.y.data(), {T, B, H}));
    seqk::unpack(layout, ConstView(packed.dx.data(), {N, D}), View(got.dx.data(), {T, B, D}));
    for (auto field : {&Result::h_n, &Result::c_n, &Result::dh0, &Result::dc0}) {
      if (!p.has_c() && (field == &Result::c_n || field == &Result::dc0)) continue;
      seqk::unsort_rows(layout, ConstView((packed.*field).data(), {B, H}), View((got.*field).data(), {B, H}));
    }
    expect_same(got, want, p.has_c());
  });
}

TEST(VariableLength, RejectsBadLengths) {
  const Batch batch = make_batch(CellKind::kLstm, kLengths);
  const Problem& p = batch.p;
  RecurrentLayer layer(CellKind::kLstm, p.D, p.H);
  layer.set_parameters(p.params());
  std::vector<float> y(p.T * p.B * p.H, kSentinel);
  auto forward = [&](std::vector<int64_t> lengths) {
    layer.forward({p.x_view(), View(y.data(), {p.T, p.B, p.H}), {}, {}, {}, {}, lengths, {}});
  };
  auto message = [&](auto call) {
    try {
      call();
    } catch (const seqk::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { forward({6, 2, 7, 1, 6}); }).find("lengths[2] = 7"), std::string::npos);  // > T
  EXPECT_NE(message([&] { forward({6, 0, 4, 1, 6}); }).find("lengths[1] = 0"), std::string::npos);
  EXPECT_NE(message([&] { forward({6, 2, 4}); }).find("3 entries for B = 5"), std::string::npos);
  EXPECT_TRUE(all_sentinel(y.data(), y.size()));

  // Packed: batch sizes that grow (sequences not sorted), that do not add up to N, or zero.
  std::vector<float> x(19 * p.D, 0.5f), y_packed(19 * p.H, kSentinel);
  auto packed = [&](std::vector<int64_t> batch_sizes, int64_t rows) {
    layer.forward({ConstView(x.data(), {rows, p.D}), View(y_packed.data(), {rows, p.H}), {}, {}, {}, {}, {},
                   batch_sizes});
  };
  EXPECT_EQ(message([&] { packed({5, 4, 3, 3, 2, 2}, 19); }), "no error") << "a valid packed batch";
  y_packed.assign(19 * p.H, kSentinel);
  EXPECT_NE(message([&] { packed({3, 4, 3, 3, 2, 2}, 17); }).find("sorted by length"), std::string::npos);
  EXPECT_NE(message([&] { packed({5, 4, 3, 3, 2, 2}, 18); }).find("x has shape"), std::string::npos);
  EXPECT_NE(message([&] { packed({5, 4, 0}, 9); }).find("batch_sizes[2] = 0"), std::string::npos);
  EXPECT_TRUE(all_sentinel(y_packed.data(), y_packed.size()));
  EXPECT_THROW(seqk::packed_layout(std::vector<int64_t>{3, 0}), seqk::Error);
}

// Long-tailed lengths between 1 and 200: buckets hold every sequence once,
// at most max_batch each, runs of the length order, and waste far less
// padding than the sequences in their given order.
TEST(VariableLength, BucketsGroupSimilarLengths) {
  std::mt19937 rng(5);
  std::lognormal_distribution<double> tail(2.5, 1.0);
  std::vector<int64_t> lengths(1000);
  for (int64_t& len : lengths) len = std::clamp<int64_t>(static_cast<int64_t>(tail(rng)), 1, 200);
  const int64_t max_batch = 32;
  const auto buckets = seqk::bucket_by_length(lengths, max_batch);
  std::vector<int> seen(lengths.size(), 0);
  auto padded_work = [&](const std::vector<int64_t>& batch) {
    int64_t longest = 0;
    for (int64_t i : batch) longest = std::max(longest, lengths[i]);
    return longest * static_cast<int64_t>(batch.size());
  };
  int64_t bucketed = 0, previous_shortest = INT64_MAX;
  for (const auto& batch : buckets) {
    ASSERT_FALSE(batch.empty());
    ASSERT_LE(static_cast<int64_t>(batch.size()), max_batch);
    int64_t longest = 0, shortest = INT64_MAX;
    for (int64_t i : batch) {
      ++seen[i];
      longest = std::max(longest, lengths[i]);
      shortest = std::min(shortest, lengths[i]);
    }
    EXPECT_LE(longest, previous_shortest) << "buckets are not runs of the length order";
    previous_shortest = shortest;
    bucketed += padded_work(batch);
  }
  for (int count : seen) ASSERT_EQ(count, 1);
  int64_t in_order = 0;
  for (std::size_t i = 0; i < lengths.size(); i += max_batch) {
    std::vector<int64_t> batch(std::min<std::size_t>(max_batch, lengths.size() - i));
    std::iota(batch.begin(), batch.end(), static_cast<int64_t>(i));
    in_order += padded_work(batch);
  }
  const int64_t useful = std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
  EXPECT_LT(bucketed - useful, (in_order - useful) / 4) << "bucketed padding " << bucketed - useful
                                                        << " vs in order " << in_order - useful;
}

}  // namespace
}  // namespace seqk_test
