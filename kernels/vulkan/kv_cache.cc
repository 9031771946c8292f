// The KV cache on Vulkan (seqk/vulkan_kv_cache.h): appends as row copies
// into the cache's buffers, and the decode's two dispatches
// (shaders/kv_decode_partial.comp, kv_decode_combine.comp), with every size,
// grid and loop-budget check done before anything is recorded.
#include "seqk/vulkan_kv_cache.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

#include "kernels/kv_decode_args.h"
#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace {

constexpr uint32_t kGroup = 64;  // invocations per workgroup (a power of two: the partial pass's tree reductions)

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

// Worst-case loop iterations of one invocation, as counted in each shader's header.
uint64_t partial_loops(uint64_t chunk, uint64_t head_size) {
  const uint64_t per_thread = (chunk + kGroup - 1) / kGroup, dims = (head_size + kGroup - 1) / kGroup;
  return per_thread * (head_size + 2) + 2 * std::bit_width(kGroup - 1) + dims * (chunk + 1);
}
uint64_t combine_loops(uint64_t chunks) { return 2 * chunks; }

void require_buffer(const Device::Impl& device, const char* where, const char* name, const Buffer& buffer,
                    int64_t floats) {
  require(static_cast<int64_t>(buffer.size()) == floats, where, ": ", name, " holds ", buffer.size(),
          " floats, expected ", floats);
  require(buffer.impl().device == &device, where, ": ", name, " belongs to another device");
}

}  // namespace

KvCache::KvCache(Device& device, int64_t batch, int64_t heads, int64_t capacity, int64_t head_size)
    : device_(&device), batch_(batch), heads_(heads), capacity_(capacity), head_size_(head_size) {
  // The shaders index with 32 bits.
  const int64_t floats = seqk::detail::check_kv_cache_sizes(batch, heads, capacity, head_size,
                                                            std::numeric_limits<uint32_t>::max());
  keys_ = std::make_unique<Buffer>(device, floats);
  values_ = std::make_unique<Buffer>(device, floats);
}

void KvCache::append(Stream& stream, const Buffer& k, const Buffer& v, int64_t positions) {
  constexpr const char* kWhere = "vulkan kv cache append";
  seqk::detail::check_kv_append(kWhere, length_, capacity_, positions);
  Device::Impl& d = stream.device().impl();
  require(&d == &device_->impl(), kWhere, ": the stream belongs to another device than the cache");
  const int64_t heads_total = batch_ * heads_, row = positions * head_size_;
  require_buffer(d, kWhere, "k", k, heads_total * row);
  require_buffer(d, kWhere, "v", v, heads_total * row);
  require(&k != keys_.get() && &v != values_.get() && &k != values_.get() && &v != keys_.get(), kWhere,
          ": k and v must not be the cache's own buffers");
  // Each (b, h) row of P·dh floats goes to its place in the cache, in
  // column pieces the grid's x dimension (64 floats per workgroup) allows.
  const int64_t piece = int64_t{d.limits.maxComputeWorkGroupCount[0]} * 64;
  for (const auto& [from, to] : {std::pair{&k, keys_.get()}, std::pair{&v, values_.get()}}) {
    for (int64_t col = 0; col < row; col += piece) {
      detail::gather_rows(stream, *from, row, col, *to, capacity_ * head_size_, length_ * head_size_ + col,
                          heads_total, std::min(piece, row - col), nullptr, false);
    }
  }
  length_ += positions;
}

Buffer& KvCache::scratch(Stream& stream, int64_t floats) {
  if (!partials_ || static_cast<int64_t>(partials_->size()) < floats) {
    partials_ = std::make_shared<Buffer>(*device_, floats);
  }
  detail::retain(stream, partials_);
  return *partials_;
}

void kv_decode(Stream& stream, KvCache& cache, const Buffer& q, Buffer& out, const KvDecodeOptions& options) {
  constexpr const char* kWhere = "vulkan kv_decode";
  Device::Impl& d = stream.device().impl();
  require(&d == &cache.device_->impl(), kWhere, ": the stream belongs to another device than the cache");
  require(cache.length() > 0, kWhere, ": the cache is empty; append the step's k and v first");
  const int64_t heads_total = cache.batch() * cache.heads(), dh = cache.head_size();
  require_buffer(d, kWhere, "q", q, heads_total * dh);
  require_buffer(d, kWhere, "out", out, heads_total * dh);
  require(&q != &out, kWhere, ": out must not be q");
  seqk::detail::check_kv_decode_chunk(options);
  const float scale = seqk::detail::kv_decode_scale(options, dh);

  const int64_t chunk = options.chunk, chunks = (cache.length() + chunk - 1) / chunk;
  const uint64_t shared_bytes = (static_cast<uint64_t>(chunk) + kGroup) * sizeof(float);
  require(shared_bytes <= d.info.max_shared_memory, kWhere, ": a chunk of ", chunk, " positions needs ", shared_bytes,
          " bytes of shared memory; the device has ", d.info.max_shared_memory);
  require(partial_loops(chunk, dh) < detail::loop_budget(d) && combine_loops(chunks) < detail::loop_budget(d), kWhere,
          ": chunk = ", chunk, " at dh = ", dh, " and length ", cache.length(),
          " does not fit the device's loop budget (a shorter chunk fits a longer one; a longer chunk, a longer context)");
  require(chunks <= d.limits.maxComputeWorkGroupCount[0], kWhere, ": ", chunks,
          " chunks exceed the device's grid; use a longer chunk");
  const int64_t partial_floats = heads_total * chunks * (dh + 2);
  require(partial_floats <= std::numeric_limits<uint32_t>::max(), kWhere, ": ", partial_floats,
          " floats of partial results exceed 32-bit indexing; use a longer chunk");

  Buffer& partials = cache.scratch(stream, partial_floats);
  detail::Kernel& partial = d.kernel("kv_decode_partial", 4, 0b1000, 6 * sizeof(uint32_t));
  detail::Kernel& combine = d.kernel("kv_decode_combine", 2, 0b10, 3 * sizeof(uint32_t));
  const uint32_t partial_spec[] = {kGroup, u32(chunk)}, combine_spec[] = {kGroup};
  const Buffer* partial_buffers[] = {&q, &cache.keys(), &cache.values(), &partials};
  const Buffer* combine_buffers[] = {&partials, &out};
  struct PartialPush {
    uint32_t positions, capacity, head_size, chunks, first_head;
    float scale;
  };
  struct CombinePush {
    uint32_t head_size, chunks, first_head;
  };
  // Heads along y, in as many dispatches as the grid needs.
  const int64_t max_y = d.limits.maxComputeWorkGroupCount[1];
  for (int64_t first = 0; first < heads_total; first += max_y) {
    const PartialPush push{u32(cache.length()), u32(cache.capacity()), u32(dh), u32(chunks), u32(first), scale};
    detail::dispatch(stream, partial, partial_spec, partial_buffers, &push, u32(chunks),
                     u32(std::min(max_y, heads_total - first)), 1);
  }
  for (int64_t first = 0; first < heads_total; first += max_y) {
    const CombinePush push{u32(dh), u32(chunks), u32(first)};
    detail::dispatch(stream, combine, combine_spec, combine_buffers, &push, u32((dh + kGroup - 1) / kGroup),
                     u32(std::min(max_y, heads_total - first)), 1);
  }
}

}  // namespace seqk::vk
