// The selective scan (seqk/selective_scan.h) for each SIMD target.
//
// The steps go in chunks. Each chunk's B and C are first transposed to
// (step, state) rows, padded with zeros to whole vectors, so a channel's
// update at one step is a few vector operations over its state; the state
// values run in groups of up to four vectors through all the chunk's steps,
// each group's share of C_t·h_t added into y_t. The padding lanes have A = 0
// and B = 0 and so stay 0. Threads split the B·D channels and meet at a
// barrier per chunk. The backward goes through the chunks from the last:
// each channel recomputes its chunk's states from the saved checkpoint, then
// runs the steps in reverse; each thread sums its channels' shares of dB and
// dC for the chunk, and the threads' sums are added after the barrier, in a
// fixed order, so results do not depend on timing.
#include "seqk/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "seqk/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/selective_scan.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/recurrent_cells-inl.h"

// Defined once: foreach_target.h includes this file again for every target.
#ifndef SEQK_CPU_SELECTIVE_SCAN_TENSORS_
#define SEQK_CPU_SELECTIVE_SCAN_TENSORS_
namespace seqk::detail {

// Checked arguments as raw pointers; optional ones are null.
struct SelectiveScanTensors {
  size_t batch, channels, steps, state, chunk, chunks;
  const float *u, *delta, *A, *B, *C, *D, *z, *delta_bias, *h0;
  bool softplus;
  float *y, *h_last, *checkpoints;  // forward; checkpoints null for inference
  const float *dy, *dh_last;        // backward, which reads the checkpoints
  float *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *ddelta_bias, *dh0;
};

struct SelectiveStepTensors {
  size_t batch, channels, state;
  const float *u, *delta, *A, *B, *C, *D, *z, *delta_bias;
  bool softplus;
  float *h, *y;
};

}  // namespace seqk::detail
#endif  // SEQK_CPU_SELECTIVE_SCAN_TENSORS_

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

