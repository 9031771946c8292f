// Seq2seq attention's backward, the gradients summed over decoder rows, one
// invocation per output element, each sum in a fixed order (no atomics):
//   mode 0, dh (B, S, Dh):   Σ_t α_{t,i} dcontext_t (+ Σ_t de_{t,i} s_t for dot)
//   mode 1, dkeys (B, S, K): Σ_t de_{t,i} s_t (general) or
//                            Σ_t de_{t,i} v ⊙ (1 − tanh(query_t + key_i)²) (additive)
//   mode 2, dv (A):          Σ_r dv_rows[r] over the B·Tq decoder rows
// zero at positions past the length; added to `out` with kAccumulate.
// Loops per invocation: Tq (modes 0, 1) or B·Tq (mode 2).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"
#include "seq2seq_attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 5) readonly buffer Alpha { float alpha[]; };        // (B, Tq, S)
layout(std430, set = 0, binding = 6) readonly buffer DContext { float dcontext[]; };  // (B, Tq, Dh)
layout(std430, set = 0, binding = 7) readonly buffer DScores { float de[]; };         // (B, Tq, S)
layout(std430, set = 0, binding = 8) readonly buffer DVRows { float dv_rows[]; };     // additive: (B·Tq, A)
layout(std430, set = 0, binding = 9) buffer Out { float out_grad[]; };                // dh, dkeys or dv

void main() {
  const uint e = p.first + gl_GlobalInvocationID.x;
  const uint S = p.source, K = p.key_size, Dh = p.value_size, Tq = p.queries;
  const uint width = p.mode == 0u ? Dh : K;  // of a (B, S, ·) output
  const uint count = p.mode == 2u ? K : p.batch * S * width;
  if (e >= count) return;
  float acc = 0.0;
  if (p.mode == 2u) {
    for (uint r = 0; r < p.batch * Tq; ++r) acc += dv_rows[r * K + e];
  } else {
    const uint c = e % width, i = (e / width) % S, b = e / (width * S);
    if (i < valid(b)) {
      for (uint t = 0; t < Tq; ++t) {
        const uint row = b * Tq + t;
        const float de_i = de[row * S + i];
        if (p.mode == 0u) {
          acc += alpha[row * S + i] * dcontext[row * Dh + c];
          if ((p.flags & kDot) != 0u) acc += de_i * queries[row * K + c];
        } else if (additive()) {
          acc += de_i * additive_slope(row * K, (b * S + i) * K, c);
        } else {
          acc += de_i * queries[row * K + c];
        }
      }
    }
  }
  out_grad[e] = (p.flags & kAccumulate) != 0u ? out_grad[e] + acc : acc;
}
