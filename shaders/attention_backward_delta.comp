// The first pass of the tiled attention backward: delta_i = rowsum(dO_i ⊙
// O_i) for every query row (FlashAttention-2's D), which the dq and dk/dv
// passes need for every probability's gradient, dS = P ⊙ (dP − D).
// One invocation per row; loops per invocation: DH.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint DH = 64;

layout(std430, set = 0, binding = 0) readonly buffer Out { float out_rows[]; };  // (B, H, Lq, DH)
layout(std430, set = 0, binding = 1) readonly buffer DOut { float dout[]; };     // (B, H, Lq, DH)
layout(std430, set = 0, binding = 2) writeonly buffer Delta { float delta[]; };  // (B, H, Lq)

void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= p.queries) return;
  const uint row = gl_WorkGroupID.y * p.queries + i;
  float sum = 0.0;
  for (uint d = 0; d < DH; ++d) sum = fma(dout[row * DH + d], out_rows[row * DH + d], sum);
  delta[row] = sum;
}
