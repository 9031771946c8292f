// The selective scan's backward over one chunk k of CHUNK steps (the
// forward's checkpoint spacing), one invocation per channel c = (b, d), the
// chunks dispatched from the last to the first. The invocation
//   1. recomputes the chunk's states h_t from the saved state entering it
//      and keeps them in `states` (only this chunk's: (B·D, CHUNK, N));
//   2. runs the chunk in reverse with g = dL/dh_t, carried between chunks in
//      `carry` (which holds dh0 after chunk 0):
//        dy'_t = dy_t·silu(z_t),   dz_t = dy_t·y'_t·silu'(z_t),
//        g_t   = a_{t+1} ⊙ g_{t+1} + dy'_t·C_t (+ dh_last at t = L),
//        du_t  = D·dy'_t + δ_t·Σ_n g_tn B_tn,
//        dδ_t  = Σ_n g_tn (A_n a_tn h_{t-1,n} + u_t B_tn),  ddelta_t = dδ_t·δ'(Δ_t),
//        dA_n += g_tn a_tn h_{t-1,n} δ_t,  dD += dy'_t u_t,  dδ_bias += ddelta_t.
// dB and dC are sums over the D channels of a batch row, so each invocation
// writes its own terms for the chunk to `partials` and a second dispatch
// (selective_scan_reduce.comp) adds them up in a fixed order; dA, dD and
// dδ_bias accumulate per channel in `sums` across the chunks, reduced over
// the batch at the end. No atomics: the results do not depend on scheduling.
// Loops per invocation: at most 3·CHUNK·(N + 1) + 5·N.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"
#include "selective_scan.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint N = 1;  // state values per channel

layout(std430, set = 0, binding = 0) readonly buffer U { float u[]; };              // (B, D, L)
layout(std430, set = 0, binding = 1) readonly buffer Delta { float delta[]; };      // (B, D, L)
layout(std430, set = 0, binding = 2) readonly buffer MatA { float A[]; };           // (D, N)
layout(std430, set = 0, binding = 3) readonly buffer MatB { float B_in[]; };        // (B, N, L)
layout(std430, set = 0, binding = 4) readonly buffer MatC { float C_in[]; };        // (B, N, L)
layout(std430, set = 0, binding = 5) readonly buffer Skip { float D_skip[]; };      // (D)
layout(std430, set = 0, binding = 6) readonly buffer Gate { float z[]; };           // (B, D, L)
layout(std430, set = 0, binding = 7) readonly buffer Bias { float delta_bias[]; };  // (D)
layout(std430, set = 0, binding = 8) readonly buffer GradOut { float dy[]; };       // (B, D, L)
layout(std430, set = 0, binding = 9) readonly buffer GradLast { float dh_last[]; }; // (B, D, N)
layout(std430, set = 0, binding = 10) readonly buffer Saved { float saved[]; };     // (B, D, chunks, N)
layout(std430, set = 0, binding = 11) buffer States { float states[]; };            // (B·D, CHUNK, N)
layout(std430, set = 0, binding = 12) buffer Carry { float carry[]; };              // (B, D, N): g
layout(std430, set = 0, binding = 13) buffer Sums { float sums[]; };                // (B, D, N + 2): dA, dD, dδ_bias
layout(std430, set = 0, binding = 14) writeonly buffer GradU { float du[]; };       // (B, D, L)
layout(std430, set = 0, binding = 15) writeonly buffer GradDelta { float ddelta[]; };  // (B, D, L)
layout(std430, set = 0, binding = 16) writeonly buffer GradGate { float dz[]; };    // (B, D, L)
layout(std430, set = 0, binding = 17) writeonly buffer Partials { float partials[]; };  // (2, B·D, N, CHUNK): dB, dC terms

const uint kLastChunk = 16u;  // the first dispatch: g starts from dh_last (or zero), the sums from zero
const uint kHasGradLast = 32u;

layout(push_constant) uniform Args {
  uint batch, channels, steps;  // B, D, L
  uint chunk, chunks;           // CHUNK, ⌈L / CHUNK⌉
  uint k;                       // this dispatch's chunk
  uint first;                   // channel of invocation 0: grids are split to fit the device
  uint flags;
} p;

