// Sums partial results over the SPLIT invocations that share a row: each
// invocation (row, slice) holds SUMS partial sums in registers; after
// reduce_over_slices() (which every invocation of the workgroup must call),
// reduced_sum(row, i) is the total of sum i of `row`.
//
// The partials go to shared memory as [slice][row, sum] (rows padded by one
// word against bank conflicts); then every invocation takes one (row, sum)
// pair and a share of its slices, and where there are fewer pairs than
// invocations the shares are added as a tree. So the work is spread over the
// whole workgroup whether an invocation holds a few sums (batch 1: a deep
// split) or many (large batches: a shallow one). Needs SPLIT and SUMS (powers
// of two) defined before the #include.
const uint kThreads = gl_WorkGroupSize.x;
const uint kPairs = kThreads / SPLIT * SUMS;  // (row, sum) pairs
const uint kStride = kPairs + 1;
shared float partial[SPLIT * kStride];

void reduce_over_slices(float acc[SUMS], uint row, uint slice) {
  for (uint i = 0; i < SUMS; ++i) partial[slice * kStride + row * SUMS + i] = acc[i];
  barrier();
  const uint tid = gl_LocalInvocationIndex;
  if (kPairs >= kThreads) {
    // Each pair's total lands in slice 0's slot, which only its own invocation reads.
    for (uint pair = tid; pair < kPairs; pair += kThreads) {
      float sum = 0.0;
      for (uint s = 0; s < SPLIT; ++s) sum += partial[s * kStride + pair];
      partial[pair] = sum;
    }
  } else {
    const uint shares = kThreads / kPairs;  // a power of two, at most SPLIT
    const uint pair = tid % kPairs, share = tid / kPairs;
    float sum = 0.0;
    for (uint s = share; s < SPLIT; s += shares) sum += partial[s * kStride + pair];
    barrier();
    partial[share * kStride + pair] = sum;
    barrier();
    for (uint width = shares / 2; width > 0; width /= 2) {
      if (share < width) partial[share * kStride + pair] += partial[(share + width) * kStride + pair];
      barrier();
    }
  }
  barrier();
}

float reduced_sum(uint row, uint i) { return partial[row * SUMS + i]; }
