// The selective scan on Vulkan (shaders/selective_scan_forward.comp,
// selective_scan_backward.comp, selective_scan_reduce.comp): the argument
// checks, the chunk and pass lengths that keep every invocation's loops
// within the device's budget, and the dispatches recorded in order on one
// stream, their grids split to fit the device.
#include "seqk/vulkan_selective_scan.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"
#include "seqk/selective_scan.h"

namespace seqk::vk {

using detail::BufferArg;
using detail::check_buffers;
using detail::fits_u32;

// Fills a SelectiveScanSaved (its fields are private to users).
struct SelectiveScanSavedAccess {
  static void fill(SelectiveScanSaved& saved, const SelectiveScanBuffers& in, int64_t chunk, int64_t chunks,
                   std::shared_ptr<Buffer> states) {
    saved.batch_ = in.batch;
    saved.channels_ = in.channels;
    saved.steps_ = in.steps;
    saved.state_ = in.state;
    saved.chunk_steps_ = chunk;
    saved.chunks_ = chunks;
    saved.states_ = std::move(states);
  }
  static bool matches(const SelectiveScanSaved& saved, const SelectiveScanBuffers& in) {
    return saved.batch_ == in.batch && saved.channels_ == in.channels && saved.steps_ == in.steps &&
           saved.state_ == in.state;
  }
  static const std::shared_ptr<Buffer>& states(const SelectiveScanSaved& saved) { return saved.states_; }
};

namespace {

constexpr uint32_t kGroup = 64;  // invocations per workgroup: channels, or output elements of the sums
constexpr uint32_t kBackwardBindings = 18;

// Push-constant flags (shaders/selective_scan.glsl and each shader's header).
constexpr uint32_t kHasSkip = 1, kHasGate = 2, kHasBias = 4, kSoftplus = 8;
constexpr uint32_t kFromH0 = 16, kFromState = 32, kSave = 64;  // forward
constexpr uint32_t kLastChunk = 16, kHasGradLast = 32;         // backward
constexpr uint32_t kWriteSkip = 1, kWriteBias = 2;             // reduce

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

void check_sizes(int64_t batch, int64_t channels, int64_t steps, int64_t state) {
  require(batch > 0 && channels > 0 && steps > 0 && state > 0, "vulkan selective scan: B, D, L and N must be > 0, got B = ",
          batch, ", D = ", channels, ", L = ", steps, ", N = ", state);
  require(state <= kSelectiveScanMaxState, "vulkan selective scan: N = ", state, " exceeds ", kSelectiveScanMaxState);
}

// Every buffer the shaders index (inputs, checkpoints, the backward's
// scratch) within 32 bits.
void check_indexing(int64_t batch, int64_t channels, int64_t steps, int64_t state, int64_t chunk) {
  const int64_t chunks = (steps + chunk - 1) / chunk;
  require(fits_u32({batch, channels, steps}) && fits_u32({batch, state, steps}) &&
              fits_u32({batch, channels, state + 2}) && fits_u32({batch, channels, chunks, state}) &&
              fits_u32({2, batch, channels, state, chunk}),
          "vulkan selective scan: B = ", batch, ", D = ", channels, ", L = ", steps, ", N = ", state,
          " exceed 32-bit indexing");
}

// Records `kernel` over `count` invocations (workgroups of kGroup along x),
// split into grids the device allows; push.first is each grid's first invocation.
template <typename Push>
void dispatch_split(Stream& stream, detail::Kernel& kernel, std::span<const uint32_t> spec,
                    std::span<const Buffer* const> buffers, Push push, int64_t count) {
  const int64_t groups = (count + kGroup - 1) / kGroup;
  const int64_t max_x = stream.device().impl().limits.maxComputeWorkGroupCount[0];
  for (int64_t first = 0; first < groups; first += max_x) {
    push.first = u32(first * kGroup);
    detail::dispatch(stream, kernel, spec, buffers, &push, u32(std::min(max_x, groups - first)), 1, 1);
  }
}

uint32_t input_flags(bool skip, bool gate, bool bias, bool softplus) {
  return (skip ? kHasSkip : 0) | (gate ? kHasGate : 0) | (bias ? kHasBias : 0) | (softplus ? kSoftplus : 0);
}

// Worst-case loop iterations per invocation, as counted in each shader's header.
uint64_t forward_loops(uint64_t steps, uint64_t chunk, uint64_t state) {
  return steps * (state + 1) + (steps / chunk + 1) * state + 2 * state;
}
uint64_t backward_loops(uint64_t chunk, uint64_t state) { return 3 * chunk * (state + 1) + 5 * state; }

// The longest chunk whose backward fits the loop budget (≥ 1 for N ≤ 256).
int64_t max_chunk(const Device::Impl& d, int64_t state) {
  const uint64_t budget = detail::loop_budget(d), n = static_cast<uint64_t>(state);
  return static_cast<int64_t>(std::min<uint64_t>((budget - 5 * n - 1) / (3 * (n + 1)), std::numeric_limits<int32_t>::max()));
}

// The forward's steps per dispatch: all of them on a GPU; on lavapipe as many
// as fit the loop budget.
int64_t pass_steps(const Device::Impl& d, int64_t steps, int64_t chunk, int64_t state) {
  const uint64_t budget = detail::loop_budget(d), n = static_cast<uint64_t>(state);
  const uint64_t per_step = n + 1 + (n + chunk - 1) / chunk;
  const int64_t pass = static_cast<int64_t>(std::min<uint64_t>((budget - 3 * n - 1) / per_step, steps));
  require(pass >= 1 && forward_loops(pass, chunk, state) < budget, "vulkan selective scan: N = ", state,
          " does not fit the device's loop budget");
  return pass;
}

// Records the forward over all steps, `pass` steps per dispatch. The state
// enters from `state` itself when from_state (a decode step), else from
// in.h0 or zero; it is left in `state`. saved_states null: no checkpoints.
void record_forward(Stream& stream, const SelectiveScanBuffers& in, Buffer& y, Buffer& state, Buffer* saved_states,
                    int64_t chunk, int64_t chunks, int64_t pass, bool from_state) {
  Device::Impl& d = stream.device().impl();
  detail::Kernel& kernel = d.kernel("selective_scan_forward", 12, 0b1110'0000'0000, 9 * sizeof(uint32_t));
  const uint32_t spec[] = {kGroup, u32(in.state)};
  const Buffer* absent = in.u;  // bound where an optional input is missing; never read there
  const Buffer* buffers[] = {in.u,  in.delta, in.A, in.B,  in.C,  in.D ? in.D : absent, in.z ? in.z : absent,
                             in.delta_bias ? in.delta_bias : absent, in.h0 ? in.h0 : absent, &y, &state,
                             saved_states ? saved_states : &y};
  struct Push {
    uint32_t batch, channels, steps, chunk, chunks, t0, t1, first, flags;
  };
  const uint32_t flags = input_flags(in.D, in.z, in.delta_bias, in.delta_softplus) | (saved_states ? kSave : 0);
  for (int64_t t0 = 0; t0 < in.steps; t0 += pass) {
    const uint32_t start = (t0 > 0 || from_state) ? kFromState : in.h0 ? kFromH0 : 0;
    const Push push{u32(in.batch), u32(in.channels),           u32(in.steps), u32(chunk), u32(chunks), u32(t0),
                    u32(std::min(in.steps, t0 + pass)), 0, flags | start};
    dispatch_split(stream, kernel, spec, buffers, push, in.batch * in.channels);
  }
}

// The chunk a training forward uses: `requested` (0: seqk's default) within
// L and the backward's loop budget.
int64_t choose_chunk(const Device::Impl& d, int64_t requested, int64_t steps, int64_t state) {
  require(requested >= 0, "vulkan selective scan: chunk_steps = ", requested, " must be >= 0 (0: chosen)");
  const int64_t most = max_chunk(d, state);
  require(requested <= most, "vulkan selective scan: chunk_steps = ", requested, " exceeds ", most,
          ", the longest chunk whose backward fits the device's loop budget at N = ", state);
  return std::min(requested > 0 ? requested : std::min(kSelectiveScanDefaultChunk, most), steps);
}

// The inputs of the forward and backward, with their sizes.
std::vector<BufferArg> input_args(const SelectiveScanBuffers& in) {
  const int64_t B = in.batch, D = in.channels, L = in.steps, N = in.state;
  return {{"u", in.u, B * D * L, false, false},
          {"delta", in.delta, B * D * L, false, false},
          {"A", in.A, D * N, false, false},
          {"B", in.B, B * N * L, false, false},
          {"C", in.C, B * N * L, false, false},
          {"D", in.D, D, true, false},
          {"z", in.z, B * D * L, true, false},
          {"delta_bias", in.delta_bias, D, true, false},
          {"h0", in.h0, B * D * N, true, false}};
}

}  // namespace

void selective_scan(Stream& stream, const SelectiveScanBuffers& in, Buffer& y, Buffer* h_last,
                    SelectiveScanSaved* saved, int64_t chunk_steps) {
  Device& device = stream.device();
  Device::Impl& d = device.impl();
  check_sizes(in.batch, in.channels, in.steps, in.state);
  const int64_t chunk = choose_chunk(d, chunk_steps, in.steps, in.state);
  const int64_t chunks = (in.steps + chunk - 1) / chunk;
  check_indexing(in.batch, in.channels, in.steps, in.state, chunk);
  const int64_t pass = pass_steps(d, in.steps, chunk, in.state);
  std::vector<BufferArg> args = input_args(in);
  args.push_back({"y", &y, in.batch * in.channels * in.steps, false, true});
  args.push_back({"h_last", h_last, in.batch * in.channels * in.state, true, true});
  check_buffers(d, "vulkan selective scan: ", args);

  // Without h_last the state still needs a home between passes.
  std::shared_ptr<Buffer> state_scratch;
  if (!h_last) {
    state_scratch = std::make_shared<Buffer>(device, in.batch * in.channels * in.state);
    detail::retain(stream, state_scratch);
  }
  std::shared_ptr<Buffer> states;
  if (saved) {
    states = std::make_shared<Buffer>(device, in.batch * in.channels * chunks * in.state);
    detail::retain(stream, states);  // alive until the forward has run, whatever happens to `saved`
  }
  record_forward(stream, in, y, h_last ? *h_last : *state_scratch, states.get(), chunk, chunks, pass, false);
  if (saved) SelectiveScanSavedAccess::fill(*saved, in, chunk, chunks, std::move(states));
}

void selective_scan_backward(Stream& stream, const SelectiveScanBuffers& in, const SelectiveScanSaved& saved,
                             const Buffer& dy, const Buffer* dh_last, const SelectiveScanGradBuffers& grads) {
  Device& device = stream.device();
  Device::Impl& d = device.impl();
  const int64_t B = in.batch, D = in.channels, L = in.steps, N = in.state;
  const std::shared_ptr<Buffer>& states = SelectiveScanSavedAccess::states(saved);
  require(states != nullptr && SelectiveScanSavedAccess::matches(saved, in),
          "vulkan selective scan: `saved` does not come from a training forward on these shapes");
  const int64_t chunk = saved.chunk_steps(), chunks = saved.chunks();
  check_sizes(B, D, L, N);
  check_indexing(B, D, L, N, chunk);
  require(backward_loops(chunk, N) < detail::loop_budget(d), "vulkan selective scan: a chunk of ", chunk,
          " steps at N = ", N, " does not fit the device's loop budget");
  require(static_cast<uint64_t>(std::max(B, D)) < detail::loop_budget(d), "vulkan selective scan: B = ", B, ", D = ", D,
          " are too large for the device's loop budget");
  require(d.limits.maxPerStageDescriptorStorageBuffers >= kBackwardBindings,
          "vulkan selective scan: the backward binds ", kBackwardBindings, " storage buffers; the device allows ",
          d.limits.maxPerStageDescriptorStorageBuffers);
  std::vector<BufferArg> args = input_args(in);
  args.insert(args.end(), {{"saved states", states.get(), B * D * chunks * N, false, false},
                           {"dy", &dy, B * D * L, false, false},
                           {"dh_last", dh_last, B * D * N, true, false},
                           {"du", grads.du, B * D * L, false, true},
                           {"ddelta", grads.ddelta, B * D * L, false, true},
                           {"dA", grads.dA, D * N, false, true},
                           {"dB", grads.dB, B * N * L, false, true},
                           {"dC", grads.dC, B * N * L, false, true},
                           {"dD", grads.dD, D, true, true},
                           {"dz", grads.dz, B * D * L, true, true},
                           {"ddelta_bias", grads.ddelta_bias, D, true, true},
                           {"dh0", grads.dh0, B * D * N, true, true}});
  check_buffers(d, "vulkan selective scan: ", args);
  for (const auto& [input, grad, name] : {std::tuple{in.D, grads.dD, "dD"}, {in.z, grads.dz, "dz"},
                                          {in.delta_bias, grads.ddelta_bias, "ddelta_bias"}}) {
    require((input == nullptr) == (grad == nullptr), "vulkan selective scan: ", name,
            " must be given exactly when its input is");
  }

  // Scratch: this chunk's states and dB/dC terms, g between the chunks (dh0
  // itself when wanted), and the per-channel sums.
  auto scratch = [&](int64_t size) {
    auto buffer = std::make_shared<Buffer>(device, size);
    detail::retain(stream, buffer);
    return buffer;
  };
  const auto chunk_states = scratch(B * D * chunk * N), partials = scratch(2 * B * D * N * chunk),
             sums = scratch(B * D * (N + 2));
  const auto carry_scratch = grads.dh0 ? nullptr : scratch(B * D * N);
  Buffer& carry = grads.dh0 ? *grads.dh0 : *carry_scratch;
  detail::retain(stream, states);

  detail::Kernel& backward = d.kernel("selective_scan_backward", kBackwardBindings, 0b11'1111'1000'0000'0000,
                                      8 * sizeof(uint32_t));
  detail::Kernel& reduce = d.kernel("selective_scan_reduce", 4, 0b1110, 10 * sizeof(uint32_t));
  const uint32_t backward_spec[] = {kGroup, u32(N)}, reduce_spec[] = {kGroup};
  const Buffer* absent = in.u;  // bound where an optional input is missing; never read there
  const Buffer* backward_buffers[] = {in.u, in.delta, in.A, in.B, in.C, in.D ? in.D : absent, in.z ? in.z : absent,
                                      in.delta_bias ? in.delta_bias : absent, &dy, dh_last ? dh_last : absent,
                                      states.get(), chunk_states.get(), &carry, sums.get(), grads.du, grads.ddelta,
                                      grads.dz ? grads.dz : grads.du, partials.get()};
  const Buffer* chunk_sums[] = {partials.get(), grads.dB, grads.dC, grads.dB};
  struct BackwardPush {
    uint32_t batch, channels, steps, chunk, chunks, k, first, flags;
  };
  struct ReducePush {
    uint32_t batch, channels, steps, state, chunk, t0, len, mode, flags, first;
  };
  const uint32_t flags = input_flags(in.D, in.z, in.delta_bias, in.delta_softplus) | (dh_last ? kHasGradLast : 0);
  for (int64_t k = chunks - 1; k >= 0; --k) {
    const BackwardPush push{u32(B), u32(D), u32(L), u32(chunk), u32(chunks), u32(k), 0,
                            flags | (k == chunks - 1 ? kLastChunk : 0)};
    dispatch_split(stream, backward, backward_spec, backward_buffers, push, B * D);
    const int64_t len = std::min(chunk, L - k * chunk);
    const ReducePush sum{u32(B), u32(D), u32(L), u32(N), u32(chunk), u32(k * chunk), u32(len), 0, 0, 0};
    dispatch_split(stream, reduce, reduce_spec, chunk_sums, sum, B * N * len);
  }
  const Buffer* parameter_sums[] = {sums.get(), grads.dA, grads.dD ? grads.dD : grads.dA,
                                    grads.ddelta_bias ? grads.ddelta_bias : grads.dA};
  const ReducePush sum{u32(B), u32(D), u32(L), u32(N), u32(chunk), 0, 0, 1,
                       (grads.dD ? kWriteSkip : 0) | (grads.ddelta_bias ? kWriteBias : 0), 0};
  dispatch_split(stream, reduce, reduce_spec, parameter_sums, sum, D * (N + 2));
}

void selective_scan_step(Stream& stream, const SelectiveScanStepBuffers& in, Buffer& h, Buffer& y) {
  const int64_t B = in.batch, D = in.channels, N = in.state;
  check_sizes(B, D, 1, N);
  check_indexing(B, D, 1, N, 1);
  const int64_t pass = pass_steps(stream.device().impl(), 1, 1, N);
  check_buffers(stream.device().impl(), "vulkan selective scan: ", {{"u", in.u, B * D, false, false},
                                         {"delta", in.delta, B * D, false, false},
                                         {"A", in.A, D * N, false, false},
                                         {"B", in.B, B * N, false, false},
                                         {"C", in.C, B * N, false, false},
                                         {"D", in.D, D, true, false},
                                         {"z", in.z, B * D, true, false},
                                         {"delta_bias", in.delta_bias, D, true, false},
                                         {"h", &h, B * D * N, false, true},
                                         {"y", &y, B * D, false, true}});
  // One step of the forward over (B, D, 1) and (B, N, 1) tensors, the state
  // entering from h and left there.
  const SelectiveScanBuffers step{B,    D,   1,    N,   in.u, in.delta, in.A, in.B, in.C, in.D, in.z, in.delta_bias,
                                  in.delta_softplus, nullptr};
  record_forward(stream, step, y, h, nullptr, 1, 1, pass, true);
}

}  // namespace seqk::vk
