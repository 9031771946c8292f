// Split-K decode, first pass: one workgroup per (chunk, head) scores the
// chunk's cached positions against the head's query and writes the chunk's
// partial result (max m, Σ e^(s − m), Σ e^(s − m)·v) to its slot of
// `partials` (heads, chunks, dh + 2); kv_decode_combine.comp finishes.
//   scores: invocation i takes positions i, i + T, ... (a dot over dh each);
//   max and sum: across the workgroup through shared memory (T a power of two);
//   Σ p·v: invocation i takes dims i, i + T, ..., so neighbours read
//   neighbouring values.
// Loops per invocation: ⌈CHUNK/T⌉·(dh + 2) + 2·log2(T) + ⌈dh/T⌉·(CHUNK + 1),
// checked against the device's budget by the host.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 1) const uint CHUNK = 256;  // positions per chunk

layout(std430, set = 0, binding = 0) readonly buffer Query { float q[]; };        // (heads, dh)
layout(std430, set = 0, binding = 1) readonly buffer Keys { float keys[]; };      // (heads, capacity, dh)
layout(std430, set = 0, binding = 2) readonly buffer Values { float values[]; };  // (heads, capacity, dh)
layout(std430, set = 0, binding = 3) writeonly buffer Partials { float partials[]; };

layout(push_constant) uniform Args {
  uint positions, capacity, head_size, chunks;  // positions: the cache's length
  uint first_head;  // head of workgroup row 0: grids are split to fit the device
  float scale;
} p;

const uint kThreads = gl_WorkGroupSize.x;
shared float scores[CHUNK];
shared float across[kThreads];

// The max (take_max) or sum of `value` over the workgroup, on every invocation.
float workgroup_reduce(float value, bool take_max) {
  const uint tid = gl_LocalInvocationID.x;
  across[tid] = value;
  barrier();
  for (uint width = kThreads / 2; width > 0; width /= 2) {
    if (tid < width) across[tid] = take_max ? max(across[tid], across[tid + width]) : across[tid] + across[tid + width];
    barrier();
  }
  const float total = across[0];
  barrier();  // before `across` is written again
  return total;
}

void main() {
  const uint tid = gl_LocalInvocationID.x, dh = p.head_size;
  const uint chunk = gl_WorkGroupID.x, head = p.first_head + gl_WorkGroupID.y;
  const uint first = chunk * CHUNK, count = min(CHUNK, p.positions - first);
  const uint q_at = head * dh, kv_at = (head * p.capacity + first) * dh;

  float local_max = uintBitsToFloat(0xff800000u);  // −inf
  for (uint j = tid; j < count; j += kThreads) {
    float dot = 0.0;
    for (uint e = 0; e < dh; ++e) dot += q[q_at + e] * keys[kv_at + j * dh + e];
    scores[j] = p.scale * dot;
    local_max = max(local_max, scores[j]);
  }
  const float chunk_max = workgroup_reduce(local_max, true);
  float local_sum = 0.0;
  for (uint j = tid; j < count; j += kThreads) {
    scores[j] = exp(scores[j] - chunk_max);
    local_sum += scores[j];
  }
  const float chunk_sum = workgroup_reduce(local_sum, false);  // its barriers publish every scores[j]

  const uint out_at = (head * p.chunks + chunk) * (dh + 2);
  for (uint e = tid; e < dh; e += kThreads) {
    float acc = 0.0;
    for (uint j = 0; j < count; ++j) acc += scores[j] * values[kv_at + j * dh + e];
    partials[out_at + 2 + e] = acc;
  }
  if (tid == 0) {
    partials[out_at] = chunk_max;
    partials[out_at + 1] = chunk_sum;
  }
}
