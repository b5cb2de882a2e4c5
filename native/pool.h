// Pooling over NCHW planes. Windows are k x k with stride and zero-based
// padding; max pooling treats padding as -inf, average pooling counts it
// (PyTorch's count_include_pad=True).
#pragma once
#include <cstdint>

namespace modelslice {

struct PoolShape {
  int64_t planes, inH, inW;  // planes = batch * channels
  int64_t kh, kw, strideH, strideW, padH, padW;
  int64_t outH, outW;
};

void max_pool_forward(const PoolShape& s, const float* x, float* y);
// gx += gy routed to the first maximum of each window (recomputed from x).
void max_pool_backward(const PoolShape& s, const float* x, const float* gy, float* gx);
void avg_pool_forward(const PoolShape& s, const float* x, float* y);
void avg_pool_backward(const PoolShape& s, const float* gy, float* gx);

// y[p] = mean of plane p; gx[p, :] += gy[p] / size.
void global_avg_pool_forward(int64_t planes, int64_t size, const float* x, float* y);
void global_avg_pool_backward(int64_t planes, int64_t size, const float* gy, float* gx);

}  // namespace modelslice
