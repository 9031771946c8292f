// The SPIR-V of shaders/*.comp, compiled by glslc at build time (-mfmt=num:
// comma-separated words) and embedded here, looked up by shader name.
#include <string>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk::detail {
namespace {

const uint32_t kAttentionBackwardDelta[] = {
#include "attention_backward_delta.spv.h"
};
const uint32_t kAttentionBackwardDkdv[] = {
#include "attention_backward_dkdv.spv.h"
};
const uint32_t kAttentionBackwardDq[] = {
#include "attention_backward_dq.spv.h"
};
const uint32_t kAttentionForward[] = {
#include "attention_forward.spv.h"
};
const uint32_t kAttentionSoftmax[] = {
#include "attention_softmax.spv.h"
};
const uint32_t kAttentionSoftmaxBackward[] = {
#include "attention_softmax_backward.spv.h"
};
const uint32_t kCopy[] = {
#include "copy.spv.h"
};
const uint32_t kGatherRows[] = {
#include "gather_rows.spv.h"
};
const uint32_t kLinearScan[] = {
#include "linear_scan.spv.h"
};
const uint32_t kMinRnnGatesForward[] = {
#include "min_rnn_gates_forward.spv.h"
};
const uint32_t kMinRnnGatesBackward[] = {
#include "min_rnn_gates_backward.spv.h"
};
const uint32_t kGemm[] = {
#include "gemm.spv.h"
};
const uint32_t kKvDecodeCombine[] = {
#include "kv_decode_combine.spv.h"
};
const uint32_t kKvDecodePartial[] = {
#include "kv_decode_partial.spv.h"
};
const uint32_t kRecurrentForwardStep[] = {
#include "recurrent_forward_step.spv.h"
};
const uint32_t kRecurrentBackwardStep[] = {
#include "recurrent_backward_step.spv.h"
};
const uint32_t kSelectiveScanForward[] = {
#include "selective_scan_forward.spv.h"
};
const uint32_t kSelectiveScanBackward[] = {
#include "selective_scan_backward.spv.h"
};
const uint32_t kSelectiveScanReduce[] = {
#include "selective_scan_reduce.spv.h"
};
const uint32_t kSeq2SeqAttentionForward[] = {
#include "seq2seq_attention_forward.spv.h"
};
const uint32_t kSeq2SeqAttentionBackwardRows[] = {
#include "seq2seq_attention_backward_rows.spv.h"
};
const uint32_t kSeq2SeqAttentionSums[] = {
#include "seq2seq_attention_sums.spv.h"
};

}  // namespace

std::span<const uint32_t> shader_spirv(const std::string& name) {
  if (name == "attention_backward_delta") return kAttentionBackwardDelta;
  if (name == "attention_backward_dkdv") return kAttentionBackwardDkdv;
  if (name == "attention_backward_dq") return kAttentionBackwardDq;
  if (name == "attention_forward") return kAttentionForward;
  if (name == "attention_softmax") return kAttentionSoftmax;
  if (name == "attention_softmax_backward") return kAttentionSoftmaxBackward;
  if (name == "copy") return kCopy;
  if (name == "gather_rows") return kGatherRows;
  if (name == "gemm") return kGemm;
  if (name == "kv_decode_combine") return kKvDecodeCombine;
  if (name == "kv_decode_partial") return kKvDecodePartial;
  if (name == "linear_scan") return kLinearScan;
  if (name == "min_rnn_gates_forward") return kMinRnnGatesForward;
  if (name == "min_rnn_gates_backward") return kMinRnnGatesBackward;
  if (name == "recurrent_forward_step") return kRecurrentForwardStep;
  if (name == "recurrent_backward_step") return kRecurrentBackwardStep;
  if (name == "selective_scan_forward") return kSelectiveScanForward;
  if (name == "selective_scan_backward") return kSelectiveScanBackward;
  if (name == "selective_scan_reduce") return kSelectiveScanReduce;
  if (name == "seq2seq_attention_forward") return kSeq2SeqAttentionForward;
  if (name == "seq2seq_attention_backward_rows") return kSeq2SeqAttentionBackwardRows;
  if (name == "seq2seq_attention_sums") return kSeq2SeqAttentionSums;
  seqk::detail::fail("vulkan: no embedded shader named '", name, "'");
}

}  // namespace seqk::vk::detail
