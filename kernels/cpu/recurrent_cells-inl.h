// Fused recurrent cells (LSTM, GRU, vanilla RNN) for one block of 16 hidden
// units and one batch row, for one SIMD target: gate activations, state
// update and output in one pass over data that the block's GEMM tile has
// just written. The gates of a block sit side by side, 16 values each, in
// PyTorch's gate order (seqk/recurrent.h).

#if defined(SEQK_CPU_RECURRENT_CELLS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SEQK_CPU_RECURRENT_CELLS_INL_H_
#undef SEQK_CPU_RECURRENT_CELLS_INL_H_
#else
#define SEQK_CPU_RECURRENT_CELLS_INL_H_
#endif

#include <cstddef>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "seqk/gemm.h"

HWY_BEFORE_NAMESPACE();
namespace seqk {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

inline constexpr size_t kCellLanes = HWY_MIN(size_t{16}, HWY_LANES(float));
using CellTag = hn::FixedTag<float, kCellLanes>;
inline constexpr size_t kUnits = kPanelWidth;  // hidden units per block

// The cell's five activations per unit cost as much as a good part of the
// step's GEMM when computed with divisions, so: σ(x) = 1 / (1 + e^-x) with
// the hardware reciprocal estimate refined by one Newton step (about 1 ulp).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Reciprocal(D d, V a) {
  const V r = hn::ApproximateReciprocal(a);
  return hn::Mul(r, hn::NegMulAdd(a, r, hn::Set(d, 2.0f)));
}

// Stores a block's gate gradient and adds it to the gate's bias gradient.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void StoreGradient(D d, V gradient, float* HWY_RESTRICT to, float* HWY_RESTRICT bias_sum) {
  hn::Store(gradient, d, to);
  hn::Store(hn::Add(hn::Load(d, bias_sum), gradient), d, bias_sum);
}

template <class D, class V = hn::Vec<D>>
HWY_INLINE V FastSigmoid(D d, V x) {
  // Highway's Exp is valid above -104, and σ(-80) is 0 in fp32 anyway.
  const V e = hn::Exp(d, hn::Neg(hn::Max(x, hn::Set(d, -80.0f))));
  return Reciprocal(d, hn::Add(hn::Set(d, 1.0f), e));
}

// tanh(x) as the odd 13/6 rational minimax fit Eigen and MLAS use, clamped
// where tanh rounds to ±1 in fp32: a few ulp, and a dependent chain a third
// as long as that of Exp, which matters because a cell's activations are
// chained (c needs i, f, g; h needs tanh(c)) and would otherwise leave the
// core waiting on latency.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V FastTanh(D d, V x) {
  const V limit = hn::Set(d, 7.90531110763549805f);
  x = hn::Min(hn::Max(x, hn::Neg(limit)), limit);
  const V x2 = hn::Mul(x, x);
  V p = hn::MulAdd(x2, hn::Set(d, -2.76076847742355e-16f), hn::Set(d, 2.00018790482477e-13f));
  p = hn::MulAdd(p, x2, hn::Set(d, -8.60467152213735e-11f));
  p = hn::MulAdd(p, x2, hn::Set(d, 5.12229709037114e-08f));
  p = hn::MulAdd(p, x2, hn::Set(d, 1.48572235717979e-05f));
  p = hn::MulAdd(p, x2, hn::Set(d, 6.37261928875436e-04f));
  p = hn::MulAdd(p, x2, hn::Set(d, 4.89352455891786e-03f));
  V q = hn::MulAdd(x2, hn::Set(d, 1.19825839466702e-06f), hn::Set(d, 1.18534705686654e-04f));
  q = hn::MulAdd(q, x2, hn::Set(d, 2.26843463243900e-03f));
  q = hn::MulAdd(q, x2, hn::Set(d, 4.89352518554385e-03f));
  return hn::Mul(hn::Mul(p, x), Reciprocal(d, q));
}

// The gates' σ(x) = (1 + tanh(x/2)) / 2: absolute error ~1e-7, all the
// cell's sums need, though not relative accuracy far out in the tail
// (FastSigmoid keeps that, for the callers that need it).
template <class D, class V = hn::Vec<D>>
HWY_INLINE V GateSigmoid(D d, V x) {
  const V half = hn::Set(d, 0.5f);
  return hn::MulAdd(half, FastTanh(d, hn::Mul(half, x)), half);
}