namespace {

using Tag = hn::ScalableTag<float>;
using V = hn::Vec<Tag>;
using detail::SelectiveScanTensors;

// exp(δ·A) below this is 0 in fp32 anyway; Highway's Exp needs it above -104.
constexpr float kMinExponent = -87.0f;

size_t RoundUpToLanes(size_t n) { return hwy::RoundUpTo(n, hn::Lanes(Tag())); }

// Vectors per group: as many as keep the group's state, A and running sums
// in registers, dividing the padded state evenly.
size_t GroupVectors(size_t vectors) { return vectors % 4 == 0 ? 4 : vectors % 2 == 0 ? 2 : 1; }

V Softplus(Tag d, V x) {
  // Mamba's: x above 20 is its own softplus in fp32.
  const V threshold = hn::Set(d, 20.0f);
  const V small = hn::Log1p(d, hn::Exp(d, hn::Max(hn::Min(x, threshold), hn::Set(d, kMinExponent))));
  return hn::IfThenElse(hn::Gt(x, threshold), x, small);
}

// rows (count, width) -> padded rows (count, padded), zeros in the padding.
AlignedVector PadRows(const float* rows, size_t count, size_t width, size_t padded) {
  AlignedVector out(count * padded, 0.0f);
  if (rows)
    for (size_t r = 0; r < count; ++r) std::memcpy(&out[r * padded], rows + r * width, width * sizeof(float));
  return out;
}

void UnpadRows(const AlignedVector& padded_rows, size_t count, size_t width, size_t padded, float* rows) {
  for (size_t r = 0; r < count; ++r) std::memcpy(rows + r * width, &padded_rows[r * padded], width * sizeof(float));
}

// One channel's per-step values over one chunk, each padded to whole
// vectors (zeros beyond the chunk's steps).
struct ChannelSteps {
  explicit ChannelSteps(size_t chunk, size_t padded_state)
      : padded(RoundUpToLanes(chunk)),
        u(padded), raw(padded), delta(padded), delta_u(padded), z(padded), y(padded), dy(padded), sum_a(padded),
        sum_b(padded), states((chunk + 1) * padded_state), decays(chunk * padded_state) {}
  size_t padded;
  AlignedVector u, raw, delta, delta_u, z, y, dy, sum_a, sum_b;
  AlignedVector states;  // backward: h_{t0-1} .. h_{t0+len-1}, (len + 1, padded state)
  AlignedVector decays;  // backward: exp(δ_t·A), (len, padded state)
};

void LoadPadded(const float* from, size_t len, AlignedVector& to) {
  std::memcpy(to.data(), from, len * sizeof(float));
  std::fill(to.begin() + static_cast<ptrdiff_t>(len), to.end(), 0.0f);
}

// u, Δ (+ bias, softplus) -> δ and δ·u for steps [t0, t0 + len) of row `row`.
void PrepareSteps(const SelectiveScanTensors& s, size_t row, size_t t0, size_t len, ChannelSteps& c) {
  const Tag d;
  const size_t at = row * s.steps + t0, channel = row % s.channels;
  LoadPadded(s.u + at, len, c.u);
  LoadPadded(s.delta + at, len, c.raw);
  if (s.z) LoadPadded(s.z + at, len, c.z);
  const V bias = hn::Set(d, s.delta_bias ? s.delta_bias[channel] : 0.0f);
  for (size_t i = 0; i < c.padded; i += hn::Lanes(d)) {
    const V raw = hn::Add(hn::Load(d, &c.raw[i]), bias);
    hn::Store(raw, d, &c.raw[i]);
    const V delta = s.softplus ? Softplus(d, raw) : raw;
    hn::Store(delta, d, &c.delta[i]);
    hn::Store(hn::Mul(delta, hn::Load(d, &c.u[i])), d, &c.delta_u[i]);
  }
}

// The chunk's steps for one channel: h (its padded state) runs through them
// and y[t] gets C_t·h_t. With kRecord, the states (h_{t0-1} first) and the
// decays go to `c` for the backward.
template <size_t kGroup, bool kRecord>
void RunStates(const float* a, const float* bt, const float* ct, size_t padded_state, size_t len, float* h,
               ChannelSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  const V min_exponent = hn::Set(d, kMinExponent);
  for (size_t j = 0; j < padded_state; j += kGroup * lanes) {
    V state[kGroup], decay_rate[kGroup];
    for (size_t k = 0; k < kGroup; ++k) {
      state[k] = hn::Load(d, h + j + k * lanes);
      decay_rate[k] = hn::Load(d, a + j + k * lanes);
      if (kRecord) hn::Store(state[k], d, &c.states[j + k * lanes]);
    }
    for (size_t t = 0; t < len; ++t) {
      const V delta = hn::Set(d, c.delta[t]), delta_u = hn::Set(d, c.delta_u[t]);
      V y = hn::Zero(d);
      for (size_t k = 0; k < kGroup; ++k) {
        const size_t at = t * padded_state + j + k * lanes;
        const V decay = hn::Exp(d, hn::Max(hn::Mul(delta, decay_rate[k]), min_exponent));
        state[k] = hn::MulAdd(decay, state[k], hn::Mul(delta_u, hn::Load(d, bt + at)));
        y = hn::MulAdd(hn::Load(d, ct + at), state[k], y);
        if (kRecord) {
          hn::Store(decay, d, &c.decays[at]);
          hn::Store(state[k], d, &c.states[at + padded_state]);
        }
      }
      c.y[t] += hn::GetLane(hn::SumOfLanes(d, y));
    }
    for (size_t k = 0; k < kGroup; ++k) hn::Store(state[k], d, h + j + k * lanes);
  }
}

template <bool kRecord>
void RunStates(const float* a, const float* bt, const float* ct, size_t padded_state, size_t len, float* h,
               ChannelSteps& c) {
  std::fill(c.y.begin(), c.y.end(), 0.0f);
  switch (GroupVectors(padded_state / hn::Lanes(Tag()))) {
    case 4: return RunStates<4, kRecord>(a, bt, ct, padded_state, len, h, c);
    case 2: return RunStates<2, kRecord>(a, bt, ct, padded_state, len, h, c);
    default: return RunStates<1, kRecord>(a, bt, ct, padded_state, len, h, c);
  }
}

// c.y = C_t·h_t + D·u_t, the output before the gate.
void AddSkip(const SelectiveScanTensors& s, size_t channel, ChannelSteps& c) {
  const Tag d;
  const V skip = hn::Set(d, s.D ? s.D[channel] : 0.0f);
  for (size_t i = 0; i < c.padded; i += hn::Lanes(d))
    hn::Store(hn::MulAdd(skip, hn::Load(d, &c.u[i]), hn::Load(d, &c.y[i])), d, &c.y[i]);
}

// Steps [t0, t0 + len) of B or C, (B, N, L), as rows (b, step, padded state);
// the pool's threads take the (b, n) rows in turn.
void TransposeChunk(const SelectiveScanTensors& s, const float* from, size_t t0, size_t len, size_t padded_state,
                    float* to, int thread_index, int num_threads) {
  const size_t rows = s.batch * s.state;
  for (size_t r = rows * thread_index / num_threads; r < rows * (thread_index + 1) / num_threads; ++r) {
    const size_t b = r / s.state, n = r % s.state;
    const float* in = from + r * s.steps + t0;
    float* out = to + b * s.chunk * padded_state + n;
    for (size_t t = 0; t < len; ++t) out[t * padded_state] = in[t];
  }
}

// A thread's share of B·D channels: [first, last).
struct ChannelRange {
  size_t first, last;
};
ChannelRange ThreadChannels(size_t total, int thread_index, int num_threads) {
  return {total * thread_index / num_threads, total * (thread_index + 1) / num_threads};
}

}  // namespace

