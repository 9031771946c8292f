// Batches of sequences of different lengths: packing padded sequences the way
// PyTorch's pack_padded_sequence does (for RecurrentForwardArgs::batch_sizes),
// unpacking them again, and grouping sequences into batches of similar
// length so that padding wastes little work.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "seqk/tensor.h"

namespace seqk {

// Where B sequences go when packed: sorted by length, longest first (ties
// keep their order), step t holding the batch_sizes[t] sequences still
// running, each at the same position in every step it runs in.
struct PackedLayout {
  std::vector<int64_t> batch_sizes;     // (T), T = the longest length
  std::vector<int64_t> sorted_indices;  // (B): position in the packed batch -> original sequence
  std::vector<int64_t> step_offsets;    // (T + 1): first packed row of each step; the last is N

  int64_t steps() const { return static_cast<int64_t>(batch_sizes.size()); }
  int64_t batch() const { return static_cast<int64_t>(sorted_indices.size()); }
  int64_t rows() const { return step_offsets.back(); }  // N = Σ lengths
};

// lengths: B ≥ 1 values, each ≥ 1.
PackedLayout packed_layout(std::span<const int64_t> lengths);

// padded (T', B, F) with T' ≥ layout.steps(), sequences in their original
// order -> packed (N, F). Positions past a sequence's length are not read.
void pack(const PackedLayout& layout, ConstView padded, View packed);
// packed (N, F) -> padded (T', B, F) in the original order; positions past a
// sequence's length are set to 0.
void unpack(const PackedLayout& layout, ConstView packed, View padded);
// Per-sequence rows (B, F), e.g. initial or final states: original order ->
// packed order, and back.
void sort_rows(const PackedLayout& layout, ConstView original, View sorted);
void unsort_rows(const PackedLayout& layout, ConstView sorted, View original);

// Groups sequences into batches of at most max_batch, each batch a run of
// the sequences sorted by length, so each holds similar lengths and padding
// it to its longest costs little. Returns the original indices of each
// batch's sequences, longest first; every sequence appears exactly once.
std::vector<std::vector<int64_t>> bucket_by_length(std::span<const int64_t> lengths, int64_t max_batch);

}  // namespace seqk
