// Seq2seq attention's forward (seqk/vulkan_seq2seq_attention.h), one
// workgroup per decoder row r = (b, t): the scores of the row's valid
// source positions, their softmax, α (zero past the length, all zero for a
// length of 0) and the context Σ_i α_i h_i.
// Loops per invocation: ⌈S/G⌉·(K + 3) for the scores and the softmax,
// 2·log2(G) for the reductions, ⌈Dh/G⌉·(S + 1) for the context.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"
#include "seq2seq_attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
#include "workgroup_reduce.glsl"

layout(std430, set = 0, binding = 5) writeonly buffer Context { float context[]; };  // (B, Tq, Dh)
// Written and then read by other invocations of the workgroup (the context).
layout(std430, set = 0, binding = 6) coherent buffer Alpha { float alpha[]; };       // (B, Tq, S)

void main() {
  const uint row = p.first + gl_WorkGroupID.x, b = row / p.queries, n = valid(b);
  const uint lid = gl_LocalInvocationIndex, group = gl_WorkGroupSize.x;
  const uint S = p.source, K = p.key_size, Dh = p.value_size;
  // Each invocation keeps to its own positions i ≡ lid (mod G) until the context.
  float local_max = -3.0e38;  // finite: a row with no position subtracts it from nothing
  for (uint i = lid; i < n; i += group) {
    const float e = score(row * K, (b * S + i) * K);
    alpha[row * S + i] = e;
    local_max = max(local_max, e);
  }
  const float row_max = workgroup_max(local_max);
  float local_sum = 0.0;
  for (uint i = lid; i < n; i += group) {
    const float w = exp(alpha[row * S + i] - row_max);
    alpha[row * S + i] = w;
    local_sum += w;
  }
  // The max contributes e^0 = 1: the sum is >= 1 whenever n > 0.
  const float sum = workgroup_sum(local_sum);
  const float inverse = n > 0u ? 1.0 / sum : 0.0;
  for (uint i = lid; i < S; i += group) alpha[row * S + i] = i < n ? alpha[row * S + i] * inverse : 0.0;
  memoryBarrierBuffer();
  barrier();
  for (uint c = lid; c < Dh; c += group) {
    float acc = 0.0;
    for (uint i = 0; i < n; ++i) acc += alpha[row * S + i] * h[(b * S + i) * Dh + c];
    context[row * Dh + c] = acc;
  }
}
