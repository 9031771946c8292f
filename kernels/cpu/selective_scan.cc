// The selective scan (seqk/selective_scan.h) for each SIMD target.
//
// Work goes in blocks of a vector's worth of one batch row's channels, one
// channel per lane: at a step they all read the same B_t and C_t, so the
// update is broadcasts and FMAs and y_t = Σ_n C_t·h_t needs no sum across
// lanes. The steps go in chunks: each chunk's B and C are first transposed
// to (step, n) rows and each block's u, Δ, z to one vector per step. The
// state values run in groups of up to four through all the chunk's steps,
// in registers. Threads split the blocks and meet at a barrier per chunk.
// The backward goes through the chunks from the last: each block recomputes
// its chunk's states from the saved checkpoint, then runs the steps in
// reverse. dB and dC sum over channels: each block keeps its shares per
// lane, a thread adds them up across lanes once per batch row, and the
// threads' sums are added after the barrier in a fixed order, so results do
// not depend on timing.
#include "seqk/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/distinct.h"
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

// State values per pass over a chunk's steps: their states, A and the
// running sums stay in registers (32 vector registers with AVX-512, 16
// below).
constexpr size_t kMaxGroup = 4;

V Softplus(Tag d, V x) {
  // Mamba's: x above 20 is its own softplus in fp32.
  const V threshold = hn::Set(d, 20.0f);
  const V small = hn::Log1p(d, hn::Exp(d, hn::Max(hn::Min(x, threshold), hn::Set(d, kMinExponent))));
  return hn::IfThenElse(hn::Gt(x, threshold), x, small);
}

// A block: one batch row's channels [first, first + width), width ≤ lanes,
// one channel per lane.
struct Block {
  size_t b, index, first, width;
};

Block BlockOf(const SelectiveScanTensors& s, size_t item) {
  const size_t lanes = hn::Lanes(Tag()), blocks = hwy::DivCeil(s.channels, lanes);
  const size_t index = item % blocks, first = index * lanes;
  return {item / blocks, index, first, std::min(lanes, s.channels - first)};
}

// Per-channel vectors of a (D) parameter, or of row n of A (D, N): lane c of
// block k holds channel k·lanes + c, zero past D.
AlignedVector ChannelVectors(const float* values, size_t channels, size_t per_channel) {
  const size_t lanes = hn::Lanes(Tag()), blocks = hwy::DivCeil(channels, lanes);
  AlignedVector out(blocks * per_channel * lanes, 0.0f);
  if (values)
    for (size_t d = 0; d < channels; ++d)
      for (size_t n = 0; n < per_channel; ++n)
        out[((d / lanes) * per_channel + n) * lanes + d % lanes] = values[d * per_channel + n];
  return out;
}

// One block's per-step vectors over one chunk (step t at t·lanes), and for
// the backward its states (h_{t0-1} first) and decays, (step, n) vectors.
struct BlockSteps {
  BlockSteps(size_t chunk, size_t state, bool backward) {
    const size_t lanes = hn::Lanes(Tag()), n = chunk * lanes;
    for (AlignedVector* v : {&u, &raw, &delta, &delta_u, &z, &y, &dy, &sum_a, &sum_b}) v->resize(n);
    h.resize(state * lanes);
    if (backward) {
      states.resize((chunk + 1) * state * lanes);
      decays.resize(chunk * state * lanes);
      db.resize(chunk * state * lanes);
      dc.resize(chunk * state * lanes);
    }
  }
  AlignedVector u, raw, delta, delta_u, z, y, dy, sum_a, sum_b, states, decays;
  AlignedVector h;       // backward: the running state
  AlignedVector db, dc;  // backward: this block's shares of dB and dC, not yet summed over lanes
};

