// Gate activations written so that no input overflows to NaN: exp() of a
// large argument gives +inf, and 1 / (1 + inf) = 0, 1 - 2 / (inf + 1) = 1.
float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }
float tanh_stable(float x) { return 1.0 - 2.0 / (exp(2.0 * x) + 1.0); }
