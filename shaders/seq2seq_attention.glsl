// What the seq2seq attention shaders share: the inputs at bindings 0-4, the
// push constants, the mask and the score.
//
// Every score compares the query of decoder row r = b·Tq + t, at
// queries[r·K ..], with the key of source position i of batch row b, at
// keys[(b·S + i)·K ..]. The host binds W_1·s (additive, from a GEMM) or s
// as the queries, and the projected keys, or h for dot scoring, as the keys.
// Needs activations.glsl included first.
layout(std430, set = 0, binding = 0) readonly buffer Queries { float queries[]; };  // (B·Tq, K)
layout(std430, set = 0, binding = 1) readonly buffer Keys { float keys[]; };        // (B, S, K)
layout(std430, set = 0, binding = 2) readonly buffer Values { float h[]; };         // (B, S, Dh)
layout(std430, set = 0, binding = 3) readonly buffer ScoreVector { float v[]; };    // additive: (A)
layout(std430, set = 0, binding = 4) readonly buffer Lengths { float lengths[]; };  // (B): whole numbers in [0, S]

const uint kAdditive = 1u;
const uint kDot = 2u;
const uint kAccumulate = 4u;  // sums: add to the output

layout(push_constant) uniform Args {
  uint batch, queries, source;  // B, Tq, S
  uint key_size, value_size;    // K (A, Ds or Dh), Dh
  uint first;                   // the dispatch's first row or element: grids are split to fit the device
  uint flags;
  uint mode;                    // sums: 0 dh, 1 dkeys, 2 dv
} p;

bool additive() { return (p.flags & kAdditive) != 0u; }

// Source positions [0, valid(b)) of batch row b are scored.
uint valid(uint b) { return uint(lengths[b]); }

// e of the query at offset `query` and the key at offset `key`. Loops: K.
float score(uint query, uint key) {
  float e = 0.0;
  if (additive()) {
    for (uint a = 0; a < p.key_size; ++a) e += v[a] * tanh_stable(queries[query + a] + keys[key + a]);
  } else {
    for (uint a = 0; a < p.key_size; ++a) e += queries[query + a] * keys[key + a];
  }
  return e;
}

// d tanh(q + k)/d(q + k) · v_a: what an additive score's gradient carries
// to component a of its query and of its key.
float additive_slope(uint query, uint key, uint a) {
  const float u = tanh_stable(queries[query + a] + keys[key + a]);
  return v[a] * (1.0 - u * u);
}
