#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define MODELSLICE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define MODELSLICE_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define MODELSLICE_CPU_RELAX() ((void)0)
#endif

namespace modelslice {

namespace {
// The cores this process may run on (its affinity mask on Linux, so a container
// or taskset limit counts), at least 1.
int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

int compute_max_threads() { return std::min(kMaxThreadsCap, 4 * available_cores()); }

int default_threads() {
  if (const char* env = std::getenv("MODELSLICE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, max_threads());
  }
  return available_cores();
}

// How long an idle worker (or the caller waiting for workers) polls before it
// sleeps on a condition variable. A poll catches the next kernel of a forward
// pass, which follows within microseconds, where waking a sleeping thread costs
// 50-60 us on a virtual machine: at batch 1, where a kernel takes 10-30 us, a
// 5 us budget made two threads 3-5x slower than one (bench/RESULTS.md, "Waking
// threads"). MODELSLICE_SPIN_US overrides it (0 sleeps at once).
constexpr int kDefaultSpinUs = 50;
// Polls in the first microseconds are pure pause loops; later ones also yield.
constexpr int kPureSpinUs = 2;
// A poll that returns this late means the thread was descheduled: the cores are
// oversubscribed (another process, more threads than cores). Polling then only
// loses the scheduler's preference for threads that slept, which is what gets a
// woken worker its core back at once, so every pool sleeps at once for a while.
constexpr int kDescheduledUs = 200;
constexpr int kBackoffMs = 100;

int spin_microseconds() {
  if (const char* env = std::getenv("MODELSLICE_SPIN_US")) {
    int n = std::atoi(env);
    if (n >= 0 && n <= 1000000) return n;
  }
  return kDefaultSpinUs;
}

using Clock = std::chrono::steady_clock;
// Until when (steady_clock ticks) polling is off, after a poll saw the thread descheduled.
std::atomic<Clock::rep> g_no_spin_until{0};

// Polls ready() until it holds (true) or `budget_us` microseconds have passed
// (false). After the first microseconds every poll also yields the core, so a
// runnable thread that shares it (the JS thread's garbage collector) runs
// instead of waiting out our spin.
template <typename Ready>
bool spin_until(int budget_us, Ready&& ready) {
  if (ready()) return true;
  if (budget_us <= 0) return false;
  const auto start = Clock::now();
  if (start.time_since_epoch().count() < g_no_spin_until.load(std::memory_order_relaxed))
    return false;
  const auto budget = std::chrono::microseconds(budget_us);
  const auto pure = std::chrono::microseconds(kPureSpinUs);
  const auto descheduled = std::chrono::microseconds(kDescheduledUs);
  auto last = start;
  for (;;) {
    for (int i = 0; i < 64; i++) MODELSLICE_CPU_RELAX();
    if (ready()) return true;
    const auto now = Clock::now();
    if (now - last >= descheduled) {
      g_no_spin_until.store(
          (now + std::chrono::milliseconds(kBackoffMs)).time_since_epoch().count(),
          std::memory_order_relaxed);
      return false;
    }
    if (now - start >= budget) return false;
    if (now - start >= pure) std::this_thread::yield();
    last = Clock::now();
  }
}

// The OS thread id on Linux (as /proc/self/task lists it), else a hash of std::thread::id.
uint64_t current_thread_id() {
#if defined(__linux__)
  thread_local const uint64_t id = static_cast<uint64_t>(syscall(SYS_gettid));
#else
  thread_local const uint64_t id =
      static_cast<uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id()));
#endif
  return id;
}

// Threads that ran the shares of this thread's last parallel_run.
thread_local std::vector<uint64_t> tl_last_run;

// A fork-join pool owned by one calling thread (see pool_for_this_thread). One
// job at a time: the owner writes (fn, ctx) and then publishes the job word, a
// generation count and nt in one atomic; every worker whose index is below nt
// runs its share and decrements `pending_`; the owner runs share 0 and then
// waits for pending_ to reach zero. Workers beyond nt read nothing but the job
// word, so an idle worker (after the thread count went down) never holds up a
// job. The destructor stops and joins the workers.
class ThreadPool {
 public:
  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    stop_.store(true, std::memory_order_seq_cst);
    publish(0);
    for (auto& w : workers_) w.join();
  }

  void run(int threads, detail::JobFn call, void* ctx) {
    // A job started from inside a job runs inline: one thread computing all
    // shares in order gives the same result, since kernels split work only by
    // (t, nt) and never by which thread runs it.
    if (inside_job_) {
      run_inline(threads, call, ctx);
      return;
    }
    // Starting a thread can fail (a process or user thread limit): that
    // std::system_error reaches the caller before any job is published, and
    // the workers started so far stay usable.
    ensure_workers(threads - 1);
    call_ = call;
    ctx_ = ctx;
    error_ = nullptr;
    ran_by_.assign(static_cast<size_t>(threads), 0);
    ran_by_[0] = current_thread_id();
    pending_.store(threads - 1, std::memory_order_relaxed);
    publish(threads);
    inside_job_ = true;
    try {
      call(ctx, 0, threads);
    } catch (...) {
      record_error(std::current_exception());
    }
    inside_job_ = false;
    wait_for_workers();
    tl_last_run = ran_by_;
    if (error_) std::rethrow_exception(error_);
  }

