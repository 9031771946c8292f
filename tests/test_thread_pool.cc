// seqk::ThreadPool: SPMD regions, barriers, exception propagation.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "seqk/error.h"
#include "seqk/thread_pool.h"

namespace {

using seqk::ThreadPool;

class ThreadPoolSizes : public testing::TestWithParam<int> {};

TEST_P(ThreadPoolSizes, RunCallsEveryThreadOnceWithItsIndex) {
  const int n = GetParam();
  ThreadPool pool(n);
  ASSERT_EQ(pool.num_threads(), n);
  for (int region = 0; region < 200; ++region) {
    std::vector<std::atomic<int>> calls(n);
    std::atomic<int> bad_count{0};
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<bool> caller_is_thread0{false};
    pool.run([&](int index, int count) {
      if (count != n || index < 0 || index >= n) {
        bad_count.fetch_add(1);
        return;
      }
      calls[index].fetch_add(1);
      if (index == 0 && std::this_thread::get_id() == caller) caller_is_thread0 = true;
    });
    // run() returns only when all threads are done: every count is final.
    for (int i = 0; i < n; ++i) ASSERT_EQ(calls[i].load(), 1) << "region " << region << " thread " << i;
    ASSERT_EQ(bad_count.load(), 0);
    ASSERT_TRUE(caller_is_thread0.load()) << "the caller must be thread 0";
  }
}

// Each phase every thread writes its slot, meets the others at a barrier,
// then checks that it sees every slot of that phase written. A barrier that
// lets a thread through early shows up as a missed slot.
TEST_P(ThreadPoolSizes, BarrierSeparatesPhases) {
  const int n = GetParam();
  ThreadPool pool(n);
  // Few phases: with more threads than cores (3 on a 2-vCPU machine) every
  // barrier waits for a descheduled thread, which costs milliseconds.
  constexpr int kPhases = 300;
  std::vector<std::atomic<int>> slots(n);
  for (auto& s : slots) s = -1;
  std::atomic<int> errors{0};
  pool.run([&](int index, int count) {
    for (int phase = 0; phase < kPhases; ++phase) {
      slots[index].store(phase, std::memory_order_relaxed);
      pool.barrier();
      for (int j = 0; j < count; ++j) {
        if (slots[j].load(std::memory_order_relaxed) != phase) errors.fetch_add(1);
      }
      pool.barrier();  // nobody starts writing the next phase while others still read
    }
  });
  EXPECT_EQ(errors.load(), 0);
}

// One thread is slow before the barrier (long enough that the others stop
// spinning and sleep): nobody may pass before it arrives.
TEST_P(ThreadPoolSizes, BarrierWaitsForSlowThread) {
  const int n = GetParam();
  ThreadPool pool(n);
  std::atomic<int> arrived{0};
  std::atomic<int> early{0};
  for (int slow = 0; slow < n; ++slow) {
    arrived = 0;
    pool.run([&](int index, int count) {
      if (index == slow) std::this_thread::sleep_for(std::chrono::milliseconds(30));
      arrived.fetch_add(1);
      pool.barrier();
      if (arrived.load() != count) early.fetch_add(1);
    });
  }
  EXPECT_EQ(early.load(), 0);
}

// The regions write plain (non-atomic) data; run() returning must make all
// of it visible to the caller, and results must not depend on the pool size.
TEST_P(ThreadPoolSizes, RegionResultsVisibleToCaller) {
  const int n = GetParam();
  ThreadPool pool(n);
  std::vector<double> data(10007);
  for (int rep = 0; rep < 50; ++rep) {
    pool.run([&](int index, int count) {
      for (std::size_t i = index; i < data.size(); i += count) data[i] = static_cast<double>(i) * rep;
    });
    for (std::size_t i = 0; i < data.size(); ++i) ASSERT_EQ(data[i], static_cast<double>(i) * rep);
  }
}

TEST_P(ThreadPoolSizes, ExceptionFromAnyThreadIsRethrown) {
  const int n = GetParam();
  ThreadPool pool(n);
  for (int thrower = 0; thrower < n; ++thrower) {
    std::atomic<int> finished{0};
    try {
      pool.run([&](int index, int) {
        if (index == thrower) throw std::runtime_error("boom from " + std::to_string(index));
        finished.fetch_add(1);
      });
      ADD_FAILURE() << "run() swallowed the exception of thread " << thrower;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "boom from " + std::to_string(thrower));
    }
    // The other threads ran to completion before run() rethrew.
    EXPECT_EQ(finished.load(), n - 1);
    // And the pool is still usable, with no stale error.
    std::atomic<int> ok{0};
    EXPECT_NO_THROW(pool.run([&](int, int) { ok.fetch_add(1); }));
    EXPECT_EQ(ok.load(), n);
  }
}

