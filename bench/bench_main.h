// Hooks between the shared main() (bench_main.cc) and each benchmark binary.
#pragma once

namespace seqk_bench {

// Defined once per binary: registers its benchmark rows.
void register_benchmarks();

}  // namespace seqk_bench
