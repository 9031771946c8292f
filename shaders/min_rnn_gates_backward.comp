// The min-RNNs' gates backward (seqk/min_rnn.h): from the linear scan's
// gradients da (of its coefficient) and db (of its input) and the activated
// gates the forward kept, the gradients of the gates' pre-activations,
//   minGRU:  dz = db ⊙ h̃ − da,   dh̃ = db ⊙ z,   through σ: dz ⊙ z(1 − z)
//   minLSTM: with s = f + i and dî = db ⊙ h̃ (the gradient of i / s),
//            df = (da − dî) ⊙ i / s²,   di = (dî − da) ⊙ f / s²,
//            dh̃ = db ⊙ i / s,   df and di through σ as above.
// One (row, unit) per invocation, as in min_rnn_gates_forward.comp.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint GATES = 2;  // 2: minGRU (z, h̃); 3: minLSTM (f, i, h̃)

layout(std430, set = 0, binding = 0) readonly buffer Gates { float gates[]; };  // (rows, G·H), activated
layout(std430, set = 0, binding = 1) readonly buffer DCoef { float da[]; };     // (rows, H)
layout(std430, set = 0, binding = 2) readonly buffer DInput { float db[]; };    // (rows, H)
layout(std430, set = 0, binding = 3) writeonly buffer DPre { float dpre[]; };   // (rows, G·H)

layout(push_constant) uniform Args {
  uint count;  // rows·H
  uint hidden;
} p;

void main() {
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (i >= p.count) return;
  const uint row = i / p.hidden, unit = i - row * p.hidden;
  const uint g = row * GATES * p.hidden + unit;
  if (GATES == 2) {
    const float z = gates[g], candidate = gates[g + p.hidden];
    dpre[g] = (db[i] * candidate - da[i]) * z * (1.0 - z);
    dpre[g + p.hidden] = db[i] * z;
  } else {
    const float f = gates[g], input_gate = gates[g + p.hidden], candidate = gates[g + 2 * p.hidden];
    const float inv = 1.0 / (f + input_gate), inv2 = inv * inv;
    const float d_input_share = db[i] * candidate;
    const float df = (da[i] - d_input_share) * input_gate * inv2;
    const float di = (d_input_share - da[i]) * f * inv2;
    dpre[g] = df * f * (1.0 - f);
    dpre[g + p.hidden] = di * input_gate * (1.0 - input_gate);
    dpre[g + 2 * p.hidden] = db[i] * input_gate * inv;
  }
}