// (B, D, L) tensor -> the block's steps [t0, t0 + len) as vectors.
void GatherSteps(const SelectiveScanTensors& s, const float* tensor, const Block& k, size_t t0, size_t len,
                 AlignedVector& out) {
  const size_t lanes = hn::Lanes(Tag());
  if (k.width < lanes) std::fill(out.begin(), out.begin() + static_cast<ptrdiff_t>(len * lanes), 0.0f);
  for (size_t c = 0; c < k.width; ++c) {
    const float* in = tensor + (k.b * s.channels + k.first + c) * s.steps + t0;
    for (size_t t = 0; t < len; ++t) out[t * lanes + c] = in[t];
  }
}

void ScatterSteps(const SelectiveScanTensors& s, const AlignedVector& in, const Block& k, size_t t0, size_t len,
                  float* tensor) {
  const size_t lanes = hn::Lanes(Tag());
  for (size_t c = 0; c < k.width; ++c) {
    float* out = tensor + (k.b * s.channels + k.first + c) * s.steps + t0;
    for (size_t t = 0; t < len; ++t) out[t] = in[t * lanes + c];
  }
}

// (B, D, …, N) state rows of the block <-> its N vectors; `stride` floats
// between channels.
void GatherState(const float* rows, size_t stride, const Block& k, size_t state, float* h) {
  const size_t lanes = hn::Lanes(Tag());
  std::fill(h, h + state * lanes, 0.0f);
  if (rows)
    for (size_t c = 0; c < k.width; ++c)
      for (size_t n = 0; n < state; ++n) h[n * lanes + c] = rows[c * stride + n];
}

void ScatterState(const float* h, const Block& k, size_t state, size_t stride, float* rows) {
  const size_t lanes = hn::Lanes(Tag());
  for (size_t c = 0; c < k.width; ++c)
    for (size_t n = 0; n < state; ++n) rows[c * stride + n] = h[n * lanes + c];
}

// u, Δ (+ bias, softplus) -> δ and δ·u; the raw Δ + bias stays for the
// backward's softplus derivative.
void PrepareSteps(const SelectiveScanTensors& s, const Block& k, size_t t0, size_t len, const float* bias,
                  BlockSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  GatherSteps(s, s.u, k, t0, len, c.u);
  GatherSteps(s, s.delta, k, t0, len, c.raw);
  if (s.z) GatherSteps(s, s.z, k, t0, len, c.z);
  const V bias_v = hn::Load(d, bias + k.index * lanes);
  for (size_t i = 0; i < len * lanes; i += lanes) {
    const V raw = hn::Add(hn::Load(d, &c.raw[i]), bias_v);
    hn::Store(raw, d, &c.raw[i]);
    const V delta = s.softplus ? Softplus(d, raw) : raw;
    hn::Store(delta, d, &c.delta[i]);
    hn::Store(hn::Mul(delta, hn::Load(d, &c.u[i])), d, &c.delta_u[i]);
  }
}

// State values [n0, n0 + kGroup) of a block through the chunk's steps:
// h_t = exp(δ_t·A) ⊙ h_{t-1} + δ_t·u_t·B_t, y_t += Σ_n C_t·h_t. B and C are
// the chunk's (step, n) rows, one value for all the block's channels. With
// kRecord, the states and decays go to `c` for the backward.
template <size_t kGroup, bool kRecord>
void RunStateGroup(const float* a, const float* bt, const float* ct, size_t state, size_t n0, size_t len, float* h_io,
                   BlockSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  const V min_exponent = hn::Set(d, kMinExponent);
  V h[kGroup], rate[kGroup];
  HWY_UNROLL(8)
  for (size_t g = 0; g < kGroup; ++g) {
    h[g] = hn::Load(d, h_io + (n0 + g) * lanes);
    rate[g] = hn::Load(d, a + (n0 + g) * lanes);
    if (kRecord) hn::Store(h[g], d, &c.states[(n0 + g) * lanes]);
  }
  for (size_t t = 0; t < len; ++t) {
    const V delta = hn::Load(d, &c.delta[t * lanes]), delta_u = hn::Load(d, &c.delta_u[t * lanes]);
    V y = hn::Load(d, &c.y[t * lanes]);
    HWY_UNROLL(8)
    for (size_t g = 0; g < kGroup; ++g) {
      const size_t n = n0 + g;
      const V decay = hn::Exp(d, hn::Max(hn::Mul(delta, rate[g]), min_exponent));
      h[g] = hn::MulAdd(decay, h[g], hn::Mul(delta_u, hn::Set(d, bt[t * state + n])));
      y = hn::MulAdd(hn::Set(d, ct[t * state + n]), h[g], y);
      if (kRecord) {
        hn::Store(decay, d, &c.decays[(t * state + n) * lanes]);
        hn::Store(h[g], d, &c.states[((t + 1) * state + n) * lanes]);
      }
    }
    hn::Store(y, d, &c.y[t * lanes]);
  }
  HWY_UNROLL(8)
  for (size_t g = 0; g < kGroup; ++g) hn::Store(h[g], d, h_io + (n0 + g) * lanes);
}

