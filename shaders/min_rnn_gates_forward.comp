// The min-RNNs' gates (seqk/min_rnn.h), elementwise after the GEMM that
// gives their pre-activations k: the linear scan's coefficient a and input b,
//   minGRU:  z = σ(k_z),  a = 1 − z,  b = z ⊙ h̃
//   minLSTM: u = log f − log i (min_rnn_gates.glsl),
//            a = f / (f + i) = σ(u),  b = i / (f + i) ⊙ h̃ = σ(−u) ⊙ h̃
// One (row, unit) per invocation over a 2-D grid of workgroups (x is limited
// to 65,535 groups on many devices), so no invocation loops.
#version 450
#extension GL_GOOGLE_include_directive : require

#include "activations.glsl"
#include "min_rnn_gates.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint GATES = 2;  // 2: minGRU (z, h̃); 3: minLSTM (f, i, h̃)

layout(std430, set = 0, binding = 0) readonly buffer Pre { float pre[]; };   // (rows, G·H)
layout(std430, set = 0, binding = 1) writeonly buffer Coef { float a[]; };   // (rows, H)
layout(std430, set = 0, binding = 2) writeonly buffer Input { float b[]; };  // (rows, H)

layout(push_constant) uniform Args {
  uint count;  // rows·H
  uint hidden;
} p;

void main() {
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (i >= p.count) return;
  const uint row = i / p.hidden, unit = i - row * p.hidden;
  const uint k = row * GATES * p.hidden + unit;  // the first gate of this unit
  const float candidate = pre[k + (GATES - 1) * p.hidden];
  if (GATES == 2) {
    const float z = sigmoid(pre[k]);
    a[i] = 1.0 - z;
    b[i] = z * candidate;
  } else {
    const float u = min_lstm_log_ratio(pre[k], pre[k + p.hidden]);
    a[i] = sigmoid(u);
    b[i] = sigmoid(-u) * candidate;
  }
}
