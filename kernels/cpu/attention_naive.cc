// The naive attention form (seqk/attention.h): per head, the Lq×Lk scores
// through one GEMM into the caller's probs, a softmax over each row, and
// one more GEMM for the output; the backward is four GEMMs around the
// softmax's row-wise backward. Heads run one after another, each GEMM and
// row pass over the whole pool.
#include "kernels/cpu/attention_shape.h"
#include "kernels/cpu/distinct.h"
#include "seqk/aligned.h"
#include "seqk/attention.h"
#include "seqk/gemm.h"

namespace seqk {

namespace {

// One head's (rows, cols) matrix inside a (B, H, rows, cols) tensor.
template <typename T>
TensorView<T> head_matrix(const TensorView<T>& t, size_t head) {
  const int64_t rows = t.dim(2), cols = t.dim(3);
  return TensorView<T>(t.data() + static_cast<int64_t>(head) * rows * cols, {rows, cols});
}

}  // namespace

void attention_naive_forward(const AttentionInputs& in, View out, View probs, ThreadPool* pool) {
  const detail::AttentionShape s = detail::check_attention_inputs(in);
  const int64_t B = in.q.dim(0), H = in.q.dim(1), Lq = in.q.dim(2), dh = in.q.dim(3), Lk = in.k.dim(2);
  require_shape(out, "out", {B, H, Lq, dh});
  require_shape(probs, "probs", {B, H, Lq, Lk});
  detail::require_distinct("", {{"out", out}, {"probs", probs}}, {in.q, in.k, in.v});
  pool = pool ? pool : &ThreadPool::global();
  for (size_t head = 0; head < s.heads_total(); ++head) {
    const View p = head_matrix(probs, head);
    gemm(head_matrix(in.q, head), PackedMatrix(head_matrix(in.k, head)), p, {}, pool);
    detail::softmax_rows(s, head / s.heads, p.data(), pool);
    gemm(p, PackedMatrix(head_matrix(in.v, head).transposed()), head_matrix(out, head), {}, pool);
  }
}

void attention_naive_backward(const AttentionInputs& in, ConstView probs, ConstView dout, const AttentionGrads& grads,
                              ThreadPool* pool) {
  const detail::AttentionShape s = detail::check_attention_inputs(in);
  const int64_t B = in.q.dim(0), H = in.q.dim(1), Lq = in.q.dim(2), dh = in.q.dim(3), Lk = in.k.dim(2);
  require_shape(probs, "probs", {B, H, Lq, Lk});
  require_shape(dout, "dout", {B, H, Lq, dh});
  require_shape(grads.dq, "dq", {B, H, Lq, dh});
  require_shape(grads.dk, "dk", {B, H, Lk, dh});
  require_shape(grads.dv, "dv", {B, H, Lk, dh});
  detail::require_distinct("", {{"dq", grads.dq}, {"dk", grads.dk}, {"dv", grads.dv}}, {in.q, in.k, in.v, probs, dout});
  pool = pool ? pool : &ThreadPool::global();
  AlignedVector dscores(static_cast<size_t>(Lq * Lk));
  const View ds(dscores.data(), {Lq, Lk});
  for (size_t head = 0; head < s.heads_total(); ++head) {
    const ConstView p = head_matrix(probs, head), dO = head_matrix(dout, head);
    const ConstView q = head_matrix(in.q, head), k = head_matrix(in.k, head), v = head_matrix(in.v, head);
    gemm(p.transposed(), PackedMatrix(dO.transposed()), head_matrix(grads.dv, head), {}, pool);  // dv = Pᵀ·dO
    gemm(dO, PackedMatrix(v), ds, {}, pool);                                                    // dP = dO·Vᵀ
    detail::softmax_backward_rows(s, p.data(), ds.data(), pool);                                // dS
    gemm(ds, PackedMatrix(k.transposed()), head_matrix(grads.dq, head), {}, pool);               // dq = dS·K
    gemm(ConstView(ds).transposed(), PackedMatrix(q.transposed()), head_matrix(grads.dk, head), {}, pool);  // dk = dSᵀ·Q
  }
}

}  // namespace seqk
