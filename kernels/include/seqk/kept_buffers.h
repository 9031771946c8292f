// Buffers that a const object (a layer, a stack) keeps from call to call for
// its inference path, where no saved state is passed in: buffers of a few
// MiB made fresh on every call are returned to the system when freed, and
// every call then pays their page faults again, as much as a layer's
// arithmetic on a busy VM. One call uses them at a time; a call that finds
// them in use (another thread running the same object) makes its own. A
// copy of the owner starts without any.
#pragma once

#include <mutex>

namespace seqk {

template <typename Buffers>
class KeptBuffers {
 public:
  KeptBuffers() = default;
  KeptBuffers(const KeptBuffers&) {}
  KeptBuffers& operator=(const KeptBuffers&) { return *this; }

  // The kept buffers, held for as long as `lease` is; `own` if they are in use.
  Buffers& take(std::unique_lock<std::mutex>& lease, Buffers& own) {
    lease = std::unique_lock(in_use_, std::try_to_lock);
    return lease.owns_lock() ? buffers_ : own;
  }

 private:
  std::mutex in_use_;
  Buffers buffers_;
};

}  // namespace seqk
