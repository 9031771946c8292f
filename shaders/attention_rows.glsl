// Reductions over one row of the naive form's (Lq, Lk) probabilities, which
// a workgroup of a power-of-two number of invocations shares: each holds a
// partial result, a tree in shared memory combines them (log2 of the
// workgroup size loop iterations), and every invocation gets the total. Needs
// no subgroup operations, so any subgroup size is fine. Every invocation of
// the workgroup must call them.
const uint kRowThreads = gl_WorkGroupSize.x;
shared float row_partial[kRowThreads];

float row_max(float value) {
  const uint tid = gl_LocalInvocationIndex;
  row_partial[tid] = value;
  barrier();
  for (uint width = kRowThreads / 2u; width > 0u; width /= 2u) {
    if (tid < width) row_partial[tid] = max(row_partial[tid], row_partial[tid + width]);
    barrier();
  }
  const float total = row_partial[0];
  barrier();  // before the next reduction overwrites row_partial
  return total;
}

float row_sum(float value) {
  const uint tid = gl_LocalInvocationIndex;
  row_partial[tid] = value;
  barrier();
  for (uint width = kRowThreads / 2u; width > 0u; width /= 2u) {
    if (tid < width) row_partial[tid] += row_partial[tid + width];
    barrier();
  }
  const float total = row_partial[0];
  barrier();
  return total;
}
