// Kernel threading. Kernels partition their own work by (thread index, thread
// count); this header is the single place that knows whether OpenMP is present.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace modelslice {

int get_num_threads();
void set_num_threads(int n);

// Runs fn(threadIndex, threadCount) on `threads` threads (1 runs inline).
template <typename F>
void parallel_run(int threads, F&& fn) {
  if (threads <= 1) {
    fn(0, 1);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  { fn(omp_get_thread_num(), omp_get_num_threads()); }
#else
  fn(0, 1);
#endif
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
