// What the selective-scan shaders share: the flags of their push constants
// and the per-step scalars of seqk/selective_scan.h,
//   δ = Δ (+ δ_bias, then softplus),  y = y'·silu(z).
// Needs activations.glsl (sigmoid) included first.
const uint kHasSkip = 1u;      // D given
const uint kHasGate = 2u;      // z given
const uint kHasBias = 4u;      // delta_bias given
const uint kSoftplus = 8u;     // delta_softplus

// log(1 + x) for x >= 0. GLSL has no log1p, and its log is only accurate to
// 2^-21 absolute near 1, which would be a large relative error for small x:
// up to x = 1 the series 2·atanh(s) = 2·(s + s³/3 + s⁵/5 + ...), s = x / (2 + x)
// <= 1/3, to fp32 precision (nine terms), written out so that lavapipe
// counts no loop iterations.
float log1p_nonneg(float x) {
  if (x > 1.0) return log(1.0 + x);
  const float s = x / (2.0 + x), q = s * s;
  float series = 1.0 / 17.0;
  series = fma(series, q, 1.0 / 15.0);
  series = fma(series, q, 1.0 / 13.0);
  series = fma(series, q, 1.0 / 11.0);
  series = fma(series, q, 1.0 / 9.0);
  series = fma(series, q, 1.0 / 7.0);
  series = fma(series, q, 1.0 / 5.0);
  series = fma(series, q, 1.0 / 3.0);
  series = fma(series, q, 1.0);
  return 2.0 * s * series;
}

// softplus(x) = x > 20 ? x : log1p(exp(x)), as on the CPU.
float softplus(float x) { return x > 20.0 ? x : log1p_nonneg(exp(x)); }

// δ from the raw Δ of channel d; `raw` gets Δ + δ_bias (softplus's argument).
float step_delta(float delta_in, float bias, uint flags, out float raw) {
  raw = (flags & kHasBias) != 0 ? delta_in + bias : delta_in;
  return (flags & kSoftplus) != 0 ? softplus(raw) : raw;
}

// dδ/dΔ: softplus' = sigmoid, 1 where softplus is the identity.
float delta_derivative(float raw, uint flags) {
  return (flags & kSoftplus) != 0 && raw <= 20.0 ? sigmoid(raw) : 1.0;
}

float silu(float z) { return z * sigmoid(z); }
float silu_derivative(float z) {
  const float s = sigmoid(z);
  return s * (1.0 + z * (1.0 - s));
}
