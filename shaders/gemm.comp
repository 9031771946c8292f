// C (M, N) = A (M, K) · Bᵀ (+ bias) (+ C), with B given as (N, K).
//
// Every operand is addressed as offset + row * row_stride + k * k_stride (push
// constants), so transposed operands, slices of a larger buffer and a
// broadcast (stride 0) need no copies. One workgroup computes a TILE x TILE
// block of C; each of its (TILE / THREAD_TILE)² invocations computes
// THREAD_TILE x THREAD_TILE elements of it in registers (rows and columns
// strided by TILE / THREAD_TILE, so neighbouring invocations read neighbouring
// shared-memory words and write neighbouring columns), from A and B tiles of
// depth DEPTH staged through shared memory. Out-of-range loads read zeros, so
// M, N, K need not be multiples of anything.
//
// The host splits K into passes (accumulating) so that one invocation never
// runs more loop iterations than lavapipe allows (see kernels/vulkan/gemm.cc).
#version 450
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint TILE = 64;
layout(constant_id = 2) const uint THREAD_TILE = 4;
layout(constant_id = 3) const uint DEPTH = 16;

layout(std430, set = 0, binding = 0) readonly buffer BufA { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer BufB { float b[]; };
layout(std430, set = 0, binding = 2) buffer BufC { float c[]; };
layout(std430, set = 0, binding = 3) readonly buffer BufBias { float bias[]; };

layout(push_constant) uniform Shape {
  uint m, n, k;
  uint a_offset, a_row_stride, a_k_stride;
  uint b_offset, b_row_stride, b_k_stride;
  uint c_offset, c_row_stride;
  uint flags;  // 1: add bias[col]; 2: add to C
} p;

const uint kThreadsPerEdge = TILE / THREAD_TILE;
const uint kThreads = kThreadsPerEdge * kThreadsPerEdge;

// [k][row] and [k][col], rows padded by a word so that staging a row-major
// operand (consecutive invocations: consecutive k) hits distinct banks.
const uint kTileStride = TILE + 1;
shared float tile_a[DEPTH * kTileStride];
shared float tile_b[DEPTH * kTileStride];

// Stages rows [first, first + TILE) x depths [k0, k0 + DEPTH) of an operand.
// Consecutive invocations walk the operand's unit-stride dimension, so the
// global loads coalesce whether the operand is row-major or transposed.
void stage(bool is_a, uint first, uint rows, uint k0, uint offset, uint row_stride, uint k_stride) {
  const bool rows_contiguous = row_stride == 1 && k_stride != 1;
  for (uint i = gl_LocalInvocationIndex; i < DEPTH * TILE; i += kThreads) {
    const uint r = rows_contiguous ? i % TILE : i / DEPTH;
    const uint kk = rows_contiguous ? i / TILE : i % DEPTH;
    const uint row = first + r;
    const uint depth = k0 + kk;
    float value = 0.0;
    if (row < rows && depth < p.k) {
      const uint index = offset + row * row_stride + depth * k_stride;
      value = is_a ? a[index] : b[index];
    }
    if (is_a) {
      tile_a[kk * kTileStride + r] = value;
    } else {
      tile_b[kk * kTileStride + r] = value;
    }
  }
}

void main() {
  const uint tx = gl_LocalInvocationIndex % kThreadsPerEdge;  // column group
  const uint ty = gl_LocalInvocationIndex / kThreadsPerEdge;  // row group
  const uint row0 = gl_WorkGroupID.y * TILE;
  const uint col0 = gl_WorkGroupID.x * TILE;

  float acc[THREAD_TILE * THREAD_TILE];
  [[unroll]] for (uint i = 0; i < THREAD_TILE * THREAD_TILE; ++i) acc[i] = 0.0;
  float a_reg[THREAD_TILE];
  float b_reg[THREAD_TILE];

  for (uint k0 = 0; k0 < p.k; k0 += DEPTH) {
    stage(true, row0, p.m, k0, p.a_offset, p.a_row_stride, p.a_k_stride);
    stage(false, col0, p.n, k0, p.b_offset, p.b_row_stride, p.b_k_stride);
    barrier();
    for (uint kk = 0; kk < DEPTH; ++kk) {
      [[unroll]] for (uint i = 0; i < THREAD_TILE; ++i) a_reg[i] = tile_a[kk * kTileStride + ty + i * kThreadsPerEdge];
      [[unroll]] for (uint j = 0; j < THREAD_TILE; ++j) b_reg[j] = tile_b[kk * kTileStride + tx + j * kThreadsPerEdge];
      [[unroll]] for (uint i = 0; i < THREAD_TILE; ++i) {
        [[unroll]] for (uint j = 0; j < THREAD_TILE; ++j) acc[i * THREAD_TILE + j] = fma(a_reg[i], b_reg[j], acc[i * THREAD_TILE + j]);
      }
    }
    barrier();
  }

  [[unroll]] for (uint i = 0; i < THREAD_TILE; ++i) {
    const uint row = row0 + ty + i * kThreadsPerEdge;
    if (row >= p.m) break;
    [[unroll]] for (uint j = 0; j < THREAD_TILE; ++j) {
      const uint col = col0 + tx + j * kThreadsPerEdge;
      if (col >= p.n) break;
      float value = acc[i * THREAD_TILE + j];
      if ((p.flags & 1u) != 0) value += bias[col];
      const uint index = p.c_offset + row * p.c_row_stride + col;
      if ((p.flags & 2u) != 0) value += c[index];
      c[index] = value;
    }
  }
}
