// The tiled attention backward's dk and dv over queries [p.begin, p.end): a
// workgroup of BLOCK_K invocations takes BLOCK_K keys of one head, one key
// each (its 2·DH gradient sums in registers), and walks the query blocks
// (queries, dO, lse and delta staged through shared memory) that can see
// them, recomputing each probability from the saved lse:
//   P_ij = exp(scale·q_i·k_j − lse_i),  dS_ij = P_ij·(dO_i·v_j − delta_i),
//   dv_j = Σ_i P_ij·dO_i,  dk_j = scale·Σ_i dS_ij·q_i.
// A later dispatch of a split walk (lavapipe's loop limit) adds to dk, dv.
// Loops per invocation: 2·DH, and per query block 1 + ⌈BLOCK_Q·DH / BLOCK_K⌉
// + BLOCK_Q·(2·DH + 1) (attention.cc mirrors this).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "attention.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;  // BLOCK_K
layout(constant_id = 1) const uint BLOCK_Q = 16;
layout(constant_id = 2) const uint DH = 64;
const uint BLOCK_K = gl_WorkGroupSize.x;

layout(std430, set = 0, binding = 0) readonly buffer Q { float q[]; };                  // (B, H, Lq, DH)
layout(std430, set = 0, binding = 1) readonly buffer K { float k[]; };                  // (B, H, Lk, DH)
layout(std430, set = 0, binding = 2) readonly buffer V { float v[]; };                  // (B, H, Lk, DH)
layout(std430, set = 0, binding = 3) readonly buffer Lengths { float key_lengths[]; };  // (B)
layout(std430, set = 0, binding = 4) readonly buffer Lse { float lse[]; };              // (B, H, Lq)
layout(std430, set = 0, binding = 5) readonly buffer DOut { float dout[]; };            // (B, H, Lq, DH)
layout(std430, set = 0, binding = 6) readonly buffer Delta { float delta[]; };          // (B, H, Lq)
layout(std430, set = 0, binding = 7) buffer DK { float dk[]; };                         // (B, H, Lk, DH)
layout(std430, set = 0, binding = 8) buffer DV { float dv[]; };                         // (B, H, Lk, DH)

shared float q_tile[BLOCK_Q * DH];
shared float dout_tile[BLOCK_Q * DH];
shared float lse_tile[BLOCK_Q];
shared float delta_tile[BLOCK_Q];

void main() {
  const uint head = gl_WorkGroupID.y;
  const uint first_key = gl_WorkGroupID.x * BLOCK_K;
  const uint j = first_key + gl_LocalInvocationIndex;
  const bool in_range = j < p.keys;
  const uint key_row = head * p.keys + j;
  const uint key_length = (p.flags & kHasLengths) != 0u ? uint(key_lengths[head / p.heads]) : p.keys;

  // Queries before walk_begin see none of the block's keys: with the causal
  // mask query i sees key j from i = j − (Lk − Lq) on; none sees a padded key.
  uint walk_begin = p.begin, walk_end = p.end;
  if ((p.flags & kCausal) != 0u && first_key + p.queries > p.keys) {
    walk_begin = max(walk_begin, first_key + p.queries - p.keys);
  }
  if (first_key >= key_length) walk_end = walk_begin;

  float k_row[DH], v_row[DH], dk_sum[DH], dv_sum[DH];
  for (uint d = 0; d < DH; ++d) {
    k_row[d] = in_range ? p.scale * k[key_row * DH + d] : 0.0;
    v_row[d] = in_range ? v[key_row * DH + d] : 0.0;
    dk_sum[d] = 0.0;
    dv_sum[d] = 0.0;
  }

  for (uint i0 = walk_begin; i0 < walk_end; i0 += BLOCK_Q) {
    for (uint x = gl_LocalInvocationIndex; x < BLOCK_Q * DH; x += BLOCK_K) {
      const uint query = i0 + x / DH;
      const uint at = (head * p.queries + query) * DH + x % DH;
      q_tile[x] = query < walk_end ? q[at] : 0.0;
      dout_tile[x] = query < walk_end ? dout[at] : 0.0;
      if (x % DH == 0u) {
        lse_tile[x / DH] = query < walk_end ? lse[head * p.queries + query] : 0.0;
        delta_tile[x / DH] = query < walk_end ? delta[head * p.queries + query] : 0.0;
      }
    }
    barrier();
    for (uint ii = 0; ii < BLOCK_Q; ++ii) {
      const uint i = i0 + ii;
      // Out-of-range rows and rows that see no key (lse −inf) have visible 0.
      if (!in_range || i >= walk_end || j >= visible_keys(key_length, i)) continue;
      float score = 0.0, dp = 0.0;
      for (uint d = 0; d < DH; ++d) {
        score = fma(k_row[d], q_tile[ii * DH + d], score);
        dp = fma(v_row[d], dout_tile[ii * DH + d], dp);
      }
      const float prob = exp(score - lse_tile[ii]);
      const float ds = prob * (dp - delta_tile[ii]);
      for (uint d = 0; d < DH; ++d) {
        dv_sum[d] = fma(prob, dout_tile[ii * DH + d], dv_sum[d]);
        dk_sum[d] = fma(ds, q_tile[ii * DH + d], dk_sum[d]);
      }
    }
    barrier();
  }

  if (!in_range) return;
  const bool add = (p.flags & kFirst) == 0u;
  for (uint d = 0; d < DH; ++d) {
    const uint at = key_row * DH + d;
    const float dk_value = p.scale * dk_sum[d];
    dk[at] = add ? dk[at] + dk_value : dk_value;
    dv[at] = add ? dv[at] + dv_sum[d] : dv_sum[d];
  }
}