// Splits [0, state) into groups of kMaxGroup, then 4, 2, 1 for the rest.
template <class Run>
void ForStateGroups(size_t state, Run&& run) {
  size_t n = 0;
  for (; n + kMaxGroup <= state; n += kMaxGroup) run(std::integral_constant<size_t, kMaxGroup>(), n);
  if (n + 4 <= state) run(std::integral_constant<size_t, 4>(), n), n += 4;
  if (n + 2 <= state) run(std::integral_constant<size_t, 2>(), n), n += 2;
  if (n < state) run(std::integral_constant<size_t, 1>(), n);
}

// The chunk's steps for a block from its state h (N vectors, left at the
// chunk's end): c.y gets Σ_n C_t·h_t.
template <bool kRecord>
void RunStates(const float* a, const float* bt, const float* ct, size_t state, size_t len, float* h, BlockSteps& c) {
  const size_t lanes = hn::Lanes(Tag());
  std::fill(c.y.begin(), c.y.begin() + static_cast<ptrdiff_t>(len * lanes), 0.0f);
  ForStateGroups(state, [&](auto group, size_t n0) {
    RunStateGroup<decltype(group)::value, kRecord>(a, bt, ct, state, n0, len, h, c);
  });
}

// c.y += D·u: the output before the gate.
void AddSkip(const float* skip, const Block& k, size_t len, BlockSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  const V skip_v = hn::Load(d, skip + k.index * lanes);
  for (size_t i = 0; i < len * lanes; i += lanes)
    hn::Store(hn::MulAdd(skip_v, hn::Load(d, &c.u[i]), hn::Load(d, &c.y[i])), d, &c.y[i]);
}

// Steps [t0, t0 + len) of B or C, (B, N, L), as (b, step, n) rows; the
// pool's threads take the (b, n) rows in turn.
void TransposeChunk(const SelectiveScanTensors& s, const float* from, size_t t0, size_t len, float* to,
                    int thread_index, int num_threads) {
  const size_t rows = s.batch * s.state;
  for (size_t r = rows * thread_index / num_threads; r < rows * (thread_index + 1) / num_threads; ++r) {
    const size_t b = r / s.state, n = r % s.state;
    const float* in = from + r * s.steps + t0;
    float* out = to + b * s.chunk * s.state + n;
    for (size_t t = 0; t < len; ++t) out[t * s.state] = in[t];
  }
}

// A thread's share of the blocks: [first, last).
struct ItemRange {
  size_t first, last;
};
ItemRange ThreadItems(size_t total, int thread_index, int num_threads) {
  return {total * thread_index / num_threads, total * (thread_index + 1) / num_threads};
}

// The parameters as per-block vectors.
struct BlockParams {
  explicit BlockParams(const SelectiveScanTensors& s)
      : a(ChannelVectors(s.A, s.channels, s.state)),
        skip(ChannelVectors(s.D, s.channels, 1)),
        bias(ChannelVectors(s.delta_bias, s.channels, 1)) {}
  AlignedVector a, skip, bias;
};

}  // namespace

