// The tiled attention backward's dq over keys [p.begin, p.end): a workgroup
// of BLOCK_Q invocations takes BLOCK_Q query rows of one head, one row each
// (its DH gradient sums in registers), and walks the key blocks (keys and
// values staged through shared memory), recomputing each probability from
// the saved lse:
//   P_ij = exp(scale·q_i·k_j − lse_i),  dS_ij = P_ij·(dO_i·v_j − delta_i),
//   dq_i = scale·Σ_j dS_ij·k_j.
// A later dispatch of a split walk (lavapipe's loop limit) adds to dq.
// Loops per invocation: 2·DH, and per key block 1 + ⌈BLOCK_K·DH / BLOCK_Q⌉ +
// BLOCK_K·(2·DH + 1) (attention.cc mirrors this).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;  // BLOCK_Q
layout(constant_id = 1) const uint BLOCK_K = 16;
layout(constant_id = 2) const uint DH = 64;
const uint BLOCK_Q = gl_WorkGroupSize.x;

layout(std430, set = 0, binding = 0) readonly buffer Q { float q[]; };                  // (B, H, Lq, DH)
layout(std430, set = 0, binding = 1) readonly buffer K { float k[]; };                  // (B, H, Lk, DH)
layout(std430, set = 0, binding = 2) readonly buffer V { float v[]; };                  // (B, H, Lk, DH)
layout(std430, set = 0, binding = 3) readonly buffer Lengths { float key_lengths[]; };  // (B)
layout(std430, set = 0, binding = 4) readonly buffer Lse { float lse[]; };              // (B, H, Lq)
layout(std430, set = 0, binding = 5) readonly buffer DOut { float dout[]; };            // (B, H, Lq, DH)
layout(std430, set = 0, binding = 6) readonly buffer Delta { float delta[]; };          // (B, H, Lq)
layout(std430, set = 0, binding = 7) buffer DQ { float dq[]; };                         // (B, H, Lq, DH)

shared float k_tile[BLOCK_K * DH];
shared float v_tile[BLOCK_K * DH];

void main() {
  const uint head = gl_WorkGroupID.y;
  const uint first_row = gl_WorkGroupID.x * BLOCK_Q;
  const uint i = first_row + gl_LocalInvocationIndex;
  const bool in_range = i < p.queries;
  const uint row = head * p.queries + i;
  const uint key_length = (p.flags & kHasLengths) != 0u ? uint(key_lengths[head / p.heads]) : p.keys;
  const uint visible = in_range ? visible_keys(key_length, i) : 0u;
  const uint walk_end = min(p.end, visible_keys(key_length, min(first_row + BLOCK_Q, p.queries) - 1u));

  float q_row[DH], dout_row[DH], grad[DH];
  for (uint d = 0; d < DH; ++d) {
    q_row[d] = in_range ? p.scale * q[row * DH + d] : 0.0;
    dout_row[d] = in_range ? dout[row * DH + d] : 0.0;
    grad[d] = 0.0;
  }
  // A row that sees no key has lse −inf and is never used: visible is 0.
  const float row_lse = in_range ? lse[row] : 0.0;
  const float row_delta = in_range ? delta[row] : 0.0;

  for (uint j0 = p.begin; j0 < walk_end; j0 += BLOCK_K) {
    for (uint x = gl_LocalInvocationIndex; x < BLOCK_K * DH; x += BLOCK_Q) {
      const uint key = j0 + x / DH;
      const uint at = (head * p.keys + key) * DH + x % DH;
      k_tile[x] = key < walk_end ? k[at] : 0.0;
      v_tile[x] = key < walk_end ? v[at] : 0.0;
    }
    barrier();
    for (uint jj = 0; jj < BLOCK_K; ++jj) {
      if (j0 + jj >= visible) break;  // the masks are prefixes: so are all later keys
      float score = 0.0, dp = 0.0;
      for (uint d = 0; d < DH; ++d) {
        score = fma(q_row[d], k_tile[jj * DH + d], score);
        dp = fma(dout_row[d], v_tile[jj * DH + d], dp);
      }
      const float ds = exp(score - row_lse) * (dp - row_delta);
      for (uint d = 0; d < DH; ++d) grad[d] = fma(ds, k_tile[jj * DH + d], grad[d]);
    }
    barrier();
  }

  if (!in_range) return;
  const bool add = (p.flags & kFirst) == 0u;
  for (uint d = 0; d < DH; ++d) {
    const float value = p.scale * grad[d];
    dq[row * DH + d] = add ? dq[row * DH + d] + value : value;
  }
}
