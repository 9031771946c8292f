// Runs a timing function in a fork()ed child process, so a peer library that
// crashes or hangs on some configuration costs one skipped row, not the run.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace seqk_bench {

struct ChildTiming {
  std::vector<double> seconds;  // what the child's function returned
  std::string error;            // empty on success, else why there are no numbers
};

// Calls `timed` in a child process and returns its per-iteration seconds, or
// an error if it threw, died from a signal or ran longer than
// `timeout_seconds` (the child is then killed). The parent process touches
// nothing of what `timed` uses, so libraries with fork-unsafe state
// (OpenMP's thread pool) start fresh in each child.
ChildTiming time_in_child(const std::function<std::vector<double>()>& timed, double timeout_seconds);

}  // namespace seqk_bench
