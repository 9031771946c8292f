// Seq2seq attention's backward, the part local to a decoder row r = (b, t),
// one workgroup per row:
//   dα_i = dcontext_r · h_i,  de_i = α_i (dα_i − Σ_j α_j dα_j)   (i < length)
//   dquery_r = Σ_i de_i · key_i                  (dot, general: this is ds)
//   dquery_r = Σ_i de_i · v ⊙ (1 − u_i²),  dv_r = Σ_i de_i · u_i,
//   u_i = tanh(query_r + key_i)                  (additive: the gradient of
//                                                 W_1·s; dv_r is row r's share)
// de goes to a scratch buffer for the sums pass (positions past the length
// are left unwritten: nothing reads them).
// Loops per invocation: ⌈S/G⌉·(Dh + 2) for de, log2(G), ⌈K/G⌉·(S + 1).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"
#include "seq2seq_attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
#include "workgroup_reduce.glsl"

layout(std430, set = 0, binding = 5) readonly buffer Alpha { float alpha[]; };        // (B, Tq, S)
layout(std430, set = 0, binding = 6) readonly buffer DContext { float dcontext[]; };  // (B, Tq, Dh)
// Written and then read by other invocations of the workgroup.
layout(std430, set = 0, binding = 7) coherent buffer DScores { float de[]; };         // (B, Tq, S)
layout(std430, set = 0, binding = 8) writeonly buffer DQueries { float dqueries[]; }; // (B·Tq, K)
layout(std430, set = 0, binding = 9) writeonly buffer DVRows { float dv_rows[]; };    // additive: (B·Tq, A)

void main() {
  const uint row = p.first + gl_WorkGroupID.x, b = row / p.queries, n = valid(b);
  const uint lid = gl_LocalInvocationIndex, group = gl_WorkGroupSize.x;
  const uint S = p.source, K = p.key_size, Dh = p.value_size;
  float local = 0.0;
  for (uint i = lid; i < n; i += group) {
    float dalpha = 0.0;
    for (uint c = 0; c < Dh; ++c) dalpha += dcontext[row * Dh + c] * h[(b * S + i) * Dh + c];
    de[row * S + i] = dalpha;
    local += alpha[row * S + i] * dalpha;
  }
  const float weighted = workgroup_sum(local);
  for (uint i = lid; i < n; i += group) de[row * S + i] = alpha[row * S + i] * (de[row * S + i] - weighted);
  memoryBarrierBuffer();
  barrier();
  for (uint a = lid; a < K; a += group) {
    float dquery = 0.0, dv = 0.0;
    for (uint i = 0; i < n; ++i) {
      const float de_i = de[row * S + i];
      const uint key = (b * S + i) * K;
      if (additive()) {
        const float u = tanh_stable(queries[row * K + a] + keys[key + a]);
        dquery += de_i * v[a] * (1.0 - u * u);
        dv += de_i * u;
      } else {
        dquery += de_i * keys[key + a];
      }
    }
    dqueries[row * K + a] = dquery;
    if (additive()) dv_rows[row * K + a] = dv;
  }
}
