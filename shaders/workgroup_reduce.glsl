// Sums and maxima over the invocations of a workgroup through shared
// memory (a tree of log2(size) steps), so no subgroup size is assumed. The
// workgroup size must be a power of two; every invocation must call, with
// uniform control flow. Loops: log2(size).
shared float reduction[gl_WorkGroupSize.x];

float workgroup_sum(float x) {
  const uint lid = gl_LocalInvocationIndex;
  barrier();  // an earlier reduction has read its result
  reduction[lid] = x;
  barrier();
  for (uint width = gl_WorkGroupSize.x / 2u; width > 0u; width /= 2u) {
    if (lid < width) reduction[lid] += reduction[lid + width];
    barrier();
  }
  return reduction[0];
}

float workgroup_max(float x) {
  const uint lid = gl_LocalInvocationIndex;
  barrier();
  reduction[lid] = x;
  barrier();
  for (uint width = gl_WorkGroupSize.x / 2u; width > 0u; width /= 2u) {
    if (lid < width) reduction[lid] = max(reduction[lid], reduction[lid + width]);
    barrier();
  }
  return reduction[0];
}
