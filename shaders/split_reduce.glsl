// Sums partial results over the SPLIT invocations that share a row: each
// invocation (row, slice) holds SUMS partial sums in registers; after
// reduce_over_slices() (which every invocation of the workgroup must call),
// reduced_sum(row, i) is the total of sum i of `row`. A tree in shared
// memory: log2(SPLIT) levels, each halving the width slices. Needs SPLIT
// (a power of two) and SUMS defined before the #include.
shared float partial[gl_WorkGroupSize.x * SUMS];  // [row][sum][slice]

void reduce_over_slices(float acc[SUMS], uint row, uint slice) {
  for (uint i = 0; i < SUMS; ++i) partial[(row * SUMS + i) * SPLIT + slice] = acc[i];
  barrier();
  for (uint width = SPLIT / 2; width > 0; width /= 2) {
    if (slice < width) {
      for (uint i = 0; i < SUMS; ++i) {
        partial[(row * SUMS + i) * SPLIT + slice] += partial[(row * SUMS + i) * SPLIT + slice + width];
      }
    }
    barrier();
  }
}

float reduced_sum(uint row, uint i) { return partial[(row * SUMS + i) * SPLIT]; }