void SelectiveScanForward(const SelectiveScanTensors& s, ThreadPool* pool) {
  const size_t padded_state = RoundUpToLanes(s.state), rows = s.batch * s.channels;
  const AlignedVector a = PadRows(s.A, s.channels, s.state, padded_state);
  AlignedVector h = PadRows(s.h0, rows, s.state, padded_state);
  AlignedVector bt(s.batch * s.chunk * padded_state, 0.0f), ct(bt.size(), 0.0f);
  pool->run([&](int thread_index, int num_threads) {
    const Tag d;
    ChannelSteps steps(s.chunk, padded_state);
    const ChannelRange mine = ThreadChannels(rows, thread_index, num_threads);
    for (size_t chunk = 0; chunk < s.chunks; ++chunk) {
      const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0);
      TransposeChunk(s, s.B, t0, len, padded_state, bt.data(), thread_index, num_threads);
      TransposeChunk(s, s.C, t0, len, padded_state, ct.data(), thread_index, num_threads);
      pool->barrier();
      for (size_t row = mine.first; row < mine.last; ++row) {
        const size_t b = row / s.channels, channel = row % s.channels;
        float* state = &h[row * padded_state];
        if (s.checkpoints) std::memcpy(s.checkpoints + (row * s.chunks + chunk) * s.state, state, s.state * sizeof(float));
        PrepareSteps(s, row, t0, len, steps);
        const size_t bc = b * s.chunk * padded_state;
        RunStates<false>(&a[channel * padded_state], &bt[bc], &ct[bc], padded_state, len, state, steps);
        AddSkip(s, channel, steps);
        if (s.z)
          for (size_t i = 0; i < steps.padded; i += hn::Lanes(d)) {
            const V z = hn::Load(d, &steps.z[i]);
            hn::Store(hn::Mul(hn::Load(d, &steps.y[i]), hn::Mul(z, FastSigmoid(d, z))), d, &steps.y[i]);
          }
        std::memcpy(s.y + row * s.steps + t0, steps.y.data(), len * sizeof(float));
      }
      pool->barrier();  // bt and ct are rewritten next
    }
  });
  if (s.h_last) UnpadRows(h, rows, s.state, padded_state, s.h_last);
}

