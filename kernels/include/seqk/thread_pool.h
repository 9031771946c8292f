// A fixed set of worker threads that stay alive for the pool's lifetime and
// run SPMD regions: run(fn) calls fn(thread_index, num_threads) on every
// thread (the caller is thread 0) and returns when all have finished. Inside
// a region, barrier() synchronises all of them, which is what a recurrence
// needs once per time step: no thread is created per step, and a barrier is
// a spin on one atomic (falling back to a futex wait when a step is long).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace seqk {

// Waits until `value` no longer holds `old` the way the pool's threads wait
// for each other: spinning first, then sleeping on a futex, so whoever
// changes `value` must notify_all(). For a hand-off from one thread of a
// region to another where a barrier would stop them all.
void wait_while_equal(const std::atomic<uint32_t>& value, uint32_t old);

class ThreadPool {
 public:
  // num_threads <= 0 means default_num_threads().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(thread_index, num_threads) on all threads; rethrows the first
  // exception any of them threw. Calls from several threads at once take
  // turns; a call from inside a region of the same pool throws seqk::Error
  // (it could never start).
  void run(const std::function<void(int, int)>& fn);

  // Waits until every thread of the current region has arrived.
  void barrier();

  // SEQK_NUM_THREADS if set (>= 1), else the hardware concurrency.
  static int default_num_threads();

  // A process-wide pool with default_num_threads() threads.
  static ThreadPool& global();

 private:
  void worker_loop(int thread_index);
  void run_region(int thread_index);

  int num_threads_;
  std::mutex run_mutex_;  // one region at a time
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* region_ = nullptr;
  std::atomic<uint32_t> region_generation_{0};
  std::atomic<int> workers_done_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> barrier_arrived_{0};
  std::atomic<uint32_t> barrier_generation_{0};
  std::exception_ptr first_error_;
  std::atomic<bool> has_error_{false};
};

}  // namespace seqk
