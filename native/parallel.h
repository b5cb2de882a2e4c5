// Kernel threading. Kernels partition their own work by (thread index, thread
// count) and call parallel_run; this header and parallel.cc are the only places
// that know how threads are made. We use a small fork-join pool of our own
// rather than OpenMP, so the addon needs no libgomp at run time and behaves the
// same on every platform (macOS and Windows toolchains ship no libgomp).
#pragma once
#include <cstdint>
#include <type_traits>

namespace modelslice {

int get_num_threads();
void set_num_threads(int n);

namespace detail {
// Type-erased job: call(ctx, threadIndex, threadCount).
using JobFn = void (*)(void* ctx, int t, int nt);
// Runs the job on `threads` threads: the caller is thread 0, pool workers take
// 1..threads-1; returns when all have finished. Rethrows the first exception any
// of them threw. Nested calls (from inside a job) and calls while another
// thread owns the pool run inline on the calling thread, wait for the pool, as
// the comment in parallel.cc explains.
void run_on_pool(int threads, JobFn call, void* ctx);
}  // namespace detail

// Runs fn(threadIndex, threadCount) on `threads` threads (1 runs inline). The
// split of work is decided by the kernel from (t, nt), so results do not depend
// on which OS thread runs which index.
template <typename F>
void parallel_run(int threads, F&& fn) {
  if (threads <= 1) {
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
