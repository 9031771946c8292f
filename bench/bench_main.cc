// The shared main() of the benchmark binaries: each binary defines
// register_benchmarks() (its rows depend on run-time facts such as the SIMD
// targets the CPU has, so they are registered in code, not with macros).
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include "bench/machine_context.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  seqk_bench::add_machine_context();  // measures the FMA peaks first, on idle cores
  seqk_bench::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