// gates: the block's 64 pre-activations [i f g o] for this row; activated in
// place when save_gates. c_prev/c_next: the block's 16 cell values (may
// alias). h_out: the block's 16 outputs.
HWY_INLINE void LstmCellForward(float* HWY_RESTRICT gates, bool save_gates, const float* c_prev, float* c_next,
                                float* HWY_RESTRICT h_out) {
  const CellTag d;
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto i = GateSigmoid(d, hn::Load(d, gates + j));
    const auto f = GateSigmoid(d, hn::Load(d, gates + kUnits + j));
    const auto g = FastTanh(d, hn::Load(d, gates + 2 * kUnits + j));
    const auto o = GateSigmoid(d, hn::Load(d, gates + 3 * kUnits + j));
    const auto c = hn::MulAdd(f, hn::LoadU(d, c_prev + j), hn::Mul(i, g));
    hn::StoreU(c, d, c_next + j);
    hn::StoreU(hn::Mul(o, FastTanh(d, c)), d, h_out + j);
    if (save_gates) {
      hn::Store(i, d, gates + j);
      hn::Store(f, d, gates + kUnits + j);
      hn::Store(g, d, gates + 2 * kUnits + j);
      hn::Store(o, d, gates + 3 * kUnits + j);
    }
  }
}

// From dL/dh_t (dh) and dL/dc_t (dc, updated in place to dL/dc_{t-1}), the
// block's activated gates and cell states, writes dL/d(pre-activations) and
// adds them to the block's bias gradients, dbias.
HWY_INLINE void LstmCellBackward(const float* HWY_RESTRICT gates, const float* HWY_RESTRICT c_prev,
                                 const float* HWY_RESTRICT c_t, const float* HWY_RESTRICT dh, float* HWY_RESTRICT dc,
                                 float* HWY_RESTRICT dgates, float* HWY_RESTRICT dbias) {
  const CellTag d;
  const auto one = hn::Set(d, 1.0f);
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto i = hn::Load(d, gates + j);
    const auto f = hn::Load(d, gates + kUnits + j);
    const auto g = hn::Load(d, gates + 2 * kUnits + j);
    const auto o = hn::Load(d, gates + 3 * kUnits + j);
    const auto tanh_c = FastTanh(d, hn::LoadU(d, c_t + j));
    const auto dh_j = hn::LoadU(d, dh + j);
    // dc_t += dh·o·(1 - tanh²(c_t))
    const auto dc_j = hn::MulAdd(hn::Mul(dh_j, o), hn::NegMulAdd(tanh_c, tanh_c, one), hn::LoadU(d, dc + j));
    const auto di = hn::Mul(dc_j, g);
    const auto df = hn::Mul(dc_j, hn::LoadU(d, c_prev + j));
    const auto dg = hn::Mul(dc_j, i);
    const auto d_o = hn::Mul(dh_j, tanh_c);
    StoreGradient(d, hn::Mul(di, hn::Mul(i, hn::Sub(one, i))), dgates + j, dbias + j);
    StoreGradient(d, hn::Mul(df, hn::Mul(f, hn::Sub(one, f))), dgates + kUnits + j, dbias + kUnits + j);
    StoreGradient(d, hn::Mul(dg, hn::NegMulAdd(g, g, one)), dgates + 2 * kUnits + j, dbias + 2 * kUnits + j);
    StoreGradient(d, hn::Mul(d_o, hn::Mul(o, hn::Sub(one, o))), dgates + 3 * kUnits + j, dbias + 3 * kUnits + j);
    hn::StoreU(hn::Mul(dc_j, f), d, dc + j);
  }
}

// GRU. gates: the block's input-side pre-activations [r z n] (x·W_ihᵀ +
// b_ih), activated in place when save; hidden: the hidden side [r z n]
// (h·W_hhᵀ + b_hh); h_prev: the block's 16 previous outputs. With save, the
// hidden side of n, which backward needs for dr, goes to hn_saved.
HWY_INLINE void GruCellForward(float* HWY_RESTRICT gates, const float* HWY_RESTRICT hidden, bool save,
                               const float* HWY_RESTRICT h_prev, float* HWY_RESTRICT hn_saved,
                               float* HWY_RESTRICT h_out) {
  const CellTag d;
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto r = GateSigmoid(d, hn::Add(hn::Load(d, gates + j), hn::Load(d, hidden + j)));
    const auto z = GateSigmoid(d, hn::Add(hn::Load(d, gates + kUnits + j), hn::Load(d, hidden + kUnits + j)));
    const auto hn_j = hn::Load(d, hidden + 2 * kUnits + j);
    const auto n = FastTanh(d, hn::MulAdd(r, hn_j, hn::Load(d, gates + 2 * kUnits + j)));
    // h = (1 - z)·n + z·h_prev = n + z·(h_prev - n)
    hn::StoreU(hn::MulAdd(z, hn::Sub(hn::LoadU(d, h_prev + j), n), n), d, h_out + j);
    if (save) {
      hn::Store(r, d, gates + j);
      hn::Store(z, d, gates + kUnits + j);
      hn::Store(n, d, gates + 2 * kUnits + j);
      hn::StoreU(hn_j, d, hn_saved + j);
    }
  }
}

