// Portable SGEMM micro-kernel (6 x 8), packing and matrix-vector routines in plain C++.
// Written so the compiler can vectorize at the baseline ISA (SSE2 on x86-64, NEON on arm64).
#include "gemm_internal.h"

namespace modelslice {
namespace gemm {
namespace {

constexpr int kMR = 6, kNR = 8;

// The first M rows of a kMR x kNR tile.
template <int M>
void micro_generic(int64_t kc, const float* MS_RESTRICT A, const float* MS_RESTRICT B, float* C,
                   int64_t ldc, float alpha, float beta) {
  float acc[M][kNR];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < M; ++i) {
      const float a = A[i];
      for (int j = 0; j < kNR; ++j) acc[i][j] += a * B[j];
    }
    A += kMR;
    B += kNR;
  }
  if (beta == 0.0f) {
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < kNR; ++j) C[i * ldc + j] = alpha * acc[i][j];
  } else {
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < kNR; ++j) C[i * ldc + j] = beta * C[i * ldc + j] + alpha * acc[i][j];
  }
}

template <int P>
void pack_generic(const float* src, int64_t ld, bool kcontig, int64_t rows, int64_t kc,
                  float* dst) {
  pack_panels<P>(src, ld, kcontig, rows, kc, dst);
}

constexpr int kLanes = 8;

// One row at a time, fixed lane structure: identical arithmetic for every row.
float dot_row(int64_t K, const float* MS_RESTRICT s, const float* MS_RESTRICT x) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += s[k + l] * x[k + l];
  for (int l = 0; k + l < K; ++l) acc[l] += s[k + l] * x[k + l];
  float t = 0.0f;
  for (int l = 0; l < kLanes; ++l) t += acc[l];
  return t;
}

void gemv_dot_generic(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                      const float* x, float beta, float* y, int64_t incy) {
  for (int64_t r = 0; r < rows; ++r) {
    const float v = alpha * dot_row(K, S + r * ld, x);
    float* p = y + r * incy;
    *p = beta == 0.0f ? v : beta * *p + v;
  }
}

void gemv_axpy_generic(int64_t cols, int64_t K, float alpha, const float* S, int64_t ld,
                       const float* x, float beta, float* y, int64_t incy) {
  constexpr int W = 64;
  float acc[W];
  for (int64_t j0 = 0; j0 < cols; j0 += W) {
    const int64_t n = cols - j0 < W ? cols - j0 : W;
    for (int l = 0; l < W; ++l) acc[l] = 0.0f;
    if (n == W) {
      for (int64_t k = 0; k < K; ++k) {
        const float xk = x[k];
        const float* s = S + k * ld + j0;
        for (int l = 0; l < W; ++l) acc[l] += xk * s[l];
      }
    } else {
      for (int64_t k = 0; k < K; ++k) {
        const float xk = x[k];
        const float* s = S + k * ld + j0;
        for (int64_t l = 0; l < n; ++l) acc[l] += xk * s[l];
      }
    }
    for (int64_t l = 0; l < n; ++l) {
      float* p = y + (j0 + l) * incy;
      const float v = alpha * acc[l];
      *p = beta == 0.0f ? v : beta * *p + v;
    }
  }
}

template <int M>
struct RowsGeneric {
  static constexpr MicroFn fn = &micro_generic<M>;
};

}  // namespace

const SgemmKernel& kernel_generic() {
  static const SgemmKernel k = [] {
    SgemmKernel k{};
    k.name = "generic";
    k.mr = kMR;
    k.nr = kNR;
    k.kc = 256;
    k.mc = kMR * 16;
    k.nc = 2048;
    k.micro = &micro_generic<kMR>;
    fill_row_table<RowsGeneric>(k.micro_rows, std::make_integer_sequence<int, kMR>());
    k.pack_a = &pack_generic<kMR>;
    k.pack_b = &pack_generic<kNR>;
    k.gemv_dot = &gemv_dot_generic;
    k.gemv_axpy = &gemv_axpy_generic;
    return k;
  }();
  return k;
}

}  // namespace gemm
}  // namespace modelslice
