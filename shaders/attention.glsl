// What the attention shaders share (seqk/vulkan_attention.h): the push
// constants of the tiled form and the masks. Query i of batch row b sees the
// keys j < visible_keys(key_length[b], i), a prefix, as on the CPU
// (kernels/cpu/attention_shape.h).
const uint kCausal = 1u;      // bottom-right aligned causal mask
const uint kHasLengths = 2u;  // key_lengths given (binding `key_lengths`), else all Lk keys valid
const uint kFirst = 4u;       // the first dispatch of a split walk: no partial result to merge or add to

layout(push_constant) uniform Args {
  uint heads, queries, keys;  // H, Lq, Lk; gl_WorkGroupID.y is the head b·H + h
  float scale;
  uint begin, end;  // the keys (forward, dq) or queries (dk, dv) this dispatch walks
  uint flags;
} p;

uint visible_keys(uint key_length, uint i) {
  int end = int(key_length);
  if ((p.flags & kCausal) != 0u) end = min(end, int(i) + int(p.keys) - int(p.queries) + 1);
  return uint(max(end, 0));
}

float negative_infinity() { return uintBitsToFloat(0xff800000u); }
