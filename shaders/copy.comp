// dst[dst_offset + i] = src[src_offset + i] for i < count, or = value when
// flags says fill (src is then bound but never read). One element per
// invocation over a 2-D grid of workgroups, so no invocation loops.
#version 450

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;

layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Dst { float dst[]; };

layout(push_constant) uniform Args {
  uint count;
  uint src_offset;
  uint dst_offset;
  uint fill;  // 1: write `value` instead of copying
  float value;
} p;

void main() {
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint i = group * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
  if (i >= p.count) return;
  dst[p.dst_offset + i] = p.fill != 0 ? p.value : src[p.src_offset + i];
}
