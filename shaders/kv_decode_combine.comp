// Split-K decode, second pass: one invocation per output element (head, e)
// combines the head's chunk partials (max m_c, sum l_c, acc_c) in chunk
// order, against the largest max M:
//   out = Σ_c e^(m_c − M)·acc_c[e] / Σ_c e^(m_c − M)·l_c.
// Loops per invocation: 2·chunks.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer Partials { float partials[]; };  // (heads, chunks, dh + 2)
layout(std430, set = 0, binding = 1) writeonly buffer Out { float out_values[]; };    // (heads, dh)

layout(push_constant) uniform Args {
  uint head_size, chunks;
  uint first_head;  // head of workgroup row 0: grids are split to fit the device
} p;

void main() {
  const uint e = gl_GlobalInvocationID.x, head = p.first_head + gl_WorkGroupID.y, width = p.head_size + 2;
  if (e >= p.head_size) return;
  const uint base = head * p.chunks * width;
  float top = uintBitsToFloat(0xff800000u);  // −inf
  for (uint c = 0; c < p.chunks; ++c) top = max(top, partials[base + c * width]);
  float total = 0.0, acc = 0.0;
  for (uint c = 0; c < p.chunks; ++c) {
    const uint at = base + c * width;
    const float rescale = exp(partials[at] - top);
    total += rescale * partials[at + 1];
    acc += rescale * partials[at + 2 + e];
  }
  // Every chunk holds at least one position, so total >= 1.
  out_values[head * p.head_size + e] = acc / total;
}