namespace {

// One group of the reverse steps: g_t = dy_t·C_t + exp(δ_{t+1}·A) ⊙ g_{t+1}
// (`carry` holds the second term), and from it this channel's shares of
// dB_t, dC_t (added into bt_grad, ct_grad), dA, and the sums over the state
// that δ_t and u_t need.
template <size_t kGroup>
void ReverseStates(const float* a, const float* bt, const float* ct, size_t padded_state, size_t len, float* carry,
                   float* da, float* bt_grad, float* ct_grad, ChannelSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  for (size_t j = 0; j < padded_state; j += kGroup * lanes) {
    V g_next[kGroup], decay_rate[kGroup], da_sum[kGroup];
    for (size_t k = 0; k < kGroup; ++k) {
      g_next[k] = hn::Load(d, carry + j + k * lanes);
      decay_rate[k] = hn::Load(d, a + j + k * lanes);
      da_sum[k] = hn::Zero(d);
    }
    for (size_t t = len; t-- > 0;) {
      const V dy = hn::Set(d, c.dy[t]), delta = hn::Set(d, c.delta[t]), delta_u = hn::Set(d, c.delta_u[t]);
      V sum_a = hn::Zero(d), sum_b = hn::Zero(d);
      for (size_t k = 0; k < kGroup; ++k) {
        const size_t at = t * padded_state + j + k * lanes;
        const V g = hn::MulAdd(dy, hn::Load(d, ct + at), g_next[k]);
        const V h = hn::Load(d, &c.states[at + padded_state]), h_prev = hn::Load(d, &c.states[at]);
        const V decay = hn::Load(d, &c.decays[at]);
        hn::Store(hn::MulAdd(dy, h, hn::Load(d, ct_grad + at)), d, ct_grad + at);
        hn::Store(hn::MulAdd(g, delta_u, hn::Load(d, bt_grad + at)), d, bt_grad + at);
        // d/dδ of exp(δ·A) ⊙ h_{t-1} is A ⊙ exp(δ·A) ⊙ h_{t-1}.
        const V through_decay = hn::Mul(hn::Mul(g, h_prev), decay);
        sum_a = hn::MulAdd(through_decay, decay_rate[k], sum_a);
        da_sum[k] = hn::MulAdd(through_decay, delta, da_sum[k]);
        sum_b = hn::MulAdd(g, hn::Load(d, bt + at), sum_b);
        g_next[k] = hn::Mul(g, decay);
      }
      c.sum_a[t] += hn::GetLane(hn::SumOfLanes(d, sum_a));
      c.sum_b[t] += hn::GetLane(hn::SumOfLanes(d, sum_b));
    }
    for (size_t k = 0; k < kGroup; ++k) {
      hn::Store(g_next[k], d, carry + j + k * lanes);
      hn::Store(hn::Add(hn::Load(d, da + j + k * lanes), da_sum[k]), d, da + j + k * lanes);
    }
  }
}

// A thread's gradient sums over its channels: dB and dC for the current
// chunk (b, step, padded state), dA (D, padded state), dD and dδ_bias (D).
struct ThreadGrads {
  AlignedVector bt, ct, da, skip, bias;
};

// The backward of one channel over one chunk, its carry (padded) updated.
void BackwardChannel(const SelectiveScanTensors& s, size_t row, size_t chunk, const float* a, const float* bt,
                     const float* ct, size_t padded_state, float* carry, ThreadGrads& grads, ChannelSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d), b = row / s.channels, channel = row % s.channels;
  const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0), at = row * s.steps + t0;
  PrepareSteps(s, row, t0, len, c);
  AlignedVector start(padded_state, 0.0f);
  std::memcpy(start.data(), s.checkpoints + (row * s.chunks + chunk) * s.state, s.state * sizeof(float));
  RunStates<true>(a, bt, ct, padded_state, len, start.data(), c);
  // The gate: y·silu(z), so dy = dout·silu(z) and dz = dout·y·silu'(z).
  LoadPadded(s.dy + at, len, c.dy);
  if (s.z) {
    AddSkip(s, channel, c);
    const V one = hn::Set(d, 1.0f);
    for (size_t i = 0; i < c.padded; i += lanes) {
      const V z = hn::Load(d, &c.z[i]), dout = hn::Load(d, &c.dy[i]), sig = FastSigmoid(d, z);
      const V dsilu = hn::Mul(sig, hn::MulAdd(z, hn::Sub(one, sig), one));
      hn::Store(hn::Mul(hn::Mul(dout, hn::Load(d, &c.y[i])), dsilu), d, &c.z[i]);
      hn::Store(hn::Mul(dout, hn::Mul(z, sig)), d, &c.dy[i]);
    }
    std::memcpy(s.dz + at, c.z.data(), len * sizeof(float));
  }
  std::fill(c.sum_a.begin(), c.sum_a.end(), 0.0f);
  std::fill(c.sum_b.begin(), c.sum_b.end(), 0.0f);
  const size_t bc = b * s.chunk * padded_state;
  float* da = &grads.da[channel * padded_state];
  switch (GroupVectors(padded_state / lanes)) {
    case 4: ReverseStates<4>(a, bt, ct, padded_state, len, carry, da, &grads.bt[bc], &grads.ct[bc], c); break;
    case 2: ReverseStates<2>(a, bt, ct, padded_state, len, carry, da, &grads.bt[bc], &grads.ct[bc], c); break;
    default: ReverseStates<1>(a, bt, ct, padded_state, len, carry, da, &grads.bt[bc], &grads.ct[bc], c);
  }
  // dδ_t = Σ_n g·A·exp(δA)·h_{t-1} + u_t·Σ_n g·B_t, du_t = δ_t·Σ_n g·B_t + D·dy_t;
  // through the softplus, dΔ = dδ·σ(Δ + bias). Results go over u and delta.
  const V skip = hn::Set(d, s.D ? s.D[channel] : 0.0f);
  V skip_grad = hn::Zero(d), bias_grad = hn::Zero(d);
  for (size_t i = 0; i < c.padded; i += lanes) {
    const V u = hn::Load(d, &c.u[i]), dy = hn::Load(d, &c.dy[i]), sum_b = hn::Load(d, &c.sum_b[i]);
    V ddelta = hn::MulAdd(u, sum_b, hn::Load(d, &c.sum_a[i]));
    if (s.softplus) ddelta = hn::Mul(ddelta, FastSigmoid(d, hn::Load(d, &c.raw[i])));
    hn::Store(hn::MulAdd(hn::Load(d, &c.delta[i]), sum_b, hn::Mul(skip, dy)), d, &c.u[i]);
    hn::Store(ddelta, d, &c.raw[i]);
    skip_grad = hn::MulAdd(dy, u, skip_grad);  // padding has u = dy = 0
    bias_grad = hn::Add(bias_grad, ddelta);    // and sum_a = sum_b = 0
  }
  std::memcpy(s.du + at, c.u.data(), len * sizeof(float));
  std::memcpy(s.ddelta + at, c.raw.data(), len * sizeof(float));
  grads.skip[channel] += hn::GetLane(hn::SumOfLanes(d, skip_grad));
  grads.bias[channel] += hn::GetLane(hn::SumOfLanes(d, bias_grad));
}

