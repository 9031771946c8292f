// The recurrent cells the layers implement, in the formulation PyTorch and
// cuDNN use (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN), with their weights
// stacked gate by gate in PyTorch's order:
//   LSTM  gates i, f, g, o:  c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')
//   GRU   gates r, z, n:     n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)),
//                            h' = (1 − z) ⊙ n + z ⊙ h
//   RNN   one gate:          h' = act(W_ih·x + b_ih + W_hh·h + b_hh), act = tanh or relu
#pragma once

#include <cstdint>

namespace seqk {

enum class CellKind { kLstm, kGru, kRnnTanh, kRnnRelu };

// Rows of W_ih and W_hh per hidden unit: 4, 3, 1, 1.
constexpr int64_t gates_per_unit(CellKind cell) {
  return cell == CellKind::kLstm ? 4 : cell == CellKind::kGru ? 3 : 1;
}
// Only the LSTM carries a cell state c beside h.
constexpr bool has_cell_state(CellKind cell) { return cell == CellKind::kLstm; }

constexpr const char* to_string(CellKind cell) {
  switch (cell) {
    case CellKind::kLstm: return "lstm";
    case CellKind::kGru: return "gru";
    case CellKind::kRnnTanh: return "rnn_tanh";
    case CellKind::kRnnRelu: return "rnn_relu";
  }
  return "?";
}

}  // namespace seqk
