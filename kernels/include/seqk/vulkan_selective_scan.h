// The selective scan (S6) of seqk/selective_scan.h on a Vulkan device: the
// same math, layouts and optional inputs, every tensor a dense device Buffer,
// recorded on a Stream (nothing runs before stream.submit()).
//
// How it runs: one invocation per channel (b, d) carries its N state values
// (N a specialization constant) through the steps. The training forward
// keeps the state entering every chunk of steps, (B, D, chunks, N), never
// all (B, D, L, N) states; the backward takes the chunks from the last to the
// first, one dispatch each: it recomputes the chunk's states from its saved
// state into a scratch buffer holding that chunk only, then runs the chunk in
// reverse. The sums over channels (dB, dC) and over batch and time (dA, dD,
// dδ_bias) go through per-channel partial results reduced by further
// dispatches in a fixed order: no float atomics, the same bits every run.
// The backward's scratch is about 3·B·D·chunk·N floats (the chunk's states
// and its dB, dC terms), the size of the checkpoints when chunk ≈ √L.
//
// On a CPU device (lavapipe, whose shaders stop after 65,535 loop iterations)
// the forward is split into passes of as many steps as fit, and the chunk is
// chosen (or checked) to fit the backward's loops.
#pragma once

#include <cstdint>
#include <memory>

#include "seqk/vulkan.h"

namespace seqk::vk {

// Null means absent, as an empty view does for the CPU scan.
struct SelectiveScanBuffers {
  int64_t batch = 0, channels = 0, steps = 0, state = 0;  // B, D, L, N (N at most 256)
  const Buffer *u = nullptr, *delta = nullptr;            // (B, D, L)
  const Buffer* A = nullptr;                              // (D, N)
  const Buffer *B = nullptr, *C = nullptr;                // (B, N, L)
  const Buffer* D = nullptr;                              // (D) skip; optional
  const Buffer* z = nullptr;                              // (B, D, L) gate; optional
  const Buffer* delta_bias = nullptr;                     // (D); optional
  bool delta_softplus = false;
  const Buffer* h0 = nullptr;                             // (B, D, N); optional (zeros)
};

// Overwritten. Each gradient of an optional input must be given exactly when
// that input is; dh0 may be null (not wanted) either way.
struct SelectiveScanGradBuffers {
  Buffer *du = nullptr, *ddelta = nullptr;  // (B, D, L)
  Buffer* dA = nullptr;                     // (D, N)
  Buffer *dB = nullptr, *dC = nullptr;      // (B, N, L)
  Buffer* dD = nullptr;                     // (D)
  Buffer* dz = nullptr;                     // (B, D, L)
  Buffer* ddelta_bias = nullptr;            // (D)
  Buffer* dh0 = nullptr;                    // (B, D, N)
};

// What a training forward keeps on the device: the state entering every
// chunk of chunk_steps() steps, (B, D, chunks(), N).
class SelectiveScanSaved {
 public:
  int64_t chunk_steps() const { return chunk_steps_; }
  int64_t chunks() const { return chunks_; }
  const Buffer* states() const { return states_.get(); }  // null before a forward

 private:
  friend struct SelectiveScanSavedAccess;
  int64_t batch_ = 0, channels_ = 0, steps_ = 0, state_ = 0, chunk_steps_ = 0, chunks_ = 0;
  std::shared_ptr<Buffer> states_;
};

// y (B, D, L); h_last (B, D, N) or null. saved null for inference, else
// filled for the backward; chunk_steps 0: chosen (seqk's default chunk, or
// less where the device's loop budget needs it).
void selective_scan(Stream& stream, const SelectiveScanBuffers& in, Buffer& y, Buffer* h_last = nullptr,
                    SelectiveScanSaved* saved = nullptr, int64_t chunk_steps = 0);

// dy (B, D, L); dh_last (B, D, N) or null (zero). `in` exactly as given to
// the forward that filled `saved`.
void selective_scan_backward(Stream& stream, const SelectiveScanBuffers& in, const SelectiveScanSaved& saved,
                             const Buffer& dy, const Buffer* dh_last, const SelectiveScanGradBuffers& grads);

// One decoding step: u, delta, z (B, D); B, C (B, N); A, D, delta_bias and
// delta_softplus as above; h (B, D, N) in and out; y (B, D).
struct SelectiveScanStepBuffers {
  int64_t batch = 0, channels = 0, state = 0;  // B, D, N
  const Buffer *u = nullptr, *delta = nullptr;  // (B, D)
  const Buffer* A = nullptr;                    // (D, N)
  const Buffer *B = nullptr, *C = nullptr;      // (B, N)
  const Buffer* D = nullptr;                    // (D); optional
  const Buffer* z = nullptr;                    // (B, D); optional
  const Buffer* delta_bias = nullptr;           // (D); optional
  bool delta_softplus = false;
};
void selective_scan_step(Stream& stream, const SelectiveScanStepBuffers& in, Buffer& h, Buffer& y);

}  // namespace seqk::vk
