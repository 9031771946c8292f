#include "seqk/sequence_batch.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "seqk/error.h"

namespace seqk {
namespace {

// Indices of `lengths`, longest first, ties in their original order.
std::vector<int64_t> longest_first(std::span<const int64_t> lengths) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  return order;
}

void check_lengths(std::span<const int64_t> lengths) {
  require(!lengths.empty(), "lengths is empty: a batch needs at least one sequence");
  for (std::size_t b = 0; b < lengths.size(); ++b)
    require(lengths[b] >= 1, "lengths[", b, "] = ", lengths[b], ": every sequence needs at least one step");
}

// Packed row of (step t, packed position p) -> padded row t·B + original index.
void check_padded(const PackedLayout& layout, const ConstView& padded, const ConstView& packed, const char* what) {
  require(padded.rank() == 3 && padded.dim(0) >= layout.steps() && padded.dim(1) == layout.batch(), what,
          ": padded must be (T >= ", layout.steps(), ", B = ", layout.batch(), ", F), got ", padded.shape_string());
  require_shape(packed, "packed", {layout.rows(), padded.dim(2)});
  require(padded.contiguous(), "padded must be contiguous (row-major)");
}

}  // namespace

PackedLayout packed_layout(std::span<const int64_t> lengths) {
  check_lengths(lengths);
  PackedLayout layout;
  layout.sorted_indices = longest_first(lengths);
  const int64_t steps = lengths[layout.sorted_indices[0]];
  layout.step_offsets.assign(1, 0);
  for (int64_t t = 0; t < steps; ++t) {
    // Sorted longest first: the sequences running at step t are a prefix.
    int64_t running = 0;
    while (running < layout.batch() && lengths[layout.sorted_indices[running]] > t) ++running;
    layout.batch_sizes.push_back(running);
    layout.step_offsets.push_back(layout.step_offsets.back() + running);
  }
  return layout;
}

void pack(const PackedLayout& layout, ConstView padded, View packed) {
  check_padded(layout, padded, packed, "pack");
  const int64_t width = padded.dim(2), batch = layout.batch();
  for (int64_t t = 0; t < layout.steps(); ++t)
    for (int64_t p = 0; p < layout.batch_sizes[t]; ++p)
      std::memcpy(packed.data() + (layout.step_offsets[t] + p) * width,
                  padded.data() + (t * batch + layout.sorted_indices[p]) * width, width * sizeof(float));
}

void unpack(const PackedLayout& layout, ConstView packed, View padded) {
  check_padded(layout, padded, packed, "unpack");
  const int64_t width = padded.dim(2), batch = layout.batch();
  std::fill(padded.data(), padded.data() + padded.numel(), 0.0f);
  for (int64_t t = 0; t < layout.steps(); ++t)
    for (int64_t p = 0; p < layout.batch_sizes[t]; ++p)
      std::memcpy(padded.data() + (t * batch + layout.sorted_indices[p]) * width,
                  packed.data() + (layout.step_offsets[t] + p) * width, width * sizeof(float));
}

void sort_rows(const PackedLayout& layout, ConstView original, View sorted) {
  require(original.rank() == 2 && original.dim(0) == layout.batch(), "sort_rows: original must be (B = ",
          layout.batch(), ", F), got ", original.shape_string());
  require_shape(original, "original", {layout.batch(), original.dim(1)});
  require_shape(sorted, "sorted", {layout.batch(), original.dim(1)});
  const int64_t width = original.dim(1);
  for (int64_t p = 0; p < layout.batch(); ++p)
    std::memcpy(sorted.data() + p * width, original.data() + layout.sorted_indices[p] * width, width * sizeof(float));
}

void unsort_rows(const PackedLayout& layout, ConstView sorted, View original) {
  require(sorted.rank() == 2 && sorted.dim(0) == layout.batch(), "unsort_rows: sorted must be (B = ", layout.batch(),
          ", F), got ", sorted.shape_string());
  require_shape(sorted, "sorted", {layout.batch(), sorted.dim(1)});
  require_shape(original, "original", {layout.batch(), sorted.dim(1)});
  const int64_t width = sorted.dim(1);
  for (int64_t p = 0; p < layout.batch(); ++p)
    std::memcpy(original.data() + layout.sorted_indices[p] * width, sorted.data() + p * width, width * sizeof(float));
}

std::vector<std::vector<int64_t>> bucket_by_length(std::span<const int64_t> lengths, int64_t max_batch) {
  check_lengths(lengths);
  require(max_batch >= 1, "max_batch must be >= 1, got ", max_batch);
  const std::vector<int64_t> order = longest_first(lengths);
  std::vector<std::vector<int64_t>> batches;
  for (std::size_t i = 0; i < order.size(); i += static_cast<std::size_t>(max_batch)) {
    const std::size_t end = std::min(order.size(), i + static_cast<std::size_t>(max_batch));
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i), order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

}  // namespace seqk
