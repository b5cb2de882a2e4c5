// Kernels over the rows of a [rows, cols] matrix (softmax and its relatives).
#pragma once
#include <cstdint>

namespace modelslice {

// y = softmax(x) or log_softmax(x) per row.
void softmax_rows(int64_t rows, int64_t cols, const float* x, float* y, bool log);

// gx += d softmax / d x applied to gy, given y = softmax(x) (or y = log_softmax(x) with log).
void softmax_rows_backward(int64_t rows, int64_t cols, const float* y, const float* gy, float* gx,
                           bool log);

}  // namespace modelslice