void SelectiveScanForward(const SelectiveScanTensors& s, ThreadPool* pool) {
  const size_t lanes = hn::Lanes(Tag()), items = s.batch * hwy::DivCeil(s.channels, lanes);
  const size_t block_state = s.state * lanes;
  const BlockParams params(s);
  AlignedVector bt(s.batch * s.chunk * s.state), ct(bt.size()), h(items * block_state);
  pool->run([&](int thread_index, int num_threads) {
    const Tag d;
    BlockSteps steps(s.chunk, s.state, false);
    const ItemRange mine = ThreadItems(items, thread_index, num_threads);
    for (size_t item = mine.first; item < mine.last; ++item) {
      const Block k = BlockOf(s, item);
      GatherState(s.h0 ? s.h0 + (k.b * s.channels + k.first) * s.state : nullptr, s.state, k, s.state,
                  &h[item * block_state]);
    }
    for (size_t chunk = 0; chunk < s.chunks; ++chunk) {
      const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0);
      TransposeChunk(s, s.B, t0, len, bt.data(), thread_index, num_threads);
      TransposeChunk(s, s.C, t0, len, ct.data(), thread_index, num_threads);
      pool->barrier();
      for (size_t item = mine.first; item < mine.last; ++item) {
        const Block k = BlockOf(s, item);
        float* state = &h[item * block_state];
        if (s.checkpoints)
          ScatterState(state, k, s.state, s.chunks * s.state,
                       s.checkpoints + ((k.b * s.channels + k.first) * s.chunks + chunk) * s.state);
        PrepareSteps(s, k, t0, len, params.bias.data(), steps);
        const size_t bc = k.b * s.chunk * s.state;
        RunStates<false>(&params.a[k.index * block_state], &bt[bc], &ct[bc], s.state, len, state, steps);
        AddSkip(params.skip.data(), k, len, steps);
        if (s.z)
          for (size_t i = 0; i < len * lanes; i += lanes) {
            const V z = hn::Load(d, &steps.z[i]);
            hn::Store(hn::Mul(hn::Load(d, &steps.y[i]), hn::Mul(z, FastSigmoid(d, z))), d, &steps.y[i]);
          }
        ScatterSteps(s, steps.y, k, t0, len, s.y);
      }
      pool->barrier();  // bt and ct are rewritten next
    }
    if (s.h_last)
      for (size_t item = mine.first; item < mine.last; ++item) {
        const Block k = BlockOf(s, item);
        ScatterState(&h[item * block_state], k, s.state, s.state, s.h_last + (k.b * s.channels + k.first) * s.state);
      }
  });
}

namespace {

// One group of state values through the chunk's steps in reverse:
// g_t = dy_t·C_t + exp(δ_{t+1}·A) ⊙ g_{t+1} (`carry` holds the second term
// on entry and leaves with the chunk's first step's), and from it the
// block's shares of dB_t and dC_t (c.db, c.dc), dA, and the sums over the
// state that δ_t and u_t need (c.sum_a, c.sum_b).
template <size_t kGroup>
void ReverseStateGroup(const float* a, const float* bt, const float* ct, size_t state, size_t n0, size_t len,
                       float* carry, float* da, BlockSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d);
  V g_next[kGroup], rate[kGroup], da_sum[kGroup];
  HWY_UNROLL(8)
  for (size_t g = 0; g < kGroup; ++g) {
    g_next[g] = hn::Load(d, carry + (n0 + g) * lanes);
    rate[g] = hn::Load(d, a + (n0 + g) * lanes);
    da_sum[g] = hn::Zero(d);
  }
  for (size_t t = len; t-- > 0;) {
    const V dy = hn::Load(d, &c.dy[t * lanes]), delta = hn::Load(d, &c.delta[t * lanes]);
    const V delta_u = hn::Load(d, &c.delta_u[t * lanes]);
    V sum_a = hn::Load(d, &c.sum_a[t * lanes]), sum_b = hn::Load(d, &c.sum_b[t * lanes]);
    HWY_UNROLL(8)
    for (size_t g = 0; g < kGroup; ++g) {
      const size_t n = n0 + g, at = (t * state + n) * lanes;
      const V grad = hn::MulAdd(dy, hn::Set(d, ct[t * state + n]), g_next[g]);
      const V decay = hn::Load(d, &c.decays[at]);
      hn::Store(hn::MulAdd(dy, hn::Load(d, &c.states[at + state * lanes]), hn::Load(d, &c.dc[at])), d, &c.dc[at]);
      hn::Store(hn::MulAdd(grad, delta_u, hn::Load(d, &c.db[at])), d, &c.db[at]);
      // d/dδ of exp(δ·A) ⊙ h_{t-1} is A ⊙ exp(δ·A) ⊙ h_{t-1}.
      const V through_decay = hn::Mul(hn::Mul(grad, hn::Load(d, &c.states[at])), decay);
      sum_a = hn::MulAdd(through_decay, rate[g], sum_a);
      da_sum[g] = hn::MulAdd(through_decay, delta, da_sum[g]);
      sum_b = hn::MulAdd(grad, hn::Set(d, bt[t * state + n]), sum_b);
      g_next[g] = hn::Mul(grad, decay);
    }
    hn::Store(sum_a, d, &c.sum_a[t * lanes]);
    hn::Store(sum_b, d, &c.sum_b[t * lanes]);
  }
  HWY_UNROLL(8)
  for (size_t g = 0; g < kGroup; ++g) {
    hn::Store(g_next[g], d, carry + (n0 + g) * lanes);
    hn::Store(hn::Add(hn::Load(d, da + (n0 + g) * lanes), da_sum[g]), d, da + (n0 + g) * lanes);
  }
}