// dB or dC for steps [t0, t0 + len): the threads' sums added in thread
// order. Thread k's sums cover only the batch rows its channels are in.
void GatherChunkGrads(const SelectiveScanTensors& s, const std::vector<ThreadGrads>& grads,
                      AlignedVector ThreadGrads::*which, size_t t0, size_t len, size_t padded_state, float* out,
                      int thread_index, int num_threads) {
  const size_t rows = s.batch * s.state, total = s.batch * s.channels;
  for (size_t r = rows * thread_index / num_threads; r < rows * (thread_index + 1) / num_threads; ++r) {
    const size_t b = r / s.state, n = r % s.state;
    float* to = out + r * s.steps + t0;
    std::fill(to, to + len, 0.0f);
    for (size_t k = 0; k < grads.size(); ++k) {
      const ChannelRange range = ThreadChannels(total, static_cast<int>(k), num_threads);
      if (range.first == range.last || b < range.first / s.channels || b > (range.last - 1) / s.channels) continue;
      const float* from = &(grads[k].*which)[b * s.chunk * padded_state + n];
      for (size_t t = 0; t < len; ++t) to[t] += from[t * padded_state];
    }
  }
}

}  // namespace

void SelectiveScanBackward(const SelectiveScanTensors& s, ThreadPool* pool) {
  const size_t padded_state = RoundUpToLanes(s.state), rows = s.batch * s.channels;
  const AlignedVector a = PadRows(s.A, s.channels, s.state, padded_state);
  AlignedVector carry = PadRows(s.dh_last, rows, s.state, padded_state);
  AlignedVector bt(s.batch * s.chunk * padded_state, 0.0f), ct(bt.size(), 0.0f);
  std::vector<ThreadGrads> grads(static_cast<size_t>(pool->num_threads()));
  for (ThreadGrads& g : grads) {
    g.bt.assign(bt.size(), 0.0f);
    g.ct.assign(bt.size(), 0.0f);
    g.da.assign(s.channels * padded_state, 0.0f);
    g.skip.assign(s.channels, 0.0f);
    g.bias.assign(s.channels, 0.0f);
  }
  pool->run([&](int thread_index, int num_threads) {
    ChannelSteps steps(s.chunk, padded_state);
    ThreadGrads& mine = grads[static_cast<size_t>(thread_index)];
    const ChannelRange range = ThreadChannels(rows, thread_index, num_threads);
    for (size_t chunk = s.chunks; chunk-- > 0;) {
      const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0);
      TransposeChunk(s, s.B, t0, len, padded_state, bt.data(), thread_index, num_threads);
      TransposeChunk(s, s.C, t0, len, padded_state, ct.data(), thread_index, num_threads);
      if (range.first < range.last) {  // clear the sums of this thread's batch rows
        const size_t first = range.first / s.channels * s.chunk * padded_state;
        const size_t last = ((range.last - 1) / s.channels + 1) * s.chunk * padded_state;
        std::fill(&mine.bt[first], &mine.bt[0] + last, 0.0f);
        std::fill(&mine.ct[first], &mine.ct[0] + last, 0.0f);
      }
      pool->barrier();
      for (size_t row = range.first; row < range.last; ++row) {
        const size_t b = row / s.channels, channel = row % s.channels, bc = b * s.chunk * padded_state;
        BackwardChannel(s, row, chunk, &a[channel * padded_state], &bt[bc], &ct[bc], padded_state,
                        &carry[row * padded_state], mine, steps);
      }
      pool->barrier();
      GatherChunkGrads(s, grads, &ThreadGrads::bt, t0, len, padded_state, s.dB, thread_index, num_threads);
      GatherChunkGrads(s, grads, &ThreadGrads::ct, t0, len, padded_state, s.dC, thread_index, num_threads);
      pool->barrier();  // the sums and bt, ct are reset next
    }
    // The per-channel parameters' gradients, summed over threads in order.
    for (size_t channel = s.channels * thread_index / num_threads;
         channel < s.channels * (thread_index + 1) / num_threads; ++channel) {
      for (size_t n = 0; n < s.state; ++n) {
        float sum = 0.0f;
        for (const ThreadGrads& g : grads) sum += g.da[channel * padded_state + n];
        s.dA[channel * s.state + n] = sum;
      }
      float skip = 0.0f, bias = 0.0f;
      for (const ThreadGrads& g : grads) {
        skip += g.skip[channel];
        bias += g.bias[channel];
      }
      if (s.dD) s.dD[channel] = skip;
      if (s.ddelta_bias) s.ddelta_bias[channel] = bias;
    }
  });
  // What flows into h_0 is the carry past the first step.
  if (s.dh0) UnpadRows(carry, rows, s.state, padded_state, s.dh0);
}