float state_at(uint c, uint i, uint n) { return states[(c * p.chunk + i) * N + n]; }

void main() {
  const uint c = p.first + gl_GlobalInvocationID.x;
  if (c >= p.batch * p.channels) return;
  const uint b = c / p.channels, d = c % p.channels;
  const uint t0 = p.k * p.chunk, len = min(p.steps - t0, p.chunk);
  const uint channels_total = p.batch * p.channels;
  const float bias = (p.flags & kHasBias) != 0 ? delta_bias[d] : 0.0;
  const float skip = (p.flags & kHasSkip) != 0 ? D_skip[d] : 0.0;

  // 1. The chunk's states, from the state entering it.
  float h[N];
  for (uint n = 0; n < N; ++n) h[n] = saved[(c * p.chunks + p.k) * N + n];
  for (uint i = 0; i < len; ++i) {
    const uint x = c * p.steps + t0 + i;
    float raw;
    const float dt = step_delta(delta[x], bias, p.flags, raw);
    const float dt_u = dt * u[x];
    for (uint n = 0; n < N; ++n) {
      h[n] = fma(exp(dt * A[d * N + n]), h[n], dt_u * B_in[(b * N + n) * p.steps + t0 + i]);
      states[(c * p.chunk + i) * N + n] = h[n];
    }
  }

  // 2. The chunk in reverse.
  const bool last = (p.flags & kLastChunk) != 0;
  float g[N], dA[N];
  for (uint n = 0; n < N; ++n) {
    g[n] = last ? ((p.flags & kHasGradLast) != 0 ? dh_last[c * N + n] : 0.0) : carry[c * N + n];
    dA[n] = last ? 0.0 : sums[c * (N + 2) + n];
  }
  float dD = last ? 0.0 : sums[c * (N + 2) + N];
  float dbias = last ? 0.0 : sums[c * (N + 2) + N + 1];
  for (uint i = len; i-- > 0;) {
    const uint t = t0 + i, x = c * p.steps + t;
    float raw;
    const float dt = step_delta(delta[x], bias, p.flags, raw);
    const float u_t = u[x];
    float dy_t = dy[x];
    if ((p.flags & kHasGate) != 0) {
      float out_t = skip * u_t;  // y' before the gate
      for (uint n = 0; n < N; ++n) out_t = fma(C_in[(b * N + n) * p.steps + t], state_at(c, i, n), out_t);
      dz[x] = dy_t * out_t * silu_derivative(z[x]);
      dy_t *= silu(z[x]);
    }
    dD = fma(dy_t, u_t, dD);
    float du_sum = 0.0, ddt = 0.0;
    for (uint n = 0; n < N; ++n) {
      const uint bn = (b * N + n) * p.steps + t;
      const float a_n = A[d * N + n], decay = exp(dt * a_n), b_tn = B_in[bn];
      const float h_before = i > 0 ? state_at(c, i - 1, n) : saved[(c * p.chunks + p.k) * N + n];
      const float g_n = fma(dy_t, C_in[bn], g[n]);
      const float dh_decay = g_n * h_before * decay;  // dL/d(δ·A_n) through the decay
      partials[(c * N + n) * p.chunk + i] = g_n * dt * u_t;                             // dB term
      partials[((channels_total + c) * N + n) * p.chunk + i] = dy_t * state_at(c, i, n);  // dC term
      du_sum = fma(g_n, b_tn, du_sum);
      ddt += fma(dh_decay, a_n, g_n * u_t * b_tn);
      dA[n] = fma(dh_decay, dt, dA[n]);
      g[n] = g_n * decay;
    }
    du[x] = fma(skip, dy_t, dt * du_sum);
    const float ddelta_t = ddt * delta_derivative(raw, p.flags);
    ddelta[x] = ddelta_t;
    dbias += ddelta_t;
  }
  for (uint n = 0; n < N; ++n) {
    carry[c * N + n] = g[n];
    sums[c * (N + 2) + n] = dA[n];
  }
  sums[c * (N + 2) + N] = dD;
  sums[c * (N + 2) + N + 1] = dbias;
}
