// The sliced GEMM: C = alpha * op(A) * op(B) + beta * C on row-major float32.
//
// Slicing is expressed through the sizes and leading dimensions: a prefix of a
// larger weight is passed as its first element with the full weight's leading
// dimension, so no copy or mask is ever made.
#pragma once
#include <cstdint>

namespace modelslice {

// op(A) is M x K, op(B) is K x N, C is M x N. With transA, A is stored K x M
// (element (i, p) of op(A) at A[p * lda + i]); otherwise M x K (A[i * lda + p]).
// Likewise for B. beta == 0 means C is written without being read (NaNs in C
// do not propagate). Threads are split over rows and columns of C only, so the
// result does not depend on the thread count.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same on at most `threads` threads (<= 0: the calling thread's count). With 1 it runs
// on the calling thread alone, so a pool worker may call it.
void sgemm_threads(int threads, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float beta, float* C, int64_t ldc);

// Name of the micro-kernel family chosen at load time: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

}  // namespace modelslice
