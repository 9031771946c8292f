// minLSTM's u = log f − log i from the gates' pre-activations k_f and k_i,
// with log σ(k) = −softplus(−k): a = f / (f + i) = σ(u) then stays exact
// where f and i both underflow (the paper's log-space normalisation).
// softplus(x) = max(x, 0) + log(1 + e^-|x|) never overflows; GLSL has no
// log1p, and rounding 1 + e^-|x| costs at most 6e-8 absolute.
float min_lstm_log_ratio(float k_f, float k_i) {
  const float softplus_f = max(-k_f, 0.0) + log(1.0 + exp(-abs(k_f)));
  const float softplus_i = max(-k_i, 0.0) + log(1.0 + exp(-abs(k_i)));
  return softplus_i - softplus_f;
}
