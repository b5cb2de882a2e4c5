// Kernel threading. Kernels partition their own work by (thread index, thread
// count) and call parallel_run; this header and parallel.cc are the only places
// that know how threads are made. We use a small fork-join pool of our own
// rather than OpenMP, so the addon needs no libgomp at run time and behaves the
// same on every platform (macOS and Windows toolchains ship no libgomp).
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

namespace modelslice {

// The thread count of any one caller is at most max_threads(): 4x the cores this
// process may use, and never above kMaxThreadsCap. More threads than that only
// contend for the cores, and each one is an OS thread a process limit may refuse.
constexpr int kMaxThreadsCap = 256;
int max_threads();

// Thread counts and pools belong to the calling thread: the Node main thread and
// each worker thread have their own (the default comes from MODELSLICE_NUM_THREADS,
// else the available cores). set_num_threads clamps to [1, max_threads()].
int get_num_threads();
void set_num_threads(int n);

// Stops and joins the calling thread's pool workers (a Node environment that is
// shutting down calls it; a thread's pool also goes when the thread ends).
void release_thread_pool();

// The OS thread ids that ran the shares of the calling thread's last parallel_run
// (one entry when it ran inline): what lets a test see whose threads did the work.
std::vector<uint64_t> last_parallel_threads();

namespace detail {
// Type-erased job: call(ctx, threadIndex, threadCount).
using JobFn = void (*)(void* ctx, int t, int nt);
// Runs the job on `threads` threads: the caller is thread 0, pool workers take
// 1..threads-1; returns when all have finished. Rethrows the first exception any
// of them threw, and std::system_error when a worker thread cannot be started.
// Nested calls (from inside a job) run inline on the calling thread.
void run_on_pool(int threads, JobFn call, void* ctx);
void note_serial_run();
}  // namespace detail

// Runs fn(threadIndex, threadCount) on `threads` threads (1 runs inline). The
// split of work is decided by the kernel from (t, nt), so results do not depend
// on which OS thread runs which index.
template <typename F>
void parallel_run(int threads, F&& fn) {
  if (threads <= 1) {
    detail::note_serial_run();
    fn(0, 1);
    return;
  }
  using Fn = typename std::remove_reference<F>::type;
  detail::run_on_pool(
      threads, [](void* ctx, int t, int nt) { (*static_cast<Fn*>(ctx))(t, nt); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

// Splits [0, total) into `parts` contiguous chunks aligned to `align`; returns chunk `index`.
inline void split_range(int64_t total, int64_t align, int index, int parts, int64_t* begin,
                        int64_t* end) {
  int64_t blocks = (total + align - 1) / align;
  int64_t lo = blocks * index / parts, hi = blocks * (index + 1) / parts;
  *begin = lo * align < total ? lo * align : total;
  *end = hi * align < total ? hi * align : total;
}

}  // namespace modelslice
