// The LSTM layer (torch.nn.LSTM's cell) on the CPU: RecurrentLayer with
// gates i, f, g, o (seqk/recurrent_layer.h), under the LSTM's own names.
//
//   w_ih (4H, D), w_hh (4H, H), b_ih (4H), b_hh (4H); row blocks in gate
//   order i, f, g, o:  i = σ(x·W_iiᵀ + b_ii + h·W_hiᵀ + b_hi), likewise f, o;
//   g = tanh(...);  c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t).
#pragma once

#include <cstdint>

#include "seqk/recurrent_layer.h"

namespace seqk {

using LstmParams = RecurrentParams;
using LstmGrads = RecurrentGrads;
using LstmForwardArgs = RecurrentForwardArgs;
using LstmBackwardArgs = RecurrentBackwardArgs;
using LstmSaved = RecurrentSaved;

class LstmLayer : public RecurrentLayer {
 public:
  LstmLayer(int64_t input_size, int64_t hidden_size) : RecurrentLayer(CellKind::kLstm, input_size, hidden_size) {}
};

}  // namespace seqk
