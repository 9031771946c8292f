// The recurrent layers (LSTM, GRU, vanilla RNN) on a Vulkan device: the CPU
// layer's parameters, shapes and results (seqk/recurrent_layer.h), with the
// sequence, the states and the gradients in device buffers. Full-length
// batches (no lengths or batch_sizes) for now.
//
// Two ways in:
//  - record(...) entry points take device Buffers and record onto a Stream,
//    so layers chain with nothing read back between them (a model keeps its
//    activations on the device and submits once per batch);
//  - forward/backward with the CPU layer's argument structs (host views):
//    they upload, record, submit, wait and download. Same results as the CPU
//    layer to fp32 rounding.
//
// How it runs: one GEMM gives x·W_ihᵀ + b for every step at once; then one
// fused dispatch per time step computes h_{t-1}·W_hhᵀ for a block of hidden
// units and applies the cell, so the states never leave the device. Backward
// runs one fused dispatch per step from the end (recurrent gradient + cell
// backward), then GEMMs for dx and the weight and bias gradients.
//
// A layer keeps scratch buffers between calls; use it from one thread at a
// time. Buffers given to record(...) must outlive the stream's submit.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "seqk/recurrent.h"
#include "seqk/recurrent_layer.h"
#include "seqk/vulkan.h"

namespace seqk::vk {

// Device-resident counterparts of RecurrentForwardArgs / RecurrentBackwardArgs /
// RecurrentGrads: dense buffers with exactly those shapes; null where the CPU
// struct takes an empty view. c0, c_n, dc_n, dc0 only for the LSTM.
struct RecurrentForwardBuffers {
  int64_t steps = 0, batch = 0;           // T, B
  const Buffer* x = nullptr;              // (T, B, D)
  Buffer* y = nullptr;                    // (T, B, H)
  const Buffer *h0 = nullptr, *c0 = nullptr;  // (B, H); null: zeros
  Buffer *h_n = nullptr, *c_n = nullptr;      // (B, H); null: not wanted
  std::span<const int64_t> lengths;           // padded sequences, as for the CPU layer (empty: all T)
  std::span<const int64_t> batch_sizes;       // packed: x (N, D), y (N, H), as for the CPU layer
};

struct RecurrentBackwardBuffers {
  int64_t steps = 0, batch = 0;
  const Buffer *x = nullptr, *y = nullptr, *h0 = nullptr, *c0 = nullptr;  // as given to / made by forward
  const Buffer* dy = nullptr;                                              // (T, B, H)
  const Buffer *dh_n = nullptr, *dc_n = nullptr;                           // (B, H); null: zero
  Buffer *dx = nullptr, *dh0 = nullptr, *dc0 = nullptr;                    // null: not wanted
  std::span<const int64_t> lengths, batch_sizes;                           // as given to forward
};

struct RecurrentGradBuffers {
  Buffer *w_ih = nullptr, *w_hh = nullptr, *b_ih = nullptr, *b_hh = nullptr;  // overwritten
};

// What a training forward keeps on the device for backward: the activated
// gates (T, B, G·H, PyTorch's gate order) and per step the LSTM's c_t or the
// GRU's hidden side of n (W_hn·h + b_hn).
class RecurrentSaved {
 public:
  int64_t steps() const { return steps_; }
  int64_t batch() const { return batch_; }

 private:
  friend class RecurrentLayer;
  CellKind cell_ = CellKind::kLstm;
  int64_t steps_ = 0, batch_ = 0, input_size_ = 0, hidden_size_ = 0;
  std::shared_ptr<Buffer> gates_, cells_;  // cells_: null for the RNN
};

class RecurrentLayer {
 public:
  RecurrentLayer(Device& device, CellKind cell, int64_t input_size, int64_t hidden_size);
  ~RecurrentLayer();
  RecurrentLayer(const RecurrentLayer&) = delete;
  RecurrentLayer& operator=(const RecurrentLayer&) = delete;

  CellKind cell() const { return cell_; }
  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  Device& device() const { return device_; }

  // Uploads the parameters (PyTorch layout, as for the CPU layer).
  void set_parameters(const RecurrentParams& params);

  // Recorded on `stream`; nothing runs before stream.submit().
  void record_forward(Stream& stream, const RecurrentForwardBuffers& args);
  void record_forward(Stream& stream, const RecurrentForwardBuffers& args, RecurrentSaved& saved);
  void record_backward(Stream& stream, const RecurrentBackwardBuffers& args, const RecurrentSaved& saved,
                       const RecurrentGradBuffers& grads);

  // The CPU layer's API on host views: upload, run, download.
  void forward(const RecurrentForwardArgs& args);
  void forward(const RecurrentForwardArgs& args, RecurrentSaved& saved);
  void backward(const RecurrentBackwardArgs& args, const RecurrentSaved& saved, const RecurrentGrads& grads);

  struct Impl;

 private:
  void record_forward_impl(Stream& stream, const RecurrentForwardBuffers& args, RecurrentSaved* saved);
  void forward_from_host(const RecurrentForwardArgs& args, RecurrentSaved* saved);

  Device& device_;
  CellKind cell_;
  int64_t input_size_, hidden_size_;
  std::unique_ptr<Impl> impl_;
};

class LstmLayer : public RecurrentLayer {
 public:
  LstmLayer(Device& device, int64_t input_size, int64_t hidden_size)
      : RecurrentLayer(device, CellKind::kLstm, input_size, hidden_size) {}
};

using LstmSaved = RecurrentSaved;
using LstmForwardBuffers = RecurrentForwardBuffers;
using LstmBackwardBuffers = RecurrentBackwardBuffers;
using LstmGradBuffers = RecurrentGradBuffers;

}  // namespace seqk::vk
