// One LSTM time step of backward, fused, going from the last step to the
// first: dh_t = dy_t (+ dh_n at the last step) + dG_{t+1}·W_hh for a block of
// UNITS hidden units and BATCH sequences, then the cell's backward for those
// units, which writes the pre-activation gate gradients dG_t (T, B, 4H; the
// weight-gradient GEMMs read them afterwards) and carries dc_{t-1}.
//
// W_hh is read transposed (H, 4H). Invocation (rows, slice) sums every
// SPLIT-th product of four units' rows for all BATCH sequences, so each
// gradient it loads serves four units and each weight BATCH sequences; the
// SPLIT partial sums are reduced in shared memory as a tree. Loops run about
// ceil(4H / SPLIT) * BATCH * 5 times per invocation; the host keeps that far
// below lavapipe's 65,535.
#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint UNITS = 8;  // 4 per row of invocations
layout(constant_id = 2) const uint SPLIT = 8;  // a power of two
layout(constant_id = 3) const uint BATCH = 1;
const uint SUMS = 4 * BATCH;  // per invocation: unit-major, then sequence
const uint kDepthStep = 4;
#include "split_reduce.glsl"

layout(std430, set = 0, binding = 0) readonly buffer WeightHHT { float w_hh_t[]; };  // (H, 4H)
layout(std430, set = 0, binding = 1) writeonly buffer GateGrads { float dgates[]; };  // (T, B, 4H): dG_t
// The same buffer again, for reading dG_{t+1}: a read-only binding lets the
// loads go through the read-only cache path.
layout(std430, set = 0, binding = 8) readonly buffer GateGradsNext { float dgates_next[]; };
layout(std430, set = 0, binding = 2) readonly buffer DY { float dy[]; };             // (T, B, H)
layout(std430, set = 0, binding = 3) readonly buffer DHN { float dh_n[]; };          // (B, H)
layout(std430, set = 0, binding = 4) buffer DC { float dc[]; };                      // (B, H): dc_t in, dc_{t-1} out
layout(std430, set = 0, binding = 5) readonly buffer Gates { float gates[]; };       // activated, (T, B, 4H)
layout(std430, set = 0, binding = 6) readonly buffer Cells { float cells[]; };       // c_t, (T, B, H)
layout(std430, set = 0, binding = 7) readonly buffer CPrev { float c_prev[]; };      // c0 or cells

layout(push_constant) uniform Step {
  uint hidden, batch;
  uint dgates_next_offset, dgates_offset, dy_offset, gates_offset, cells_offset, c_prev_offset;
  uint flags;  // 1: no step after this one (dG_{t+1} = 0); 2: add dh_n; 4: c_{t-1} = 0
} p;

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint unit0 = gl_WorkGroupID.x * UNITS;
  const uint batch0 = gl_WorkGroupID.y * BATCH;
  const uint H = p.hidden;

  // Recurrent gradient: invocation (row, slice) for units 4·row .. 4·row + 3.
  const uint slice = tid % SPLIT;
  const uint row = tid / SPLIT;
  float acc[SUMS];
  for (uint i = 0; i < SUMS; ++i) acc[i] = 0.0;
  if ((p.flags & 1u) == 0) {
    uint w_row[4];
    [[unroll]] for (uint j = 0; j < 4; ++j) w_row[j] = min(unit0 + 4 * row + j, H - 1) * 4 * H;  // past H: summed, never used
    // kDepthStep products per row in flight at once: their loads overlap.
    for (uint r0 = slice; r0 < 4 * H; r0 += kDepthStep * SPLIT) {
      float w[kDepthStep][4];
      [[unroll]] for (uint s = 0; s < kDepthStep; ++s) {
        const uint r = r0 + s * SPLIT;
        [[unroll]] for (uint j = 0; j < 4; ++j) w[s][j] = r < 4 * H ? w_hh_t[w_row[j] + r] : 0.0;
      }
      [[unroll]] for (uint s = 0; s < kDepthStep; ++s) {
        const uint r = min(r0 + s * SPLIT, 4 * H - 1);  // past 4H the weights are 0
        [[unroll]] for (uint b = 0; b < BATCH; ++b) {
          const float dg = batch0 + b < p.batch ? dgates_next[p.dgates_next_offset + (batch0 + b) * 4 * H + r] : 0.0;
          [[unroll]] for (uint j = 0; j < 4; ++j) acc[j * BATCH + b] = fma(w[s][j], dg, acc[j * BATCH + b]);
        }
      }
    }
  }
  reduce_over_slices(acc, row, slice);

  // Cell backward: invocation (unit, sequence).
  for (uint cell = tid; cell < UNITS * BATCH; cell += gl_WorkGroupSize.x) {
    const uint u = unit0 + cell % UNITS;
    const uint b = batch0 + cell / UNITS;
    if (u >= H || b >= p.batch) continue;
    float dh = dy[p.dy_offset + b * H + u];
    if ((p.flags & 2u) != 0) dh += dh_n[b * H + u];
    dh += reduced_sum(cell % UNITS / 4, cell % UNITS % 4 * BATCH + cell / UNITS);

    const uint base = p.gates_offset + b * 4 * H + u;
    const float i = gates[base];
    const float f = gates[base + H];
    const float g = gates[base + 2 * H];
    const float o = gates[base + 3 * H];
    const float c = cells[p.cells_offset + b * H + u];
    const float c_before = (p.flags & 4u) != 0 ? 0.0 : c_prev[p.c_prev_offset + b * H + u];
    const float tanh_c = tanh_stable(c);
    const float dc_t = dc[b * H + u] + dh * o * (1.0 - tanh_c * tanh_c);

    const uint grad = p.dgates_offset + b * 4 * H + u;
    dgates[grad] = dc_t * g * i * (1.0 - i);
    dgates[grad + H] = dc_t * c_before * f * (1.0 - f);
    dgates[grad + 2 * H] = dc_t * i * (1.0 - g * g);
    dgates[grad + 3 * H] = dh * tanh_c * o * (1.0 - o);
    dc[b * H + u] = dc_t * f;
  }
}
