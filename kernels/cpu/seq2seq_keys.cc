// The key projection of seq2seq attention (seqk/seq2seq_attention.h),
// keys = h · w_keyᵀ, and its backward: three GEMMs over all B·S encoder
// rows at once.
#include "kernels/cpu/distinct.h"
#include "seqk/error.h"
#include "seqk/gemm.h"
#include "seqk/seq2seq_attention.h"

namespace seqk {

namespace {

const char* kWho = "seq2seq attention: ";

// h (B, S, Dh) with every size > 0 and w_key (K, Dh) with K > 0.
void check_projection(const ConstView& h, const ConstView& w_key) {
  require(h.data() != nullptr && h.rank() == 3, kWho, "h must be (B, S, Dh), got ",
          h.empty() ? "null" : h.shape_string());
  require(w_key.data() != nullptr && w_key.rank() == 2, kWho, "w_key must be (K, Dh), got ",
          w_key.empty() ? "null" : w_key.shape_string());
  require(h.numel() > 0 && w_key.numel() > 0, kWho, "h ", h.shape_string(), " and w_key ", w_key.shape_string(),
          " must not be empty");
  require_shape(h, "h", {h.dim(0), h.dim(1), h.dim(2)});
  require_shape(w_key, "w_key", {w_key.dim(0), h.dim(2)});
}

template <typename T>
TensorView<T> rows_of(const TensorView<T>& t) {
  return TensorView<T>(t.data(), {t.dim(0) * t.dim(1), t.dim(2)});
}

}  // namespace

void seq2seq_project_keys(ConstView h, ConstView w_key, View keys, ThreadPool* pool) {
  check_projection(h, w_key);
  require_shape(keys, "keys", {h.dim(0), h.dim(1), w_key.dim(0)});
  detail::require_distinct(kWho, {{"keys", keys}}, {h, w_key});
  gemm(rows_of(h), PackedMatrix(w_key), rows_of(keys), {}, pool);
}

void seq2seq_project_keys_backward(ConstView h, ConstView w_key, ConstView dkeys, View dh, View dw_key,
                                   ThreadPool* pool) {
  check_projection(h, w_key);
  require_shape(dkeys, "dkeys", {h.dim(0), h.dim(1), w_key.dim(0)});
  require_shape(dh, "dh", {h.dim(0), h.dim(1), h.dim(2)});
  require_shape(dw_key, "dw_key", {w_key.dim(0), w_key.dim(1)});
  detail::require_distinct(kWho, {{"dh", dh}, {"dw_key", dw_key}}, {h, w_key, dkeys});
  const ConstView dk = rows_of(dkeys);
  GemmArgs accumulate;
  accumulate.accumulate = true;
  gemm(dk, PackedMatrix(w_key.transposed()), rows_of(dh), accumulate, pool);
  gemm(dk.transposed(), PackedMatrix(rows_of(h).transposed()), dw_key, {}, pool);
}

}  // namespace seqk
