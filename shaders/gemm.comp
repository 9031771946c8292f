// C (M, N) = A (M, K) · Bᵀ (+ bias), all row-major, B given as (N, K).
//
// One TILE x TILE workgroup per TILE x TILE block of C; A and B tiles are
// staged through shared memory, so each loaded element is used TILE times.
// TILE and the workgroup size are specialization constants (the host sets
// local_size_x = local_size_y = TILE); shapes are push constants. Out-of-range
// loads read zeros, so M, N, K need not be multiples of TILE. The K loop runs
// ceil(K / TILE) times per invocation, far below lavapipe's 65,535 limit.
#version 450

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z = 1) in;
layout(constant_id = 2) const uint TILE = 16;

layout(std430, set = 0, binding = 0) readonly buffer BufA { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer BufB { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer BufC { float c[]; };
layout(std430, set = 0, binding = 3) readonly buffer BufBias { float bias[]; };

layout(push_constant) uniform Shape {
  uint m;
  uint n;
  uint k;
  uint has_bias;
} p;

shared float tile_a[TILE * TILE];  // [row in block][k in tile]
shared float tile_b[TILE * TILE];  // [col in block][k in tile]

void main() {
  const uint tx = gl_LocalInvocationID.x;
  const uint ty = gl_LocalInvocationID.y;
  const uint row = gl_WorkGroupID.y * TILE + ty;     // of C and A
  const uint col = gl_WorkGroupID.x * TILE + tx;     // of C
  const uint b_row = gl_WorkGroupID.x * TILE + ty;   // row of B this thread loads

  float acc = 0.0;
  for (uint k0 = 0; k0 < p.k; k0 += TILE) {
    const uint kk = k0 + tx;
    tile_a[ty * TILE + tx] = (row < p.m && kk < p.k) ? a[row * p.k + kk] : 0.0;
    tile_b[ty * TILE + tx] = (b_row < p.n && kk < p.k) ? b[b_row * p.k + kk] : 0.0;
    barrier();
    for (uint i = 0; i < TILE; ++i) acc += tile_a[ty * TILE + i] * tile_b[tx * TILE + i];
    barrier();
  }
  if (row < p.m && col < p.n) c[row * p.n + col] = acc + (p.has_bias != 0 ? bias[col] : 0.0);
}
