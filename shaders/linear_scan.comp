// The diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + x_t over (T, C) rows,
// as a reduce-then-scan in chunks of CHUNK steps (push constant), one phase
// per dispatch:
//   0: each (chunk, channel) scans its chunk from zero: its end state and the
//      product of its coefficients;
//   1: each channel carries the state across the chunks in order;
//   2: each (chunk, channel) scans its chunk again from its carried-in state,
//      writing h;
//   3: (backward only) da = g ⊙ h_{t-1} and dh0 = a_1 ⊙ g_1, elementwise.
// With `reverse` the rows run from the last step to the first and the
// coefficient of step t is a_{t+1}: the backward's g_t = dh_t + a_{t+1} g_{t+1}.
// Loops run CHUNK (phases 0, 2) or T / CHUNK (phase 1) times per invocation;
// the host keeps both far below lavapipe's 65,535.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer Coef { float a[]; };      // (T, C)
layout(std430, set = 0, binding = 1) readonly buffer Input { float x[]; };     // (T, C): b, or dh
layout(std430, set = 0, binding = 2) buffer Output { float out_rows[]; };      // (T, C): h, or g (= db)
layout(std430, set = 0, binding = 3) buffer ChunkProduct { float chunk_a[]; }; // (K, C)
layout(std430, set = 0, binding = 4) buffer ChunkEnd { float chunk_e[]; };     // (K, C); phase 1 turns it into carries
layout(std430, set = 0, binding = 5) readonly buffer Init { float h0[]; };     // (C): the forward's h0
layout(std430, set = 0, binding = 6) readonly buffer States { float h[]; };    // phase 3: the forward's h (T, C)
layout(std430, set = 0, binding = 7) writeonly buffer DA { float da[]; };      // phase 3: (T, C)
layout(std430, set = 0, binding = 8) writeonly buffer DH0 { float dh0[]; };    // phase 3: (C)

layout(push_constant) uniform Args {
  uint steps, channels, chunk, chunks;
  uint phase;
  uint flags;  // 1: reverse (backward); 2: start from h0; 4: dh0 wanted; 8: h0 is h_0 for da (phase 3)
  uint first;  // chunk (phases 0, 2) or step (phase 3) of workgroup row 0: grids are split to fit the device
} p;

// Element index of row r (rows in scan order) and channel c.
uint at(uint r, uint c) {
  const uint t = (p.flags & 1u) != 0 ? p.steps - 1 - r : r;
  return t * p.channels + c;
}

// The coefficient of row r; row 0 of the backward has none (the state before it is 0).
float coef(uint r, uint c) {
  if ((p.flags & 1u) == 0) return a[r * p.channels + c];
  return r == 0 ? 0.0 : a[(p.steps - r) * p.channels + c];
}

void main() {
  const uint c = gl_GlobalInvocationID.x;
  if (c >= p.channels) return;
  if (p.phase == 0 || p.phase == 2) {
    const uint k = p.first + gl_WorkGroupID.y;
    const uint r0 = k * p.chunk, r1 = min(p.steps, r0 + p.chunk);
    float state = p.phase == 2 ? chunk_e[k * p.channels + c] : 0.0;
    float product = 1.0;
    for (uint r = r0; r < r1; ++r) {
      const float coefficient = coef(r, c);
      state = fma(coefficient, state, x[at(r, c)]);
      if (p.phase == 0) {
        product *= coefficient;
      } else {
        out_rows[at(r, c)] = state;
      }
    }
    if (p.phase == 0) {
      chunk_a[k * p.channels + c] = product;
      chunk_e[k * p.channels + c] = state;
    }
  } else if (p.phase == 1) {
    // chunk_e[k] becomes the state entering chunk k.
    float carry = (p.flags & 2u) != 0 ? h0[c] : 0.0;
    for (uint k = 0; k < p.chunks; ++k) {
      const float end = chunk_e[k * p.channels + c];
      chunk_e[k * p.channels + c] = carry;
      carry = fma(chunk_a[k * p.channels + c], carry, end);
    }
  } else {
    // Phase 3: rows over y, channels over x; t in step order.
    const uint t = p.first + gl_WorkGroupID.y;
    const uint i = t * p.channels + c;
    const float h_before = t > 0 ? h[i - p.channels] : (p.flags & 8u) != 0 ? h0[c] : 0.0;
    da[i] = out_rows[i] * h_before;
    if (t == 0 && (p.flags & 4u) != 0) dh0[c] = a[c] * out_rows[c];
  }
}
