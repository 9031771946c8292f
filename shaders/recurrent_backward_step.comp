// One time step of a recurrent layer's backward (LSTM, GRU or vanilla RNN:
// the CELL specialization constant), fused, going from the last step to the
// first: dh_t = dy_t (+ dh_n at the last step) + dG_{t+1}·W_hh for a block of
// UNITS hidden units and BATCH sequences, then the cell's backward for those
// units, which writes the pre-activation gate gradients dG_t (T, B, G·H; the
// weight-gradient GEMMs read them afterwards) and the carried gradient: the
// LSTM's dc_{t-1}, the GRU's dh_t·z_t (the part of dL/dh_{t-1} that skips the
// weights). The GRU's input and hidden sides differ in n (dn vs dn·r): the
// hidden side goes to its own buffer, which the recurrence reads.
//
// W_hh is read transposed (H, G·H). Invocation (rows, slice) sums every
// SPLIT-th product of four units' rows for all BATCH sequences, so each
// gradient it loads serves four units and each weight BATCH sequences; the
// SPLIT partial sums are reduced in shared memory. Loops run about
// ceil(G·H / SPLIT) * BATCH * 5 times per invocation; the host keeps that far
// below lavapipe's 65,535.
#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint UNITS = 8;  // 4 per row of invocations
layout(constant_id = 2) const uint SPLIT = 8;  // a power of two
layout(constant_id = 3) const uint BATCH = 1;
layout(constant_id = 4) const uint CELL = 0;   // 0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu
const uint GATES = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
const uint SUMS = 4 * BATCH;  // per invocation: unit-major, then sequence
const uint kDepthStep = 4;
#include "split_reduce.glsl"

layout(std430, set = 0, binding = 0) readonly buffer WeightHHT { float w_hh_t[]; };  // (H, G·H)
layout(std430, set = 0, binding = 1) writeonly buffer GateGrads { float dgates[]; };  // (T, B, G·H): dG_t, input side
// The hidden side's buffer again (the GRU's own, else the same), for reading
// dG_{t+1}: a read-only binding lets the loads go through the read-only cache path.
layout(std430, set = 0, binding = 8) readonly buffer GateGradsNext { float dgates_next[]; };
layout(std430, set = 0, binding = 9) writeonly buffer HiddenGateGrads { float dgates_hidden[]; };  // GRU
layout(std430, set = 0, binding = 2) readonly buffer DY { float dy[]; };             // (T, B, H)
layout(std430, set = 0, binding = 3) readonly buffer DHN { float dh_n[]; };          // (B, H)
layout(std430, set = 0, binding = 4) buffer Carry { float carry[]; };                // (B, H): in from t + 1, out to t - 1
layout(std430, set = 0, binding = 5) readonly buffer Gates { float gates[]; };       // activated, (T, B, G·H)
layout(std430, set = 0, binding = 6) readonly buffer Cells { float cells[]; };       // LSTM c_t; GRU hidden side of n
layout(std430, set = 0, binding = 7) readonly buffer Prev { float prev[]; };         // LSTM c_{t-1}, GRU h_{t-1}
layout(std430, set = 0, binding = 10) readonly buffer Lengths { float lengths[]; };  // padded sequences: (B)

layout(push_constant) uniform Step {
  uint hidden, batch;
  uint dgates_next_offset, dgates_offset, dy_offset, gates_offset, cells_offset, prev_offset;
  uint flags;  // 1: no step after this one (dG_{t+1} = 0); 2: dh_n is given; 4: the previous state is 0;
               // 8: padded sequences: steps at or past a length are masked, dh_n enters at the length's last step
  uint step;   // t
  uint next_batch;  // sequences running at t + 1 (a prefix of this step's); the others end at t
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
    [[unroll]] for (uint j = 0; j < 4; ++j) w_row[j] = min(unit0 + 4 * row + j, H - 1) * GATES * H;  // past H: summed, never used
    // kDepthStep products per row in flight at once: their loads overlap.
    for (uint r0 = slice; r0 < GATES * H; r0 += kDepthStep * SPLIT) {
      float w[kDepthStep][4];
      [[unroll]] for (uint s = 0; s < kDepthStep; ++s) {
        const uint r = r0 + s * SPLIT;
        [[unroll]] for (uint j = 0; j < 4; ++j) w[s][j] = r < GATES * H ? w_hh_t[w_row[j] + r] : 0.0;
      }
      [[unroll]] for (uint s = 0; s < kDepthStep; ++s) {
        const uint r = min(r0 + s * SPLIT, GATES * H - 1);  // past G·H the weights are 0
        [[unroll]] for (uint b = 0; b < BATCH; ++b) {
          const float dg = batch0 + b < p.next_batch ? dgates_next[p.dgates_next_offset + (batch0 + b) * GATES * H + r] : 0.0;
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
    const bool padded = (p.flags & 8u) != 0;
    if (padded && float(p.step) >= lengths[b]) {
      // Past the sequence's end nothing flowed forward; the carried
      // gradient passes through to its last step untouched.
      const uint grad = p.dgates_offset + b * GATES * H + u;
      for (uint gate = 0; gate < GATES; ++gate) {
        dgates[grad + gate * H] = 0.0;
        if (CELL == 1) dgates_hidden[grad + gate * H] = 0.0;
      }
      continue;
    }
    const bool sequence_ends = padded ? float(p.step + 1) == lengths[b] : b >= p.next_batch;
    float dh = dy[p.dy_offset + b * H + u];
    if ((p.flags & 2u) != 0 && sequence_ends) dh += dh_n[b * H + u];
    dh += reduced_sum(cell % UNITS / 4, cell % UNITS % 4 * BATCH + cell / UNITS);

    const uint base = p.gates_offset + b * GATES * H + u, state = b * H + u;
    const uint grad = p.dgates_offset + b * GATES * H + u;
    const float before = (p.flags & 4u) != 0 ? 0.0 : prev[p.prev_offset + state];
    if (CELL == 0) {
      const float i = gates[base];
      const float f = gates[base + H];
      const float g = gates[base + 2 * H];
      const float o = gates[base + 3 * H];
      const float tanh_c = tanh_stable(cells[p.cells_offset + state]);
      const float dc_t = carry[state] + dh * o * (1.0 - tanh_c * tanh_c);
      dgates[grad] = dc_t * g * i * (1.0 - i);
      dgates[grad + H] = dc_t * before * f * (1.0 - f);
      dgates[grad + 2 * H] = dc_t * i * (1.0 - g * g);
      dgates[grad + 3 * H] = dh * tanh_c * o * (1.0 - o);
      carry[state] = dc_t * f;
    } else if (CELL == 1) {
      dh += carry[state];
      const float r_gate = gates[base];
      const float z = gates[base + H];
      const float n = gates[base + 2 * H];
      const float dn = dh * (1.0 - z) * (1.0 - n * n);
      const float dz = dh * (before - n) * z * (1.0 - z);
      const float dr = dn * cells[p.cells_offset + state] * r_gate * (1.0 - r_gate);
      dgates[grad] = dr;
      dgates[grad + H] = dz;
      dgates[grad + 2 * H] = dn;
      dgates_hidden[grad] = dr;
      dgates_hidden[grad + H] = dz;
      dgates_hidden[grad + 2 * H] = dn * r_gate;
      carry[state] = dh * z;
    } else {
      const float h = gates[base];
      dgates[grad] = dh * (CELL == 3 ? (h > 0.0 ? 1.0 : 0.0) : 1.0 - h * h);
    }
  }
}