void SelectiveScanStep(const detail::SelectiveStepTensors& s, ThreadPool* pool) {
  const size_t padded_state = RoundUpToLanes(s.state), rows = s.batch * s.channels;
  const AlignedVector a = PadRows(s.A, s.channels, s.state, padded_state);
  const AlignedVector bp = PadRows(s.B, s.batch, s.state, padded_state);
  const AlignedVector cp = PadRows(s.C, s.batch, s.state, padded_state);
  auto channels = [&](int thread_index, int num_threads) {
    const Tag d;
    const size_t lanes = hn::Lanes(d);
    AlignedVector h(padded_state, 0.0f);
    const ChannelRange range = ThreadChannels(rows, thread_index, num_threads);
    for (size_t row = range.first; row < range.last; ++row) {
      const size_t b = row / s.channels, channel = row % s.channels;
      float delta = s.delta[row] + (s.delta_bias ? s.delta_bias[channel] : 0.0f);
      if (s.softplus && delta <= 20.0f) delta = std::log1p(std::exp(delta));
      std::memcpy(h.data(), s.h + row * s.state, s.state * sizeof(float));
      const V vdelta = hn::Set(d, delta), delta_u = hn::Set(d, delta * s.u[row]);
      V y = hn::Zero(d);
      for (size_t j = 0; j < padded_state; j += lanes) {
        const V decay = hn::Exp(d, hn::Max(hn::Mul(vdelta, hn::Load(d, &a[channel * padded_state + j])),
                                           hn::Set(d, kMinExponent)));
        const V state = hn::MulAdd(decay, hn::Load(d, &h[j]), hn::Mul(delta_u, hn::Load(d, &bp[b * padded_state + j])));
        hn::Store(state, d, &h[j]);
        y = hn::MulAdd(hn::Load(d, &cp[b * padded_state + j]), state, y);
      }
      std::memcpy(s.h + row * s.state, h.data(), s.state * sizeof(float));
      float out = hn::GetLane(hn::SumOfLanes(d, y)) + (s.D ? s.D[channel] * s.u[row] : 0.0f);
      if (s.z) out *= s.z[row] / (1.0f + std::exp(-s.z[row]));
      s.y[row] = out;
    }
  };
  // A step is small: threads only pay off for a large state.
  if (rows * padded_state >= (size_t{1} << 16))
    pool->run(channels);
  else
    channels(0, 1);
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace seqk {

HWY_EXPORT(SelectiveScanForward);
HWY_EXPORT(SelectiveScanBackward);
HWY_EXPORT(SelectiveScanStep);

struct SelectiveScanAccess {
  static SelectiveScanSaved& reset(SelectiveScanSaved& saved, int64_t batch, int64_t channels, int64_t steps,
                                   int64_t state, int64_t chunk_steps) {
    saved.batch_ = batch;
    saved.channels_ = channels;
    saved.steps_ = steps;
    saved.state_ = state;
    saved.chunk_steps_ = chunk_steps;
    saved.chunks_ = (steps + chunk_steps - 1) / chunk_steps;
    saved.states_.assign(static_cast<size_t>(batch * channels * saved.chunks_ * state), 0.0f);
    return saved;
  }
  static bool matches(const SelectiveScanSaved& saved, int64_t batch, int64_t channels, int64_t steps, int64_t state) {
    return saved.batch_ == batch && saved.channels_ == channels && saved.steps_ == steps && saved.state_ == state &&
           !saved.states_.empty();
  }
  static const float* states(const SelectiveScanSaved& saved) { return saved.states_.data(); }
  static float* states(SelectiveScanSaved& saved) { return saved.states_.data(); }
};

namespace {

struct Dims {
  int64_t batch, channels, steps, state;
};

void require_finite(const ConstView& v, const char* name) {
  if (v.empty()) return;
  for (int64_t i = 0; i < v.numel(); ++i)
    require(std::isfinite(v.data()[i]), name, " has a non-finite value at index ", i);
}

// The inputs' shapes; returns the problem's dimensions.
Dims check_inputs(const SelectiveScanInputs& in) {
  require(in.u.data() != nullptr && in.u.rank() == 3, "selective scan: u must be (B, D, L), got ",
          in.u.shape_string());
  require(in.A.data() != nullptr && in.A.rank() == 2, "selective scan: A must be (D, N), got ", in.A.shape_string());
  const Dims dims{in.u.dim(0), in.u.dim(1), in.u.dim(2), in.A.dim(1)};
  require(dims.batch > 0 && dims.channels > 0 && dims.steps > 0, "selective scan: u has an empty dimension: ",
          in.u.shape_string());
  require(dims.state > 0 && dims.state <= kSelectiveScanMaxState, "selective scan: N (A's second dimension) must be 1..",
          kSelectiveScanMaxState, ", got ", dims.state);
  require_shape(in.u, "u", {dims.batch, dims.channels, dims.steps});
  require_shape(in.delta, "delta", {dims.batch, dims.channels, dims.steps});
  require_shape(in.A, "A", {dims.channels, dims.state});
  require_shape(in.B, "B", {dims.batch, dims.state, dims.steps});
  require_shape(in.C, "C", {dims.batch, dims.state, dims.steps});
  if (!in.D.empty()) require_shape(in.D, "D", {dims.channels});
  if (!in.z.empty()) require_shape(in.z, "z", {dims.batch, dims.channels, dims.steps});
  if (!in.delta_bias.empty()) require_shape(in.delta_bias, "delta_bias", {dims.channels});
  if (!in.h0.empty()) require_shape(in.h0, "h0", {dims.batch, dims.channels, dims.state});
  require_finite(in.A, "A");
  require_finite(in.D, "D");
  require_finite(in.delta_bias, "delta_bias");
  return dims;
}

bool overlap(const float* a, int64_t a_size, const float* b, int64_t b_size) {
  const auto a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  return a && b && a0 < b0 + static_cast<uintptr_t>(b_size) * sizeof(float) &&
         b0 < a0 + static_cast<uintptr_t>(a_size) * sizeof(float);
}

// No output may share memory with an input or another output.
void require_distinct(std::initializer_list<std::pair<const char*, View>> outputs,
                      std::initializer_list<ConstView> inputs) {
  for (auto out = outputs.begin(); out != outputs.end(); ++out) {
    for (const ConstView& in : inputs)
      require(!overlap(out->second.data(), out->second.numel(), in.data(), in.numel()), "selective scan: ",
              out->first, " overlaps an input");
    for (auto other = outputs.begin(); other != out; ++other)
      require(!overlap(out->second.data(), out->second.numel(), other->second.data(), other->second.numel()),
              "selective scan: ", out->first, " overlaps ", other->first);
  }
}

detail::SelectiveScanTensors tensors(const SelectiveScanInputs& in, const Dims& dims, int64_t chunk_steps) {
  auto ptr = [](const ConstView& v) { return v.empty() ? nullptr : v.data(); };
  detail::SelectiveScanTensors s{};
  s.batch = static_cast<size_t>(dims.batch);
  s.channels = static_cast<size_t>(dims.channels);
  s.steps = static_cast<size_t>(dims.steps);
  s.state = static_cast<size_t>(dims.state);
  s.chunk = static_cast<size_t>(std::min(chunk_steps, dims.steps));
  s.chunks = (s.steps + s.chunk - 1) / s.chunk;
  s.u = in.u.data();
  s.delta = in.delta.data();
  s.A = in.A.data();
  s.B = in.B.data();
  s.C = in.C.data();
  s.D = ptr(in.D);
  s.z = ptr(in.z);
  s.delta_bias = ptr(in.delta_bias);
  s.h0 = ptr(in.h0);
  s.softplus = in.delta_softplus;
  return s;
}

void require_grad(const View& grad, const char* name, bool wanted, std::initializer_list<int64_t> shape) {
  if (wanted)
    require_shape(grad, name, shape);
  else
    require(grad.empty(), "selective scan: ", name, " given for an input that was not");
}

}  // namespace

void selective_scan(const SelectiveScanInputs& in, View y, View h_last, SelectiveScanSaved* saved, ThreadPool* pool,
                    int64_t chunk_steps) {
  const Dims dims = check_inputs(in);
  require(chunk_steps >= 1 && chunk_steps <= 4096, "selective scan: chunk_steps must be 1..4096, got ", chunk_steps);
  require_shape(y, "y", {dims.batch, dims.channels, dims.steps});
  if (!h_last.empty()) require_shape(h_last, "h_last", {dims.batch, dims.channels, dims.state});
  require_distinct({{"y", y}, {"h_last", h_last}}, {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias, in.h0});
  detail::SelectiveScanTensors s = tensors(in, dims, chunk_steps);
  s.y = y.data();
  s.h_last = h_last.empty() ? nullptr : h_last.data();
  if (saved)
    s.checkpoints = SelectiveScanAccess::states(
        SelectiveScanAccess::reset(*saved, dims.batch, dims.channels, dims.steps, dims.state, static_cast<int64_t>(s.chunk)));
  HWY_DYNAMIC_DISPATCH(SelectiveScanForward)(s, pool ? pool : &ThreadPool::global());
}

void selective_scan_backward(const SelectiveScanInputs& in, const SelectiveScanSaved& saved, ConstView dy,
                             ConstView dh_last, const SelectiveScanGrads& grads, ThreadPool* pool) {
  const Dims dims = check_inputs(in);
  require(SelectiveScanAccess::matches(saved, dims.batch, dims.channels, dims.steps, dims.state),
          "selective scan: saved does not come from a training forward of these shapes");
  require_shape(dy, "dy", {dims.batch, dims.channels, dims.steps});
  if (!dh_last.empty()) require_shape(dh_last, "dh_last", {dims.batch, dims.channels, dims.state});
  const int64_t B = dims.batch, D = dims.channels, L = dims.steps, N = dims.state;
  require_grad(grads.du, "du", true, {B, D, L});
  require_grad(grads.ddelta, "ddelta", true, {B, D, L});
  require_grad(grads.dA, "dA", true, {D, N});
  require_grad(grads.dB, "dB", true, {B, N, L});
  require_grad(grads.dC, "dC", true, {B, N, L});
  require_grad(grads.dD, "dD", !in.D.empty(), {D});
  require_grad(grads.dz, "dz", !in.z.empty(), {B, D, L});
  require_grad(grads.ddelta_bias, "ddelta_bias", !in.delta_bias.empty(), {D});
  if (!grads.dh0.empty()) require_shape(grads.dh0, "dh0", {B, D, N});
  require_distinct({{"du", grads.du}, {"ddelta", grads.ddelta}, {"dA", grads.dA}, {"dB", grads.dB}, {"dC", grads.dC},
                    {"dD", grads.dD}, {"dz", grads.dz}, {"ddelta_bias", grads.ddelta_bias}, {"dh0", grads.dh0}},
                   {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias, in.h0, dy, dh_last});
  detail::SelectiveScanTensors s = tensors(in, dims, saved.chunk_steps());
  auto ptr = [](const View& v) { return v.empty() ? nullptr : v.data(); };
  s.checkpoints = const_cast<float*>(SelectiveScanAccess::states(saved));  // read only in the backward
  s.dy = dy.data();
  s.dh_last = dh_last.empty() ? nullptr : dh_last.data();
  s.du = grads.du.data();
  s.ddelta = grads.ddelta.data();
  s.dA = grads.dA.data();
  s.dB = grads.dB.data();
  s.dC = grads.dC.data();
  s.dD = ptr(grads.dD);
  s.dz = ptr(grads.dz);
  s.ddelta_bias = ptr(grads.ddelta_bias);
  s.dh0 = ptr(grads.dh0);
  HWY_DYNAMIC_DISPATCH(SelectiveScanBackward)(s, pool ? pool : &ThreadPool::global());
}

void selective_scan_step(const SelectiveScanStepInputs& in, View h, View y, ThreadPool* pool) {
  require(in.u.data() != nullptr && in.u.rank() == 2, "selective scan step: u must be (B, D), got ",
          in.u.shape_string());
  require(in.A.data() != nullptr && in.A.rank() == 2, "selective scan step: A must be (D, N), got ",
          in.A.shape_string());
  const int64_t B = in.u.dim(0), D = in.u.dim(1), N = in.A.dim(1);
  require(B > 0 && D > 0, "selective scan step: u has an empty dimension: ", in.u.shape_string());
  require(N > 0 && N <= kSelectiveScanMaxState, "selective scan step: N must be 1..", kSelectiveScanMaxState,
          ", got ", N);
  require_shape(in.u, "u", {B, D});
  require_shape(in.delta, "delta", {B, D});
  require_shape(in.A, "A", {D, N});
  require_shape(in.B, "B", {B, N});
  require_shape(in.C, "C", {B, N});
  if (!in.D.empty()) require_shape(in.D, "D", {D});
  if (!in.z.empty()) require_shape(in.z, "z", {B, D});
  if (!in.delta_bias.empty()) require_shape(in.delta_bias, "delta_bias", {D});
  require_shape(h, "h", {B, D, N});
  require_shape(y, "y", {B, D});
  require_finite(in.A, "A");
  require_finite(in.D, "D");
  require_finite(in.delta_bias, "delta_bias");
  require_distinct({{"h", h}, {"y", y}}, {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias});
  auto ptr = [](const ConstView& v) { return v.empty() ? nullptr : v.data(); };
  const detail::SelectiveStepTensors s{static_cast<size_t>(B), static_cast<size_t>(D), static_cast<size_t>(N),
                                       in.u.data(), in.delta.data(), in.A.data(), in.B.data(), in.C.data(),
                                       ptr(in.D), ptr(in.z), ptr(in.delta_bias), in.delta_softplus,
                                       h.data(), y.data()};
  HWY_DYNAMIC_DISPATCH(SelectiveScanStep)(s, pool ? pool : &ThreadPool::global());
}

}  // namespace seqk
#endif  // HWY_ONCE