// From dL/dh_t (dh) and the saved activations, writes the input-side
// gradients [dr dz dn] (of x·W_ihᵀ + b_ih) and the hidden-side ones, which
// differ in n (of h·W_hhᵀ + b_hh: dn·r), and the part of dL/dh_{t-1} that
// skips the weights, dh·z, to h_grad_direct; each side's gradients are
// added to that side's bias gradients.
HWY_INLINE void GruCellBackward(const float* HWY_RESTRICT gates, const float* HWY_RESTRICT hn_saved,
                                const float* HWY_RESTRICT h_prev, const float* HWY_RESTRICT dh,
                                float* HWY_RESTRICT dgates_input, float* HWY_RESTRICT dgates_hidden,
                                float* HWY_RESTRICT h_grad_direct, float* HWY_RESTRICT dbias_input,
                                float* HWY_RESTRICT dbias_hidden) {
  const CellTag d;
  const auto one = hn::Set(d, 1.0f);
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto r = hn::Load(d, gates + j);
    const auto z = hn::Load(d, gates + kUnits + j);
    const auto n = hn::Load(d, gates + 2 * kUnits + j);
    const auto dh_j = hn::LoadU(d, dh + j);
    const auto dn = hn::Mul(hn::Mul(dh_j, hn::Sub(one, z)), hn::NegMulAdd(n, n, one));
    const auto dz = hn::Mul(hn::Mul(dh_j, hn::Sub(hn::LoadU(d, h_prev + j), n)), hn::Mul(z, hn::Sub(one, z)));
    const auto dr = hn::Mul(hn::Mul(dn, hn::LoadU(d, hn_saved + j)), hn::Mul(r, hn::Sub(one, r)));
    StoreGradient(d, dr, dgates_input + j, dbias_input + j);
    StoreGradient(d, dz, dgates_input + kUnits + j, dbias_input + kUnits + j);
    StoreGradient(d, dn, dgates_input + 2 * kUnits + j, dbias_input + 2 * kUnits + j);
    StoreGradient(d, dr, dgates_hidden + j, dbias_hidden + j);
    StoreGradient(d, dz, dgates_hidden + kUnits + j, dbias_hidden + kUnits + j);
    StoreGradient(d, hn::Mul(dn, r), dgates_hidden + 2 * kUnits + j, dbias_hidden + 2 * kUnits + j);
    hn::StoreU(hn::Mul(dh_j, z), d, h_grad_direct + j);
  }
}

// Vanilla RNN: h = act(pre), pre = x·W_ihᵀ + h·W_hhᵀ + both biases;
// activated in place when save (backward needs only act(pre)).
template <bool kRelu>
HWY_INLINE void RnnCellForward(float* HWY_RESTRICT gates, bool save, float* HWY_RESTRICT h_out) {
  const CellTag d;
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto pre = hn::Load(d, gates + j);
    const auto h = kRelu ? hn::Max(pre, hn::Zero(d)) : FastTanh(d, pre);
    hn::StoreU(h, d, h_out + j);
    if (save) hn::Store(h, d, gates + j);
  }
}

// dL/d(pre) = dh · act'(pre), from h = act(pre): 1 - h² for tanh, [h > 0]
// for relu; added to the block's bias gradients, dbias.
template <bool kRelu>
HWY_INLINE void RnnCellBackward(const float* HWY_RESTRICT gates, const float* HWY_RESTRICT dh,
                                float* HWY_RESTRICT dgates, float* HWY_RESTRICT dbias) {
  const CellTag d;
  for (size_t j = 0; j < kUnits; j += kCellLanes) {
    const auto h = hn::Load(d, gates + j);
    const auto dh_j = hn::LoadU(d, dh + j);
    const auto slope = kRelu ? hn::IfThenElseZero(hn::Gt(h, hn::Zero(d)), hn::Set(d, 1.0f))
                             : hn::NegMulAdd(h, h, hn::Set(d, 1.0f));
    StoreGradient(d, hn::Mul(dh_j, slope), dgates + j, dbias + j);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace seqk
HWY_AFTER_NAMESPACE();

#endif  // SEQK_CPU_RECURRENT_CELLS_INL_H_
