// One time step of a recurrent layer (LSTM, GRU or vanilla RNN: the CELL
// specialization constant), fused: the recurrent product h_{t-1}·W_hhᵀ for a
// block of UNITS hidden units (all GATES gates) and BATCH sequences, then the
// cell update for those units. One dispatch per step; the states stay on the
// device.
//
// pre (T, B, G·H) already holds x_t·W_ihᵀ + biases (one GEMM for the whole
// sequence): b_ih + b_hh, except for the GRU, whose b_hh is added here on
// the hidden side (r scales its n part). Invocation (unit, slice) sums every
// SPLIT-th product of the unit's gate rows for all BATCH sequences, so each
// weight it loads serves BATCH sequences and each h value every gate; the
// SPLIT partial sums are reduced in shared memory. Loops run about
// ceil(H / SPLIT) * BATCH * 5 times per invocation; the host keeps that far
// below lavapipe's 65,535.
//
// The previous states are read through their own bindings (h0/c0, or the
// step before in y/cells), so the first step needs no copy.
#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#include "activations.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint UNITS = 8;
layout(constant_id = 2) const uint SPLIT = 8;   // a power of two
layout(constant_id = 3) const uint BATCH = 1;
layout(constant_id = 4) const uint CELL = 0;    // 0 LSTM, 1 GRU, 2 RNN tanh, 3 RNN relu
const uint GATES = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
const uint SLOTS = GATES == 1 ? 1 : 4;          // sums per sequence, a power of two
const uint SUMS = SLOTS * BATCH;                // per invocation: gate-major, then sequence
const uint kDepthStep = 4;
#include "split_reduce.glsl"

layout(std430, set = 0, binding = 0) readonly buffer WeightHH { float w_hh[]; };   // (G·H, H)
layout(std430, set = 0, binding = 1) readonly buffer Pre { float pre[]; };         // (T, B, G·H)
layout(std430, set = 0, binding = 2) readonly buffer HPrev { float h_prev[]; };    // h0 or y
layout(std430, set = 0, binding = 3) readonly buffer CPrev { float c_prev[]; };    // LSTM: c0 or cells
layout(std430, set = 0, binding = 4) writeonly buffer Y { float y[]; };            // (T, B, H)
layout(std430, set = 0, binding = 5) writeonly buffer Cells { float cells[]; };    // LSTM c_t; GRU hidden side of n
layout(std430, set = 0, binding = 6) writeonly buffer Gates { float gates[]; };    // activated, (T, B, G·H)
layout(std430, set = 0, binding = 7) readonly buffer HiddenBias { float b_hh[]; };  // GRU: (G·H)
// Padded sequences (flag 8): each sequence's length (as floats). With flag
// 16 every computed row also writes its states to h_last / c_last, so once
// the steps are done they hold each sequence's state after its own last
// step (padded or packed sequences end at different steps).
layout(std430, set = 0, binding = 8) readonly buffer Lengths { float lengths[]; };  // (B)
layout(std430, set = 0, binding = 9) writeonly buffer LastH { float h_last[]; };    // (B, H)
layout(std430, set = 0, binding = 10) writeonly buffer LastC { float c_last[]; };   // LSTM: (B, H)

