#include "rowwise.h"

#include <cmath>
#include <vector>

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

void layer_norm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma,
                        const float* beta, float eps, float* y, float* mean, float* rstd) {
  int threads = rows * dim < (1 << 14) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, 1, t, nt, &lo, &hi);
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      double s = 0;
      for (int64_t j = 0; j < dim; ++j) s += xr[j];
      const double mu = s / static_cast<double>(dim);
      double v = 0;
      for (int64_t j = 0; j < dim; ++j) {
        const double d = xr[j] - mu;
        v += d * d;
      }
      const float m = static_cast<float>(mu);
      const float rs = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(dim) + eps));
      mean[r] = m;
      rstd[r] = rs;
      for (int64_t j = 0; j < dim; ++j) {
        const float h = (xr[j] - m) * rs;
        yr[j] = h * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
      }
    }
  });
}

void layer_norm_backward(int64_t rows, int64_t dim, const float* x, const float* gy,
                         const float* gamma, const float* mean, const float* rstd, float* gx,
                         float* ggamma, float* gbeta) {
  int threads = rows * dim < (1 << 14) ? 1 : get_num_threads();
  // Gamma's and beta's gradients are summed per chunk of rows, then the chunks in order: the
  // same sums whatever the thread count.
  const int64_t chunk = 32;
  const int64_t chunks = (rows + chunk - 1) / chunk;
  const bool params = ggamma != nullptr || gbeta != nullptr;
  std::vector<float> partial(params ? static_cast<size_t>(chunks) * 2 * dim : 0, 0.0f);
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, chunk, t, nt, &lo, &hi);
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * dim;
      const float* gr = gy + r * dim;
      const float m = mean[r];
      const float rs = rstd[r];
      if (params) {
        float* pg = partial.data() + static_cast<size_t>(r / chunk) * 2 * dim;
        for (int64_t j = 0; j < dim; ++j) {
          pg[j] += gr[j] * (xr[j] - m) * rs;
          pg[dim + j] += gr[j];
        }
      }
      if (gx == nullptr) continue;
      // gx = rstd * (g' - mean(g') - xhat * mean(g' xhat)), g' = gy * gamma.
      double a = 0, b = 0;
      for (int64_t j = 0; j < dim; ++j) {
        const float g = gr[j] * (gamma ? gamma[j] : 1.0f);
        a += g;
        b += static_cast<double>(g) * ((xr[j] - m) * rs);
      }
      const float ma = static_cast<float>(a / static_cast<double>(dim));
      const float mb = static_cast<float>(b / static_cast<double>(dim));
      float* xo = gx + r * dim;
      for (int64_t j = 0; j < dim; ++j) {
        const float g = gr[j] * (gamma ? gamma[j] : 1.0f);
        xo[j] += rs * (g - ma - (xr[j] - m) * rs * mb);
      }
    }
  });
  for (int64_t c = 0; c < chunks && params; ++c) {
    const float* pg = partial.data() + static_cast<size_t>(c) * 2 * dim;
    for (int64_t j = 0; j < dim; ++j) {
      if (ggamma) ggamma[j] += pg[j];
      if (gbeta) gbeta[j] += pg[dim + j];
    }
  }
}

}  // namespace modelslice
