// The sums that finish the selective scan's backward, in a fixed order (no
// atomics), one invocation per output element:
//   mode 0, after each chunk's backward: dB and dC for the chunk's steps,
//     dB[b, n, t0 + i] = Σ_d partials[0, (b, d), n, i] (dC from partials[1]);
//   mode 1, at the end: dA[d, n] = Σ_b sums[b, d, n], and likewise dD[d] and
//     dδ_bias[d] from sums[b, d, N] and sums[b, d, N + 1].
// Loops per invocation: D (mode 0) or B (mode 1).
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer Terms { float terms[]; };  // partials or sums
layout(std430, set = 0, binding = 1) writeonly buffer Out0 { float out0[]; };   // dB, or dA
layout(std430, set = 0, binding = 2) writeonly buffer Out1 { float out1[]; };   // dC, or dD
layout(std430, set = 0, binding = 3) writeonly buffer Out2 { float out2[]; };   // -, or dδ_bias

const uint kWriteSkip = 1u;  // mode 1: dD wanted
const uint kWriteBias = 2u;  // mode 1: dδ_bias wanted

layout(push_constant) uniform Args {
  uint batch, channels, steps, state;  // B, D, L, N
  uint chunk, t0, len;                 // mode 0: the chunk's first step and length
  uint mode, flags;
  uint first;                          // output element of invocation 0: grids are split to fit the device
} p;

void reduce_chunk(uint e) {
  // e = (b, n, i) over the chunk's len steps.
  const uint i = e % p.len, n = (e / p.len) % p.state, b = e / (p.len * p.state);
  const uint half_terms = p.batch * p.channels * p.state * p.chunk;  // where the dC terms start
  float db = 0.0, dc = 0.0;
  for (uint d = 0; d < p.channels; ++d) {
    const uint at = ((b * p.channels + d) * p.state + n) * p.chunk + i;
    db += terms[at];
    dc += terms[half_terms + at];
  }
  const uint out_at = (b * p.state + n) * p.steps + p.t0 + i;
  out0[out_at] = db;
  out1[out_at] = dc;
}

void reduce_batch(uint e) {
  // e = (d, j), j < N + 2: column j of sums.
  const uint width = p.state + 2, j = e % width, d = e / width;
  float total = 0.0;
  for (uint b = 0; b < p.batch; ++b) total += terms[(b * p.channels + d) * width + j];
  if (j < p.state) {
    out0[d * p.state + j] = total;
  } else if (j == p.state) {
    if ((p.flags & kWriteSkip) != 0) out1[d] = total;
  } else if ((p.flags & kWriteBias) != 0) {
    out2[d] = total;
  }
}

void main() {
  const uint e = p.first + gl_GlobalInvocationID.x;
  if (p.mode == 0) {
    if (e < p.batch * p.state * p.len) reduce_chunk(e);
  } else if (e < p.channels * (p.state + 2)) {
    reduce_batch(e);
  }
}
