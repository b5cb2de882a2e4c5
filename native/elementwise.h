// Elementwise kernels over raw pointers. Broadcasting is expressed with element
// strides (0 along a broadcast axis), so one kernel serves every shape pair.
#pragma once
#include <cstdint>

namespace modelslice {

constexpr int kMaxDims = 8;

enum class BinaryOp : int { Add = 0, Mul = 1 };

// out[i] = a[ia] op b[ib] over `rank` dims of `shape`; out is contiguous.
void binary_broadcast(BinaryOp op, int rank, const int64_t* shape, const float* a,
                      const int64_t* aStrides, const float* b, const int64_t* bStrides, float* out);

// acc[idx(strides)] += scale * g[i] for every element i of a contiguous tensor of `shape`:
// reduces a broadcast result's gradient back onto a smaller operand.
void sum_to_strided(int rank, const int64_t* shape, const float* g, float scale, float* acc,
                    const int64_t* accStrides);

// acc[ia] += g[i] * other[ib]: the gradient of a broadcast multiply for one operand.
void mul_grad_strided(int rank, const int64_t* shape, const float* g, const float* other,
                      const int64_t* otherStrides, float* acc, const int64_t* accStrides);

void relu_forward(int64_t n, const float* x, float* y);
// gx += gy where x > 0.
void relu_backward(int64_t n, const float* x, const float* gy, float* gx);

// y += alpha * x.
void axpy(int64_t n, float alpha, const float* x, float* y);

// y[i * ldy + j] += bias[j] for i < rows, j < cols.
void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y, int64_t ldy);

// acc[j] += sum_i g[i * ldg + j]: the bias gradient of a linear layer.
void column_sums(int64_t rows, int64_t cols, const float* g, int64_t ldg, float* acc);

}  // namespace modelslice
