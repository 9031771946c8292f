// minGRU and minLSTM (seqk/min_rnn.h) on a Vulkan device: the CPU layer's
// parameters, shapes and results, with the sequence, the states and the
// gradients in device buffers.
//
// Two ways in, as for the recurrent layers (seqk/vulkan_recurrent.h):
//  - record_forward / record_backward take device Buffers and record onto a
//    Stream, so layers chain with nothing read back between them;
//  - forward / backward with the CPU layer's arguments (host views): they
//    upload, record, submit, wait and download.
//
// How it runs: one GEMM gives every step's gate pre-activations, an
// elementwise dispatch turns them into the coefficient a and input b of the
// linear scan h_t = a_t ⊙ h_{t-1} + b_t (seqk/vulkan_scan.h), and the scan
// gives y. Backward: the reverse scan (da, db, dh0), an elementwise dispatch
// back through the gates, then GEMMs for dx, dW and db. No step waits on
// the one before except inside the scan.
//
// A layer keeps scratch buffers between calls; use it from one thread at a
// time. Buffers given to record_* must outlive the stream's submit.
#pragma once

#include <cstdint>
#include <memory>

#include "seqk/min_rnn.h"
#include "seqk/vulkan.h"

namespace seqk::vk {

// Dense device buffers with the CPU layer's shapes; null where the CPU layer
// takes an empty view.
struct MinRnnForwardBuffers {
  int64_t steps = 0, batch = 0;  // T, B
  const Buffer* x = nullptr;     // (T, B, D)
  const Buffer* h0 = nullptr;    // (B, H); null: zeros
  Buffer* y = nullptr;           // (T, B, H): h_1 .. h_T
};

struct MinRnnBackwardBuffers {
  int64_t steps = 0, batch = 0;
  const Buffer *x = nullptr, *h0 = nullptr, *y = nullptr;  // as given to / made by the forward
  const Buffer* dy = nullptr;                              // (T, B, H)
  Buffer* dx = nullptr;                                    // (T, B, D); null: not wanted
  Buffer* dh0 = nullptr;                                   // (B, H); null: not wanted
};

struct MinRnnGradBuffers {
  Buffer *w = nullptr, *b = nullptr;  // (G·H, D), (G·H); overwritten
};

// What a training forward keeps on the device for backward, as the CPU
// layer does: the gates' pre-activations (T, B, G·H), from which the
// backward recomputes the gates, and the scan's coefficients (T, B, H).
class MinRnnSaved {
 public:
  int64_t steps() const { return steps_; }
  int64_t batch() const { return batch_; }

 private:
  friend class MinRnnLayer;
  MinRnnKind kind_ = MinRnnKind::kGru;
  int64_t steps_ = 0, batch_ = 0, input_size_ = 0, hidden_size_ = 0;
  std::shared_ptr<Buffer> pre_, coefficients_;
};

class MinRnnLayer {
 public:
  MinRnnLayer(Device& device, MinRnnKind kind, int64_t input_size, int64_t hidden_size);
  ~MinRnnLayer();
  MinRnnLayer(const MinRnnLayer&) = delete;
  MinRnnLayer& operator=(const MinRnnLayer&) = delete;

  MinRnnKind kind() const { return kind_; }
  int64_t gates() const { return kind_ == MinRnnKind::kGru ? 2 : 3; }
  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }
  Device& device() const { return device_; }

  // Uploads the parameters (the CPU layer's layout, checked as there).
  void set_parameters(const MinRnnParams& params);

  // Recorded on `stream`; nothing runs before stream.submit(). Every
  // argument is checked first: a call that throws records nothing.
  void record_forward(Stream& stream, const MinRnnForwardBuffers& args);
  void record_forward(Stream& stream, const MinRnnForwardBuffers& args, MinRnnSaved& saved);
  void record_backward(Stream& stream, const MinRnnBackwardBuffers& args, const MinRnnSaved& saved,
                       const MinRnnGradBuffers& grads);

  // The CPU layer's API on host views: upload, run, download.
  void forward(ConstView x, ConstView h0, View y, MinRnnSaved* saved = nullptr);
  void backward(ConstView x, ConstView h0, ConstView y, ConstView dy, const MinRnnSaved& saved, View dx, View dh0,
                const MinRnnGrads& grads);

  struct Impl;

 private:
  void record_forward_impl(Stream& stream, const MinRnnForwardBuffers& args, MinRnnSaved* saved);

  Device& device_;
  MinRnnKind kind_;
  int64_t input_size_, hidden_size_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seqk::vk