// A thread's gradient sums over its blocks: dB and dC for the current chunk
// as (b, step, n) rows; dA, dD and dδ_bias as per-block vectors.
struct ThreadGrads {
  AlignedVector bt, ct, da, skip, bias;
};

// Adds c.db and c.dc, summed over the block's lanes, into the thread's rows
// of batch row b, and clears them.
void FlushStateGrads(const SelectiveScanTensors& s, size_t b, size_t len, BlockSteps& c, ThreadGrads& grads) {
  const Tag d;
  const size_t lanes = hn::Lanes(d), n = len * s.state;
  float* bt = &grads.bt[b * s.chunk * s.state];
  float* ct = &grads.ct[b * s.chunk * s.state];
  for (size_t i = 0; i < n; ++i) {
    bt[i] += hn::GetLane(hn::SumOfLanes(d, hn::Load(d, &c.db[i * lanes])));
    ct[i] += hn::GetLane(hn::SumOfLanes(d, hn::Load(d, &c.dc[i * lanes])));
  }
  std::fill(c.db.begin(), c.db.begin() + static_cast<ptrdiff_t>(n * lanes), 0.0f);
  std::fill(c.dc.begin(), c.dc.begin() + static_cast<ptrdiff_t>(n * lanes), 0.0f);
}

// The backward of one block over one chunk; its carry (N vectors) updated.
void BackwardBlock(const SelectiveScanTensors& s, const BlockParams& params, const Block& k, size_t chunk,
                   const float* bt, const float* ct, float* carry, ThreadGrads& grads, BlockSteps& c) {
  const Tag d;
  const size_t lanes = hn::Lanes(d), block_state = s.state * lanes;
  const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0);
  const float* a = &params.a[k.index * block_state];
  PrepareSteps(s, k, t0, len, params.bias.data(), c);
  // The chunk's states again, from its checkpoint (kept in c.states' first row).
  GatherState(s.checkpoints + ((k.b * s.channels + k.first) * s.chunks + chunk) * s.state, s.chunks * s.state, k,
              s.state, c.states.data());
  std::copy(c.states.begin(), c.states.begin() + static_cast<ptrdiff_t>(block_state), c.h.begin());
  RunStates<true>(a, bt, ct, s.state, len, c.h.data(), c);
  // The gate: y·silu(z), so dy = dout·silu(z) and dz = dout·y·silu'(z).
  GatherSteps(s, s.dy, k, t0, len, c.dy);
  if (s.z) {
    AddSkip(params.skip.data(), k, len, c);
    const V one = hn::Set(d, 1.0f);
    for (size_t i = 0; i < len * lanes; i += lanes) {
      const V z = hn::Load(d, &c.z[i]), dout = hn::Load(d, &c.dy[i]), sig = FastSigmoid(d, z);
      const V dsilu = hn::Mul(sig, hn::MulAdd(z, hn::Sub(one, sig), one));
      hn::Store(hn::Mul(hn::Mul(dout, hn::Load(d, &c.y[i])), dsilu), d, &c.z[i]);
      hn::Store(hn::Mul(dout, hn::Mul(z, sig)), d, &c.dy[i]);
    }
    ScatterSteps(s, c.z, k, t0, len, s.dz);
  }
  std::fill(c.sum_a.begin(), c.sum_a.begin() + static_cast<ptrdiff_t>(len * lanes), 0.0f);
  std::fill(c.sum_b.begin(), c.sum_b.begin() + static_cast<ptrdiff_t>(len * lanes), 0.0f);
  float* da = &grads.da[k.index * block_state];
  ForStateGroups(s.state, [&](auto group, size_t n0) {
    ReverseStateGroup<decltype(group)::value>(a, bt, ct, s.state, n0, len, carry, da, c);
  });
  // dδ_t = Σ_n g·A·exp(δA)·h_{t-1} + u_t·Σ_n g·B_t, du_t = δ_t·Σ_n g·B_t + D·dy_t;
  // through the softplus, dΔ = dδ·σ(Δ + bias). Results go over u and raw.
  const V skip = hn::Load(d, &params.skip[k.index * lanes]);
  V skip_grad = hn::Load(d, &grads.skip[k.index * lanes]), bias_grad = hn::Load(d, &grads.bias[k.index * lanes]);
  for (size_t i = 0; i < len * lanes; i += lanes) {
    const V u = hn::Load(d, &c.u[i]), dy = hn::Load(d, &c.dy[i]), sum_b = hn::Load(d, &c.sum_b[i]);
    V ddelta = hn::MulAdd(u, sum_b, hn::Load(d, &c.sum_a[i]));
    if (s.softplus) ddelta = hn::Mul(ddelta, FastSigmoid(d, hn::Load(d, &c.raw[i])));
    hn::Store(hn::MulAdd(hn::Load(d, &c.delta[i]), sum_b, hn::Mul(skip, dy)), d, &c.u[i]);
    hn::Store(ddelta, d, &c.raw[i]);
    skip_grad = hn::MulAdd(dy, u, skip_grad);
    bias_grad = hn::Add(bias_grad, ddelta);  // lanes past D are never read
  }
  hn::Store(skip_grad, d, &grads.skip[k.index * lanes]);
  hn::Store(bias_grad, d, &grads.bias[k.index * lanes]);
  ScatterSteps(s, c.u, k, t0, len, s.du);
  ScatterSteps(s, c.raw, k, t0, len, s.ddelta);
}

