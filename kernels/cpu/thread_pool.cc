#include "seqk/thread_pool.h"

#include <chrono>
#include <cstdlib>
#include <string>

#include "seqk/error.h"

namespace seqk {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A recurrence step takes tens of microseconds and a futex wake-up costs
// about as much, so waiting threads spin first; after kSpinTime they sleep,
// so an idle or oversubscribed pool does not burn the cores. The limit is a
// time, not a count, because `pause` costs 1 ns on some CPUs and 80 on others.
constexpr auto kSpinTime = std::chrono::microseconds(50);

template <typename T>
void spin_then_sleep_while_equal(const std::atomic<T>& value, T old) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (unsigned i = 1;; ++i) {
    if (value.load(std::memory_order_acquire) != old) return;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  while (value.load(std::memory_order_acquire) == old) value.wait(old, std::memory_order_acquire);
}

// The pool whose region this thread is running, if any.
thread_local const ThreadPool* current_region_pool = nullptr;

class RegionMark {
 public:
  explicit RegionMark(const ThreadPool* pool) : previous_(current_region_pool) { current_region_pool = pool; }
  ~RegionMark() { current_region_pool = previous_; }

 private:
  const ThreadPool* previous_;
};

}  // namespace

void wait_while_equal(const std::atomic<uint32_t>& value, uint32_t old) { spin_then_sleep_while_equal(value, old); }

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads > 0 ? num_threads : default_num_threads()) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true, std::memory_order_release);
  region_generation_.fetch_add(1, std::memory_order_acq_rel);
  region_generation_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

int ThreadPool::default_num_threads() {
  if (const char* env = std::getenv("SEQK_NUM_THREADS")) {
    const int n = std::atoi(env);
    require(n >= 1 && n <= 1024, "SEQK_NUM_THREADS must be an integer in 1..1024, got '", env, "'");
    return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  require(current_region_pool != this,
          "ThreadPool::run called from inside a region of the same pool (nested regions would deadlock)");
  std::lock_guard<std::mutex> one_region_at_a_time(run_mutex_);
  const RegionMark mark(this);
  if (num_threads_ == 1) {
    fn(0, 1);
    return;
  }
  region_ = &fn;
  first_error_ = nullptr;
  has_error_.store(false, std::memory_order_relaxed);
  workers_done_.store(0, std::memory_order_relaxed);
  region_generation_.fetch_add(1, std::memory_order_acq_rel);
  region_generation_.notify_all();

  run_region(0);
  for (int done = workers_done_.load(std::memory_order_acquire); done != num_threads_ - 1;
       done = workers_done_.load(std::memory_order_acquire)) {
    spin_then_sleep_while_equal(workers_done_, done);
  }
  region_ = nullptr;
  if (first_error_) std::rethrow_exception(first_error_);
}

void ThreadPool::worker_loop(int thread_index) {
  uint32_t seen = 0;
  for (;;) {
    spin_then_sleep_while_equal(region_generation_, seen);
    seen = region_generation_.load(std::memory_order_acquire);
    if (stopping_.load(std::memory_order_acquire)) return;
    const RegionMark mark(this);
    run_region(thread_index);
    workers_done_.fetch_add(1, std::memory_order_acq_rel);
    workers_done_.notify_all();
  }
}

// Runs this thread's part of the current region, keeping the first
// exception of any thread for run() to rethrow.
void ThreadPool::run_region(int thread_index) {
  try {
    (*region_)(thread_index, num_threads_);
  } catch (...) {
    if (!has_error_.exchange(true)) first_error_ = std::current_exception();
  }
}

void ThreadPool::barrier() {
  if (num_threads_ == 1) return;
  const uint32_t generation = barrier_generation_.load(std::memory_order_acquire);
  if (barrier_arrived_.fetch_add(1, std::memory_order_acq_rel) == num_threads_ - 1) {
    barrier_arrived_.store(0, std::memory_order_relaxed);
    barrier_generation_.fetch_add(1, std::memory_order_acq_rel);
    barrier_generation_.notify_all();
  } else {
    spin_then_sleep_while_equal(barrier_generation_, generation);
  }
}

}  // namespace seqk