layout(push_constant) uniform Step {
  uint hidden, batch;
  uint pre_offset, h_prev_offset, c_prev_offset, y_offset, cells_offset, gates_offset;
  uint flags;  // 1: h_{t-1} = 0; 2: c_{t-1} = 0; 4: save (activated gates, and c_t or n's hidden side);
               // 8: padded sequences: steps at or past a length are masked; 16: write h_last (c_last)
  uint step;   // t
} p;

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint slice = tid % SPLIT;
  const uint row = tid / SPLIT;  // unit within the block
  const uint unit = gl_WorkGroupID.x * UNITS + row;
  const uint batch0 = gl_WorkGroupID.y * BATCH;
  const uint H = p.hidden;

  float acc[SUMS];
  for (uint i = 0; i < SUMS; ++i) acc[i] = 0.0;
  if (unit < H && (p.flags & 1u) == 0) {
    // kDepthStep products per row in flight at once: their loads overlap.
    for (uint k0 = slice; k0 < H; k0 += kDepthStep * SPLIT) {
      float w[kDepthStep][4];  // GATES of them used
      [[unroll]] for (uint j = 0; j < kDepthStep; ++j) {
        const uint k = k0 + j * SPLIT;
        [[unroll]] for (uint gate = 0; gate < GATES; ++gate) w[j][gate] = k < H ? w_hh[(gate * H + unit) * H + k] : 0.0;
      }
      [[unroll]] for (uint j = 0; j < kDepthStep; ++j) {
        const uint k = min(k0 + j * SPLIT, H - 1);  // past H the weights are 0
        [[unroll]] for (uint b = 0; b < BATCH; ++b) {
          const float h = batch0 + b < p.batch ? h_prev[p.h_prev_offset + (batch0 + b) * H + k] : 0.0;
          [[unroll]] for (uint gate = 0; gate < GATES; ++gate) {
            acc[gate * BATCH + b] = fma(w[j][gate], h, acc[gate * BATCH + b]);
          }
        }
      }
    }
  }
  reduce_over_slices(acc, row, slice);

  // Cell update: invocation (unit, sequence).
  for (uint cell = tid; cell < UNITS * BATCH; cell += gl_WorkGroupSize.x) {
    const uint r = cell % UNITS, b = cell / UNITS;
    const uint u = gl_WorkGroupID.x * UNITS + r;
    const uint seq = batch0 + b;
    if (u >= H || seq >= p.batch) continue;
    float input_side[4], rec[4];  // GATES of them used
    for (uint gate = 0; gate < GATES; ++gate) {
      input_side[gate] = pre[p.pre_offset + seq * GATES * H + gate * H + u];
      rec[gate] = reduced_sum(r, gate * BATCH + b);
    }
    const uint y_index = p.y_offset + seq * H + u, state = seq * H + u;
    const uint saved = p.gates_offset + seq * GATES * H + u;
    const bool save = (p.flags & 4u) != 0;
    const bool padded = (p.flags & 8u) != 0;
    if (padded && float(p.step) >= lengths[seq]) {
      // Past the sequence's end: no output, the state stays as it was.
      y[y_index] = 0.0;
      if (CELL == 0 && save) cells[p.cells_offset + state] = (p.flags & 2u) != 0 ? 0.0 : c_prev[p.c_prev_offset + state];
      continue;
    }
    const bool last_states = (p.flags & 16u) != 0;
    float h_out;
    if (CELL == 0) {
      const float i = sigmoid(input_side[0] + rec[0]);
      const float f = sigmoid(input_side[1] + rec[1]);
      const float g = tanh_stable(input_side[2] + rec[2]);
      const float o = sigmoid(input_side[3] + rec[3]);
      const float c_before = (p.flags & 2u) != 0 ? 0.0 : c_prev[p.c_prev_offset + state];
      const float c = fma(f, c_before, i * g);
      cells[p.cells_offset + state] = c;
      if (last_states) c_last[state] = c;
      h_out = o * tanh_stable(c);
      if (save) {
        gates[saved] = i;
        gates[saved + H] = f;
        gates[saved + 2 * H] = g;
        gates[saved + 3 * H] = o;
      }
    } else if (CELL == 1) {
      const float r_gate = sigmoid(input_side[0] + rec[0] + b_hh[u]);
      const float z = sigmoid(input_side[1] + rec[1] + b_hh[H + u]);
      const float hn = rec[2] + b_hh[2 * H + u];
      const float n = tanh_stable(fma(r_gate, hn, input_side[2]));
      const float h_before = (p.flags & 1u) != 0 ? 0.0 : h_prev[p.h_prev_offset + state];
      h_out = fma(z, h_before - n, n);
      if (save) {
        gates[saved] = r_gate;
        gates[saved + H] = z;
        gates[saved + 2 * H] = n;
        cells[p.cells_offset + state] = hn;
      }
    } else {
      const float z = input_side[0] + rec[0];
      h_out = CELL == 3 ? max(z, 0.0) : tanh_stable(z);
      if (save) gates[saved] = h_out;
    }
    y[y_index] = h_out;
    if (last_states) h_last[state] = h_out;
  }
}
