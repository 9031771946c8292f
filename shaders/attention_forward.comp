// The tiled attention forward over keys [p.begin, p.end): a workgroup of
// BLOCK_Q invocations takes BLOCK_Q query rows of one head, one row each
// (its DH accumulators in registers), and walks the key blocks of BLOCK_K
// keys, staged with their values through shared memory, with an online
// softmax: running max m, sum l and unnormalised acc, rescaled by exp(m_old −
// m_new) as each block raises the max. The walk stops at the last key any of
// the block's rows sees (the masks are prefixes, longest for the last row).
//
// The state between dispatches (lavapipe's loop limit splits the keys) is
// out and lse themselves: (out, lse) is the softmax over the keys seen so
// far, which is (acc, m, l) = (out, lse, 1); a row that has seen no key has
// out 0 and lse −inf, i.e. l = 0.
// Loops per invocation: 2·DH, and per key block 1 + ⌈BLOCK_K·DH / BLOCK_Q⌉ +
// BLOCK_K·(DH + 1) + 2·BLOCK_K + DH·(BLOCK_K + 1) (attention.cc mirrors this).
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
layout(std430, set = 0, binding = 4) buffer Out { float out_rows[]; };                  // (B, H, Lq, DH)
layout(std430, set = 0, binding = 5) buffer Lse { float lse[]; };                       // (B, H, Lq)

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

  // The query pre-scaled, so that a score is one dot product.
  float q_row[DH], acc[DH];
  const bool resume = in_range && (p.flags & kFirst) == 0u;
  float m = resume ? lse[row] : negative_infinity();
  float l = m > negative_infinity() ? 1.0 : 0.0;
  for (uint d = 0; d < DH; ++d) {
    q_row[d] = in_range ? p.scale * q[row * DH + d] : 0.0;
    acc[d] = l > 0.0 ? out_rows[row * DH + d] : 0.0;
  }

  float s[BLOCK_K];
  for (uint j0 = p.begin; j0 < walk_end; j0 += BLOCK_K) {
    for (uint x = gl_LocalInvocationIndex; x < BLOCK_K * DH; x += BLOCK_Q) {
      const uint key = j0 + x / DH;
      const uint at = (head * p.keys + key) * DH + x % DH;
      k_tile[x] = key < walk_end ? k[at] : 0.0;
      v_tile[x] = key < walk_end ? v[at] : 0.0;
    }
    barrier();
    for (uint jj = 0; jj < BLOCK_K; ++jj) {
      float dot = 0.0;
      for (uint d = 0; d < DH; ++d) dot = fma(q_row[d], k_tile[jj * DH + d], dot);
      s[jj] = j0 + jj < visible ? dot : negative_infinity();
    }
    float block_max = negative_infinity();
    for (uint jj = 0; jj < BLOCK_K; ++jj) block_max = max(block_max, s[jj]);
    // Rows that see none of this block's keys keep their state (and never
    // compute exp(−inf − −inf)).
    if (block_max > negative_infinity()) {
      const float m_new = max(m, block_max);
      const float rescale = l > 0.0 ? exp(m - m_new) : 0.0;
      l *= rescale;
      for (uint jj = 0; jj < BLOCK_K; ++jj) {
        s[jj] = s[jj] > negative_infinity() ? exp(s[jj] - m_new) : 0.0;
        l += s[jj];
      }
      for (uint d = 0; d < DH; ++d) {
        float sum = acc[d] * rescale;
        for (uint jj = 0; jj < BLOCK_K; ++jj) sum = fma(s[jj], v_tile[jj * DH + d], sum);
        acc[d] = sum;
      }
      m = m_new;
    }
    barrier();
  }

  if (!in_range) return;
  const float inv = l > 0.0 ? 1.0 / l : 0.0;
  for (uint d = 0; d < DH; ++d) out_rows[row * DH + d] = acc[d] * inv;
  lse[row] = l > 0.0 ? m + log(l) : negative_infinity();
}
