// The naive attention backward's softmax: one workgroup per query row of one
// head turns dP (dO·Vᵀ from the GEMM, in place) into the scores' gradient
//   dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)),
// zero where P is (the masked keys, and rows that see no key). Rows of
// `dprobs` [0, Lq) against rows [p.probs_row, ...) of probs, one per
// workgroup along x from p.first.
// Loops per invocation: 2·⌈Lk / ROW_THREADS⌉ + log2(ROW_THREADS).
#version 450
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;  // a power of two
#include "attention_rows.glsl"

layout(std430, set = 0, binding = 0) readonly buffer Probs { float probs[]; };  // (B, H, Lq, Lk)
layout(std430, set = 0, binding = 1) buffer DProbs { float dprobs[]; };          // (Lq, Lk): one head

layout(push_constant) uniform Args {
  uint keys;  // Lk
  float scale;
  uint probs_row;  // the head's first row in probs
  uint first;      // the row of workgroup 0 (grids are split to fit the device)
} p;

void main() {
  const uint row = p.first + gl_WorkGroupID.x;
  const uint base = row * p.keys, probs_base = (p.probs_row + row) * p.keys;
  float local_dot = 0.0;
  for (uint j = gl_LocalInvocationIndex; j < p.keys; j += kRowThreads) {
    local_dot = fma(probs[probs_base + j], dprobs[base + j], local_dot);
  }
  const float dot = row_sum(local_dot);
  for (uint j = gl_LocalInvocationIndex; j < p.keys; j += kRowThreads) {
    dprobs[base + j] = p.scale * probs[probs_base + j] * (dprobs[base + j] - dot);
  }
}
