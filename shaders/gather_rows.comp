// Row copies between (rows, stride) matrices: dst[r][dst_col + j] (+)=
// src[index(r)][src_col + j] for j < width, where index(r) is r or, with
// flag 1, the row named by `indices` (floats holding row numbers, exact
// below 2^24). Covers a stack's reversal of sequences (a row permutation),
// the interleaving of two directions' outputs into one (rows, 2H) output and
// back, and adding one direction's input gradient to the other's (flag 2).
// One element per invocation; rows over y, in batches of the device's grid.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) buffer Dst { float dst[]; };
layout(std430, set = 0, binding = 2) readonly buffer Indices { float indices[]; };

layout(push_constant) uniform Args {
  uint rows, width, first_row;
  uint src_stride, src_col, dst_stride, dst_col;
  uint flags;  // 1: rows through `indices`; 2: add to dst
} p;

void main() {
  const uint j = gl_GlobalInvocationID.x;
  const uint r = p.first_row + gl_WorkGroupID.y;
  if (j >= p.width || r >= p.rows) return;
  const uint from = (p.flags & 1u) != 0 ? uint(indices[r]) : r;
  const float value = src[from * p.src_stride + p.src_col + j];
  const uint to = r * p.dst_stride + p.dst_col + j;
  dst[to] = (p.flags & 2u) != 0 ? dst[to] + value : value;
}