// dB or dC for steps [t0, t0 + len): the threads' sums added in thread
// order. Thread k's sums cover only the batch rows its blocks are in.
void GatherChunkGrads(const SelectiveScanTensors& s, const std::vector<ThreadGrads>& grads,
                      AlignedVector ThreadGrads::*which, size_t items, size_t t0, size_t len, float* out,
                      int thread_index, int num_threads) {
  const size_t rows = s.batch * s.state, blocks = items / s.batch;
  for (size_t r = rows * thread_index / num_threads; r < rows * (thread_index + 1) / num_threads; ++r) {
    const size_t b = r / s.state, n = r % s.state;
    float* to = out + r * s.steps + t0;
    std::fill(to, to + len, 0.0f);
    for (size_t k = 0; k < grads.size(); ++k) {
      const ItemRange range = ThreadItems(items, static_cast<int>(k), num_threads);
      if (range.first == range.last || b < range.first / blocks || b > (range.last - 1) / blocks) continue;
      const float* from = &(grads[k].*which)[b * s.chunk * s.state + n];
      for (size_t t = 0; t < len; ++t) to[t] += from[t * s.state];
    }
  }
}

}  // namespace

void SelectiveScanBackward(const SelectiveScanTensors& s, ThreadPool* pool) {
  const size_t lanes = hn::Lanes(Tag()), blocks = hwy::DivCeil(s.channels, lanes), items = s.batch * blocks;
  const size_t block_state = s.state * lanes;
  const BlockParams params(s);
  AlignedVector bt(s.batch * s.chunk * s.state), ct(bt.size()), carry(items * block_state);
  std::vector<ThreadGrads> grads(static_cast<size_t>(pool->num_threads()));
  for (ThreadGrads& g : grads) {
    g.bt.assign(bt.size(), 0.0f);
    g.ct.assign(bt.size(), 0.0f);
    g.da.assign(blocks * block_state, 0.0f);
    g.skip.assign(blocks * lanes, 0.0f);
    g.bias.assign(blocks * lanes, 0.0f);
  }
  pool->run([&](int thread_index, int num_threads) {
    BlockSteps steps(s.chunk, s.state, true);
    ThreadGrads& mine = grads[static_cast<size_t>(thread_index)];
    const ItemRange range = ThreadItems(items, thread_index, num_threads);
    for (size_t item = range.first; item < range.last; ++item) {
      const Block k = BlockOf(s, item);
      GatherState(s.dh_last ? s.dh_last + (k.b * s.channels + k.first) * s.state : nullptr, s.state, k, s.state,
                  &carry[item * block_state]);
    }
    for (size_t chunk = s.chunks; chunk-- > 0;) {
      const size_t t0 = chunk * s.chunk, len = std::min(s.chunk, s.steps - t0);
      TransposeChunk(s, s.B, t0, len, bt.data(), thread_index, num_threads);
      TransposeChunk(s, s.C, t0, len, ct.data(), thread_index, num_threads);
      pool->barrier();
      for (size_t item = range.first; item < range.last; ++item) {
        const Block k = BlockOf(s, item);
        const size_t bc = k.b * s.chunk * s.state;
        // This thread's sums for batch row b start from zero each chunk.
        if (item == range.first || k.index == 0) {
          std::fill(&mine.bt[bc], &mine.bt[bc] + len * s.state, 0.0f);
          std::fill(&mine.ct[bc], &mine.ct[bc] + len * s.state, 0.0f);
        }
        BackwardBlock(s, params, k, chunk, &bt[bc], &ct[bc], &carry[item * block_state], mine, steps);
        if (item + 1 == range.last || k.index + 1 == blocks) FlushStateGrads(s, k.b, len, steps, mine);
      }
      pool->barrier();
      GatherChunkGrads(s, grads, &ThreadGrads::bt, items, t0, len, s.dB, thread_index, num_threads);
      GatherChunkGrads(s, grads, &ThreadGrads::ct, items, t0, len, s.dC, thread_index, num_threads);
      pool->barrier();  // the sums and bt, ct are rewritten next
    }
    // What flows into h_0 is the carry past the first step.
    for (size_t item = range.first; item < range.last && s.dh0; ++item) {
      const Block k = BlockOf(s, item);
      ScatterState(&carry[item * block_state], k, s.state, s.state, s.dh0 + (k.b * s.channels + k.first) * s.state);
    }
    // The per-channel parameters' gradients, summed over threads in order.
    for (size_t channel = s.channels * thread_index / num_threads;
         channel < s.channels * (thread_index + 1) / num_threads; ++channel) {
      const size_t at = channel / lanes * block_state + channel % lanes;
      for (size_t n = 0; n < s.state; ++n) {
        float sum = 0.0f;
        for (const ThreadGrads& g : grads) sum += g.da[at + n * lanes];
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
}

void SelectiveScanStep(const detail::SelectiveStepTensors& s, ThreadPool* pool) {
  const Tag d;
  const size_t lanes = hn::Lanes(d), rows = s.batch * s.channels;
  // δ and the gate for every channel first, a vector of channels at a time.
  AlignedVector delta(hwy::RoundUpTo(rows, lanes)), gate(delta.size(), 1.0f);
  for (size_t r = 0; r < rows; ++r) {
    delta[r] = s.delta[r] + (s.delta_bias ? s.delta_bias[r % s.channels] : 0.0f);
    if (s.z) gate[r] = s.z[r];
  }
  for (size_t i = 0; i < delta.size(); i += lanes) {
    if (s.softplus) hn::Store(Softplus(d, hn::Load(d, &delta[i])), d, &delta[i]);
    if (s.z) {
      const V z = hn::Load(d, &gate[i]);
      hn::Store(hn::Mul(z, FastSigmoid(d, z)), d, &gate[i]);
    }
  }
  // Then each channel's state, N values in vectors (the last one masked).
  auto channels = [&](int thread_index, int num_threads) {
    const ItemRange range = ThreadItems(rows, thread_index, num_threads);
    const auto tail = hn::FirstN(d, s.state % lanes);
    const V min_exponent = hn::Set(d, kMinExponent);
    for (size_t row = range.first; row < range.last; ++row) {
      const size_t b = row / s.channels, channel = row % s.channels;
      const V vdelta = hn::Set(d, delta[row]), delta_u = hn::Set(d, delta[row] * s.u[row]);
      const float* a = s.A + channel * s.state;
      const float* B = s.B + b * s.state;
      const float* C = s.C + b * s.state;
      float* h = s.h + row * s.state;
      V y = hn::Zero(d);
      for (size_t j = 0; j < s.state; j += lanes) {
        const bool full = j + lanes <= s.state;
        auto load = [&](const float* p) { return full ? hn::LoadU(d, p + j) : hn::MaskedLoad(tail, d, p + j); };
        const V decay = hn::Exp(d, hn::Max(hn::Mul(vdelta, load(a)), min_exponent));
        const V state = hn::MulAdd(decay, load(h), hn::Mul(delta_u, load(B)));
        if (full)
          hn::StoreU(state, d, h + j);
        else
          hn::BlendedStore(state, tail, d, h + j);
        y = hn::MulAdd(load(C), state, y);  // masked lanes are 0 in C
      }
      s.y[row] = (hn::GetLane(hn::SumOfLanes(d, y)) + (s.D ? s.D[channel] * s.u[row] : 0.0f)) * gate[row];
    }
  };
  // A step is small: threads only pay off for a large state.
  if (rows * s.state >= (size_t{1} << 16))
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
  detail::require_distinct("selective scan: ", {{"y", y}, {"h_last", h_last}},
                           {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias, in.h0});
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
  detail::require_distinct("selective scan: ",
                           {{"du", grads.du}, {"ddelta", grads.ddelta}, {"dA", grads.dA}, {"dB", grads.dB},
                            {"dC", grads.dC}, {"dD", grads.dD}, {"dz", grads.dz}, {"ddelta_bias", grads.ddelta_bias},
                            {"dh0", grads.dh0}},
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
  // A is not scanned for NaN here: that costs as much as the step itself (a
  // NaN in A still shows as NaN in h and y; the forward checks A).
  require_finite(in.D, "D");
  require_finite(in.delta_bias, "delta_bias");
  detail::require_distinct("selective scan: ", {{"h", h}, {"y", y}},
                           {in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias});
  auto ptr = [](const ConstView& v) { return v.empty() ? nullptr : v.data(); };
  const detail::SelectiveStepTensors s{static_cast<size_t>(B), static_cast<size_t>(D), static_cast<size_t>(N),
                                       in.u.data(), in.delta.data(), in.A.data(), in.B.data(), in.C.data(),
                                       ptr(in.D), ptr(in.z), ptr(in.delta_bias), in.delta_softplus,
                                       h.data(), y.data()};
  HWY_DYNAMIC_DISPATCH(SelectiveScanStep)(s, pool ? pool : &ThreadPool::global());
}

}  // namespace seqk
#endif  // HWY_ONCE
