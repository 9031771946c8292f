// The selective scan's forward (seqk/selective_scan.h) over steps [t0, t1):
// one invocation per channel c = (b, d) of the B·D, carrying its N state
// values (N a specialization constant, so the state can live in registers)
// through the steps in order:
//   h_t = exp(δ_t·A_d) ⊙ h_{t-1} + δ_t·u_t·B_t,   y_t = (C_t·h_t + D_d·u_t)·silu(z_t).
// The state enters from h0 (or zero) at t0 = 0, else from `state`, where
// every dispatch leaves it at t1: the host splits L into such passes to stay
// within lavapipe's loop limit, and a decode step is a pass of one step over
// (B, D, 1) and (B, N, 1) tensors. With kSave the state entering every chunk
// of CHUNK steps is kept for the backward.
// Loops per invocation: (t1 - t0)·(N + 1), N per chunk start saved, 2·N.
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
layout(std430, set = 0, binding = 8) readonly buffer Init { float h0[]; };          // (B, D, N)
layout(std430, set = 0, binding = 9) writeonly buffer Out { float y[]; };           // (B, D, L)
layout(std430, set = 0, binding = 10) buffer State { float state[]; };              // (B, D, N)
layout(std430, set = 0, binding = 11) writeonly buffer Saved { float saved[]; };    // (B, D, chunks, N)

const uint kFromH0 = 16u;     // t0 = 0 starts from h0 (else from zero)
const uint kFromState = 32u;  // start from `state` (a later pass, or a decode step)
const uint kSave = 64u;       // write the chunk-start states

layout(push_constant) uniform Args {
  uint batch, channels, steps;  // B, D, L
  uint chunk, chunks;           // CHUNK steps per saved state, ⌈L / CHUNK⌉
  uint t0, t1;                  // this pass's steps
  uint first;                   // channel of invocation 0: grids are split to fit the device
  uint flags;
} p;

void main() {
  const uint c = p.first + gl_GlobalInvocationID.x;
  if (c >= p.batch * p.channels) return;
  const uint b = c / p.channels, d = c % p.channels;
  float h[N];
  for (uint n = 0; n < N; ++n) {
    h[n] = (p.flags & kFromState) != 0 ? state[c * N + n] : (p.flags & kFromH0) != 0 ? h0[c * N + n] : 0.0;
  }
  const float bias = (p.flags & kHasBias) != 0 ? delta_bias[d] : 0.0;
  const float skip = (p.flags & kHasSkip) != 0 ? D_skip[d] : 0.0;
  for (uint t = p.t0; t < p.t1; ++t) {
    if ((p.flags & kSave) != 0 && t % p.chunk == 0) {
      for (uint n = 0; n < N; ++n) saved[(c * p.chunks + t / p.chunk) * N + n] = h[n];
    }
    const uint x = c * p.steps + t;
    float raw;
    const float dt = step_delta(delta[x], bias, p.flags, raw);
    const float dt_u = dt * u[x];
    float out_t = 0.0;
    for (uint n = 0; n < N; ++n) {
      const uint bn = (b * N + n) * p.steps + t;
      h[n] = fma(exp(dt * A[d * N + n]), h[n], dt_u * B_in[bn]);
      out_t = fma(C_in[bn], h[n], out_t);
    }
    out_t = fma(skip, u[x], out_t);
    y[x] = (p.flags & kHasGate) != 0 ? out_t * silu(z[x]) : out_t;
  }
  for (uint n = 0; n < N; ++n) state[c * N + n] = h[n];
}
