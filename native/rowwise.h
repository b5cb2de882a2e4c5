// Kernels over the rows of a [rows, cols] matrix (softmax and its relatives).
#pragma once
#include <cstdint>

namespace modelslice {

// y = softmax(x) or log_softmax(x) per row.
void softmax_rows(int64_t rows, int64_t cols, const float* x, float* y, bool log);

// gx += d softmax / d x applied to gy, given y = softmax(x) (or y = log_softmax(x) with log).
void softmax_rows_backward(int64_t rows, int64_t cols, const float* y, const float* gy, float* gx,
                           bool log);

// Layer norm of each row of `dim` values: y = (x - mean) * rstd * gamma + beta (gamma, beta
// nullable), with the row's mean and reciprocal standard deviation written (statistics in double).
void layer_norm_forward(int64_t rows, int64_t dim, const float* x, const float* gamma,
                        const float* beta, float eps, float* y, float* mean, float* rstd);

// gx (nullable) += dL/dx; ggamma, gbeta (nullable) += their gradients (summed over rows in a
// fixed order, whatever the thread count).
void layer_norm_backward(int64_t rows, int64_t dim, const float* x, const float* gy,
                         const float* gamma, const float* mean, const float* rstd, float* gx,
                         float* ggamma, float* gbeta);

}  // namespace modelslice
