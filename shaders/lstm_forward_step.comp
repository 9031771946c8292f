// One LSTM time step, fused: the recurrent product h_{t-1}·W_hhᵀ for a block
// of UNITS hidden units (all four gates) and BATCH sequences, then the cell
// update for those units. One dispatch per step; h and c stay on the device.
//
// pre (T, B, 4H) already holds x_t·W_ihᵀ + b_ih + b_hh (one GEMM for the whole
// sequence). Invocation (unit, slice) sums every SPLIT-th product of the
// unit's four gate rows for all BATCH sequences, so each weight it loads
// serves BATCH sequences and each h value four gates, and neighbouring
// invocations read neighbouring weights. The SPLIT partial sums are reduced
// in shared memory as a tree. Loops run about ceil(H / SPLIT) * BATCH * 5
// times per invocation; the host keeps that far below lavapipe's 65,535.
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
const uint SUMS = 4 * BATCH;  // per invocation: gate-major, then sequence
const uint kDepthStep = 4;
#include "split_reduce.glsl"

layout(std430, set = 0, binding = 0) readonly buffer WeightHH { float w_hh[]; };  // (4H, H)
layout(std430, set = 0, binding = 1) readonly buffer Pre { float pre[]; };        // (T, B, 4H)
layout(std430, set = 0, binding = 2) readonly buffer HPrev { float h_prev[]; };   // h0 or y
layout(std430, set = 0, binding = 3) readonly buffer CPrev { float c_prev[]; };   // c0 or cells
layout(std430, set = 0, binding = 4) writeonly buffer Y { float y[]; };           // (T, B, H)
layout(std430, set = 0, binding = 5) writeonly buffer Cells { float cells[]; };   // c_t
layout(std430, set = 0, binding = 6) writeonly buffer Gates { float gates[]; };   // activated, (T, B, 4H)

layout(push_constant) uniform Step {
  uint hidden, batch;
  uint pre_offset, h_prev_offset, c_prev_offset, y_offset, cells_offset, gates_offset;
  uint flags;  // 1: h_{t-1} = 0; 2: c_{t-1} = 0; 4: save the activated gates
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
      float w[kDepthStep][4];
      [[unroll]] for (uint j = 0; j < kDepthStep; ++j) {
        const uint k = k0 + j * SPLIT;
        [[unroll]] for (uint gate = 0; gate < 4; ++gate) w[j][gate] = k < H ? w_hh[(gate * H + unit) * H + k] : 0.0;
      }
      [[unroll]] for (uint j = 0; j < kDepthStep; ++j) {
        const uint k = min(k0 + j * SPLIT, H - 1);  // past H the weights are 0
        [[unroll]] for (uint b = 0; b < BATCH; ++b) {
          const float h = batch0 + b < p.batch ? h_prev[p.h_prev_offset + (batch0 + b) * H + k] : 0.0;
          [[unroll]] for (uint gate = 0; gate < 4; ++gate) {
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
    float z[4];
    for (uint gate = 0; gate < 4; ++gate) {
      z[gate] = pre[p.pre_offset + seq * 4 * H + gate * H + u] + reduced_sum(r, gate * BATCH + b);
    }
    const float i = sigmoid(z[0]);
    const float f = sigmoid(z[1]);
    const float g = tanh_stable(z[2]);
    const float o = sigmoid(z[3]);
    const float c_before = (p.flags & 2u) != 0 ? 0.0 : c_prev[p.c_prev_offset + seq * H + u];
    const float c = fma(f, c_before, i * g);
    cells[p.cells_offset + seq * H + u] = c;
    y[p.y_offset + seq * H + u] = o * tanh_stable(c);
    if ((p.flags & 4u) != 0) {
      const uint base = p.gates_offset + seq * 4 * H + u;
      gates[base] = i;
      gates[base + H] = f;
      gates[base + 2 * H] = g;
      gates[base + 3 * H] = o;
    }
  }
}
