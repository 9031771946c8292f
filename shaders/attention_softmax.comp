// The naive attention forward's softmax: one workgroup per query row turns
// the row's Lk scores (Q·Kᵀ from the GEMM) in place into the probabilities
// of scale·score over the row's visible keys, zero beyond; a row that sees
// no key becomes zeros. Rows [p.first, ...) of all B·H·Lq, one per workgroup
// along x.
// Loops per invocation: 3·⌈Lk / ROW_THREADS⌉ + 2·log2(ROW_THREADS).
#version 450
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;  // a power of two
#include "attention_rows.glsl"

const uint kCausal = 1u, kHasLengths = 2u;

layout(std430, set = 0, binding = 0) readonly buffer Lengths { float key_lengths[]; };  // (B)
layout(std430, set = 0, binding = 1) buffer Probs { float probs[]; };                   // (B, H, Lq, Lk)

layout(push_constant) uniform Args {
  uint heads, queries, keys;  // H, Lq, Lk
  float scale;
  uint first;  // the row of workgroup 0 (grids are split to fit the device)
  uint flags;
} p;

void main() {
  const uint row = p.first + gl_WorkGroupID.x;
  const uint i = row % p.queries, b = row / p.queries / p.heads;
  int end = (p.flags & kHasLengths) != 0u ? int(key_lengths[b]) : int(p.keys);
  if ((p.flags & kCausal) != 0u) end = min(end, int(i) + int(p.keys) - int(p.queries) + 1);
  const uint visible = uint(max(end, 0));
  const uint base = row * p.keys;

  float local_max = uintBitsToFloat(0xff800000u);  // −inf
  for (uint j = gl_LocalInvocationIndex; j < visible; j += kRowThreads) {
    local_max = max(local_max, p.scale * probs[base + j]);
  }
  const float m = row_max(local_max);
  float local_sum = 0.0;
  for (uint j = gl_LocalInvocationIndex; j < visible; j += kRowThreads) {
    const float e = exp(p.scale * probs[base + j] - m);
    probs[base + j] = e;
    local_sum += e;
  }
  // The sum is 0 exactly when visible is (the largest visible key adds exp(0)).
  const float sum = row_sum(local_sum);
  const float inv = visible > 0u ? 1.0 / sum : 0.0;
  for (uint j = gl_LocalInvocationIndex; j < p.keys; j += kRowThreads) {
    probs[base + j] = j < visible ? probs[base + j] * inv : 0.0;
  }
}
