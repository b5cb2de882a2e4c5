#include "rowwise.h"

#include <cmath>

#include "parallel.h"

namespace modelslice {

void softmax_rows(int64_t rows, int64_t cols, const float* x, float* y, bool log) {
  int threads = rows * cols < (1 << 15) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, 1, t, nt, &lo, &hi);
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float m = -INFINITY;
      for (int64_t j = 0; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
      if (std::isinf(m) && m < 0) m = 0;  // an all -inf row stays finite in its max
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(xr[j] - m));
      if (log) {
        // (x - m) - log(sum): subtracting the large max first keeps float32 precision.
        const float logSum = static_cast<float>(std::log(sum));
        for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - m) - logSum;
      } else {
        double inv = 1.0 / sum;
        for (int64_t j = 0; j < cols; ++j)
          yr[j] = static_cast<float>(std::exp(static_cast<double>(xr[j] - m)) * inv);
      }
    }
  });
}

void softmax_rows_backward(int64_t rows, int64_t cols, const float* y, const float* gy, float* gx,
                           bool log) {
  int threads = rows * cols < (1 << 15) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, 1, t, nt, &lo, &hi);
    for (int64_t r = lo; r < hi; ++r) {
      const float* yr = y + r * cols;
      const float* gr = gy + r * cols;
      float* xr = gx + r * cols;
      double s = 0;
      if (log) {
        // y = log softmax: gx = gy - softmax * sum(gy)
        for (int64_t j = 0; j < cols; ++j) s += gr[j];
        for (int64_t j = 0; j < cols; ++j)
          xr[j] += gr[j] - static_cast<float>(std::exp(static_cast<double>(yr[j])) * s);
      } else {
        // y = softmax: gx = y * (gy - sum(gy * y))
        for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(gr[j]) * yr[j];
        for (int64_t j = 0; j < cols; ++j) xr[j] += yr[j] * (gr[j] - static_cast<float>(s));
      }
    }
  });
}

}  // namespace modelslice