TEST_P(ThreadPoolSizes, OneOfSeveralExceptionsIsRethrown) {
  const int n = GetParam();
  ThreadPool pool(n);
  EXPECT_THROW(pool.run([&](int index, int) { throw std::logic_error("thread " + std::to_string(index)); }),
               std::logic_error);
  std::atomic<int> ok{0};
  EXPECT_NO_THROW(pool.run([&](int, int) { ok.fetch_add(1); }));
  EXPECT_EQ(ok.load(), n);
}

// A region started from inside a region of the same pool could never get
// its threads: it must fail at once, not hang.
TEST_P(ThreadPoolSizes, NestedRegionThrows) {
  seqk::ThreadPool pool(GetParam());
  std::atomic<int> errors{0};
  pool.run([&](int, int) {
    try {
      pool.run([](int, int) {});
    } catch (const seqk::Error& e) {
      EXPECT_THAT(e.what(), testing::HasSubstr("nested"));
      ++errors;
    }
  });
  EXPECT_EQ(errors.load(), GetParam());
  // The pool is still usable afterwards.
  std::atomic<int> calls{0};
  pool.run([&](int, int) { ++calls; });
  EXPECT_EQ(calls.load(), GetParam());
}

// Several caller threads sharing one pool (as every kernel shares the global
// pool by default) take turns: each region still sees all threads, and the
// barrier inside each region still separates its phases.
TEST_P(ThreadPoolSizes, ConcurrentCallersTakeTurns) {
  seqk::ThreadPool pool(GetParam());
  constexpr int kCallers = 4, kRegionsPerCaller = 200;
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  for (int caller = 0; caller < kCallers; ++caller) {
    callers.emplace_back([&] {
      for (int region = 0; region < kRegionsPerCaller; ++region) {
        std::vector<int> first(static_cast<size_t>(pool.num_threads()), 0);
        std::atomic<int> arrived{0};
        pool.run([&](int index, int count) {
          if (count != pool.num_threads()) ++bad;
          first[static_cast<size_t>(index)] = 1;
          ++arrived;
          pool.barrier();
          if (arrived.load() != count) ++bad;  // every thread passed phase one
        });
        for (int seen : first)
          if (seen != 1) ++bad;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(bad.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Threads, ThreadPoolSizes, testing::Values(1, 2, 3),
                         [](const testing::TestParamInfo<int>& info) { return std::to_string(info.param); });

TEST(ThreadPool, ManyPoolsCreatedAndDestroyed) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(1 + i % 4);
    std::atomic<int> count{0};
    pool.run([&](int, int) { count.fetch_add(1); });
    EXPECT_EQ(count.load(), 1 + i % 4);
  }
  // A pool that never ran a region shuts down cleanly too.
  ThreadPool idle(3);
}

TEST(ThreadPool, DefaultSizeFollowsEnvironment) {
  const char* old = std::getenv("SEQK_NUM_THREADS");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;

  setenv("SEQK_NUM_THREADS", "3", 1);
  EXPECT_EQ(ThreadPool::default_num_threads(), 3);
  {
    ThreadPool pool;  // 0 = default
    EXPECT_EQ(pool.num_threads(), 3);
  }
  setenv("SEQK_NUM_THREADS", "zero", 1);
  EXPECT_THROW(ThreadPool::default_num_threads(), seqk::Error);
  setenv("SEQK_NUM_THREADS", "0", 1);
  EXPECT_THROW(ThreadPool::default_num_threads(), seqk::Error);
  unsetenv("SEQK_NUM_THREADS");
  EXPECT_GE(ThreadPool::default_num_threads(), 1);

  if (saved) setenv("SEQK_NUM_THREADS", saved->c_str(), 1);
}

TEST(ThreadPool, GlobalPoolIsUsable) {
  ThreadPool& pool = ThreadPool::global();
  EXPECT_EQ(&pool, &ThreadPool::global());
  EXPECT_GE(pool.num_threads(), 1);
  std::atomic<int> count{0};
  pool.run([&](int, int) {
    count.fetch_add(1);
    pool.barrier();
  });
  EXPECT_EQ(count.load(), pool.num_threads());
}

}  // namespace
