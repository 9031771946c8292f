// The library's error type: every public entry point reports bad input
// (wrong shapes, zero sizes, null pointers, non-finite values where they are
// not allowed) by throwing seqk::Error with a message naming the offending
// argument and values, before anything is written.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace seqk {

class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream message;
  message << "seqk: ";
  (message << ... << parts);
  throw Error(message.str());
}
}  // namespace detail

// require(condition, "what", value, "...") throws seqk::Error built from the
// parts when the condition is false.
template <typename... Parts>
void require(bool condition, const Parts&... parts) {
  if (!condition) detail::fail(parts...);
}

}  // namespace seqk
