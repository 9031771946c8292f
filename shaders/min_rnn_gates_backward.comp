// The min-RNNs' gates backward (seqk/min_rnn.h): from the linear scan's
// gradients da (of its coefficient) and db (of its input), and the gates
// recomputed from the pre-activations k the forward kept, the gradients of k,
//   minGRU:  dz = db ⊙ h̃ − da,  dh̃ = db ⊙ z,  dk_z = dz ⊙ z(1 − z)
//   minLSTM: with u, a = σ(u) and ā = 1 − a = σ(−u) as in the forward,
//            du = (da − db ⊙ h̃) ⊙ a ⊙ ā,  dk_f = du ⊙ σ(−k_f),
//            dk_i = −du ⊙ σ(−k_i),  dh̃ = db ⊙ ā.
// One (row, unit) per invocation, as in min_rnn_gates_forward.comp.
#version 450
#extension GL_GOOGLE_include_directive : require

#include "activations.glsl"
#include "min_rnn_gates.glsl"

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint GATES = 2;  // 2: minGRU (z, h̃); 3: minLSTM (f, i, h̃)

layout(std430, set = 0, binding = 0) readonly buffer Pre { float pre[]; };     // (rows, G·H)
layout(std430, set = 0, binding = 1) readonly buffer DCoef { float da[]; };    // (rows, H)
layout(std430, set = 0, binding = 2) readonly buffer DInput { float db[]; };   // (rows, H)
layout(std430, set = 0, binding = 3) writeonly buffer DPre { float dpre[]; };  // (rows, G·H)

layout(push_constant) uniform Args {
  uint count;  // rows·H
  uint hidden;
} p;

void main() {
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (i >= p.count) return;
  const uint row = i / p.hidden, unit = i - row * p.hidden;
  const uint k = row * GATES * p.hidden + unit;
  const uint last = k + (GATES - 1) * p.hidden;  // the candidate h̃
  const float candidate = pre[last];
  if (GATES == 2) {
    const float z = sigmoid(pre[k]);
    dpre[k] = (db[i] * candidate - da[i]) * z * (1.0 - z);
    dpre[last] = db[i] * z;
  } else {
    const float k_f = pre[k], k_i = pre[k + p.hidden];
    const float u = min_lstm_log_ratio(k_f, k_i), a = sigmoid(u), a_rest = sigmoid(-u);
    const float du = (da[i] - db[i] * candidate) * a * a_rest;
    dpre[k] = du * sigmoid(-k_f);
    dpre[k + p.hidden] = -du * sigmoid(-k_i);
    dpre[last] = db[i] * a_rest;
  }
}
