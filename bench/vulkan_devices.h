// The Vulkan devices a benchmark binary measures on.
#pragma once

#include <benchmark/benchmark.h>

#include <vector>

#include "seqk/vulkan.h"

namespace seqk_bench {

// Every Vulkan device, by index, each described in the run's context
// (vulkan_device_<index>: name, driver, type, API version, subgroup size);
// none, with a note in the context, when there is no loader or device, so
// the CPU rows still run.
std::vector<seqk::vk::DeviceInfo> vulkan_devices();

// Device `index`, opened on first use and kept for the run.
seqk::vk::Device& vulkan_device(int index);

// Calls `record` (which records work on `stream`) and submits: once to warm
// up (pipelines), then once per benchmark iteration, each iteration timed
// by the submit's GPU time (for rows with UseManualTime). Returns the loop's
// GPU seconds. `stream` must take timestamps.
template <typename Record>
double time_gpu_loop(benchmark::State& state, seqk::vk::Stream& stream, Record&& record) {
  auto run = [&] {
    record();
    stream.submit();
  };
  run();
  double seconds = 0;
  for (auto _ : state) {
    run();
    const double gpu_seconds = stream.last_gpu_ms() * 1e-3;
    state.SetIterationTime(gpu_seconds);
    seconds += gpu_seconds;
  }
  return seconds;
}

}  // namespace seqk_bench
