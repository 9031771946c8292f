// A float vector whose storage is aligned for any SIMD target (64 bytes), so
// kernels can use aligned loads on packed data.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace seqk {

template <typename T, std::size_t kAlignment = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, kAlignment>&) {}  // NOLINT(google-explicit-constructor)
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, kAlignment>;
  };
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{kAlignment}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{kAlignment}); }
  bool operator==(const AlignedAllocator&) const { return true; }
  bool operator!=(const AlignedAllocator&) const { return false; }
};

using AlignedVector = std::vector<float, AlignedAllocator<float>>;

}  // namespace seqk