  static void run_inline(int threads, detail::JobFn call, void* ctx) {
    bool was_inside = inside_job_;
    inside_job_ = true;
    if (!was_inside) tl_last_run.assign(1, current_thread_id());
    try {
      for (int t = 0; t < threads; t++) call(ctx, t, threads);
    } catch (...) {
      inside_job_ = was_inside;
      throw;
    }
    inside_job_ = was_inside;
  }

 private:
  void publish(int threads) {
    job_.store(((job_.load(std::memory_order_relaxed) >> kThreadBits) + 1) << kThreadBits |
                   static_cast<uint64_t>(threads),
               std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      wake_.notify_all();
    }
  }

  // Workers' shares are about as long as ours, so first spin; but a worker
  // may have been preempted (more busy threads than cores), and spinning
  // through its time slice would only delay it, so then sleep until the last
  // worker wakes us.
  void wait_for_workers() {
    if (spin_until(spin_us_, [&] { return pending_.load(std::memory_order_acquire) == 0; })) return;
    std::unique_lock<std::mutex> lock(done_mutex_);
    owner_waiting_.store(true, std::memory_order_seq_cst);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_seq_cst) == 0; });
    owner_waiting_.store(false, std::memory_order_relaxed);
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      int index = static_cast<int>(workers_.size()) + 1;
      // The worker must count from the generation before the job that needs it:
      // it may start running after the caller has already published that job.
      uint64_t seen = job_.load(std::memory_order_relaxed);
      workers_.emplace_back([this, index, seen] { worker_loop(index, seen); });
    }
  }

  void record_error(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = e;
  }

  void worker_loop(int index, uint64_t seen) {
    inside_job_ = true;  // a kernel running on a worker never re-enters the pool
    for (;;) {
      uint64_t now = job_.load(std::memory_order_acquire);
      if (now == seen) {
        spin_until(spin_us_, [&] {
          now = job_.load(std::memory_order_acquire);
          return now != seen;
        });
      }
      if (now == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return job_.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        now = job_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stop_.load(std::memory_order_seq_cst)) return;
      const int threads = static_cast<int>(now & ((uint64_t{1} << kThreadBits) - 1));
      if (index >= threads) continue;
      ran_by_[static_cast<size_t>(index)] = current_thread_id();
      try {
        call_(ctx_, index, threads);
      } catch (...) {
        record_error(std::current_exception());
      }
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
          owner_waiting_.load(std::memory_order_seq_cst)) {
        std::lock_guard<std::mutex> lock(done_mutex_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  // Written by the owner before it publishes the job word, read by the job's
  // workers after they load it; written again only after they all acknowledged.
  detail::JobFn call_ = nullptr;
  void* ctx_ = nullptr;
  std::vector<uint64_t> ran_by_;
  // generation << kThreadBits | thread count (at most kMaxThreadsCap).
  static constexpr int kThreadBits = 16;
  std::atomic<uint64_t> job_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<bool> owner_waiting_{false};
  std::mutex done_mutex_;
  std::condition_variable done_;
  const int spin_us_ = spin_microseconds();
  std::mutex error_mutex_;
  std::exception_ptr error_;
  static thread_local bool inside_job_;
};
thread_local bool ThreadPool::inside_job_ = false;

// One pool and one thread count per calling thread. Node worker threads each
// call the addon from their own OS thread, so each gets the threads its own
// setNumThreads asked for instead of queueing for (or running inline beside)
// a single shared pool. The pool goes when its thread ends (or earlier, from
// release_thread_pool), joining its workers.
thread_local std::unique_ptr<ThreadPool> tl_pool;
thread_local int tl_threads = 0;  // 0: the process default
}  // namespace

namespace detail {
void run_on_pool(int threads, JobFn call, void* ctx) {
  if (!tl_pool) tl_pool.reset(new ThreadPool());
  tl_pool->run(threads, call, ctx);
}
void note_serial_run() { tl_last_run.assign(1, current_thread_id()); }
}  // namespace detail

int max_threads() {
  static const int limit = compute_max_threads();
  return limit;
}

int get_num_threads() {
  static const int fallback = default_threads();
  return tl_threads > 0 ? tl_threads : fallback;
}

void set_num_threads(int n) { tl_threads = std::max(1, std::min(n, max_threads())); }

void release_thread_pool() { tl_pool.reset(); }

std::vector<uint64_t> last_parallel_threads() { return tl_last_run; }

}  // namespace modelslice
