// Internal pieces of the packed, blocked SGEMM (see gemm.cc). Not part of the
// public API: the kernel table, packing templates shared by every ISA file,
// and hooks the standalone tests/benchmarks use to force a kernel family or a
// thread count.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu.h"

namespace modelslice {
namespace gemm {

constexpr int kMaxMR = 16;
constexpr int kMaxNR = 64;

// Micro-kernel: C[0:MR, 0:NR] = alpha * Ap^T Bp + beta * C  (beta == 0: C not read).
// Ap: packed A micro-panel, Ap[k * MR + i]. Bp: packed B micro-panel, Bp[k * NR + j]
// (64-byte aligned). Always computes the full MR x NR tile.
using MicroFn = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
                         float alpha, float beta);

// Packs a block of a logical matrix S (element (r, k), r in [0, rows), k in [0, kc)) into
// ceil(rows / P) micro-panels of P x kc: dst[panel * P * kc + k * P + r], zero-padding the
// missing rows of the last panel. kcontig: S(r, k) = src[r * ld + k]; else src[k * ld + r].
using PackFn = void (*)(const float* src, int64_t ld, bool kcontig, int64_t rows, int64_t kc,
                        float* dst);

// Matrix-vector, "dot" form: y[r * incy] = alpha * sum_k S[r * ld + k] * x[k] + beta * y[...]
// for r in [0, rows). The summation order of a row depends only on K.
using GemvDotFn = void (*)(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                           const float* x, float beta, float* y, int64_t incy);
// "axpy" form: y[j * incy] = alpha * sum_k x[k] * S[k * ld + j] + beta * y[...], j in [0, cols);
// k summed in order 0..K-1 for every j.
using GemvAxpyFn = void (*)(int64_t cols, int64_t K, float alpha, const float* S, int64_t ld,
                            const float* x, float beta, float* y, int64_t incy);
// Two vectors against the same rows, read once: y0 = alpha * S x0 + beta * y0 and the same for
// x1, y1 (unit stride), every element rounding exactly as GemvDotFn's.
using GemvDot2Fn = void (*)(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                            const float* x0, const float* x1, float beta, float* y0, float* y1);

struct SgemmKernel {
  const char* name;
  int mr, nr;      // register tile
  int kc, mc, nc;  // cache blocking (kc: depth, mc: rows of A block, nc: columns of B block)
  MicroFn micro;
  // micro_rows[m] (1 <= m <= mr): the same micro-kernel computing only the first m rows of
  // the tile (A panel stride still mr). Every C element gets exactly the same arithmetic
  // (same fma chain over k, same store formula) as in the full kernel, so edge tiles round
  // identically to interior ones.
  MicroFn micro_rows[kMaxMR + 1];
  PackFn pack_a;  // P = mr
  PackFn pack_b;  // P = nr
  GemvDotFn gemv_dot;
  GemvAxpyFn gemv_axpy;
  GemvDot2Fn gemv_dot2;  // optional (null: gemv_dot twice)
  // Optional narrow-tile variant (smaller nr) used when N <= narrow_max_n, where the main
  // tile would mostly compute padding. Same per-element arithmetic as the main kernel (the
  // driver uses the main kernel's kc for both, so results do not depend on the choice).
  const SgemmKernel* narrow;
  int narrow_max_n;
};

const SgemmKernel& kernel_generic();
#ifdef MODELSLICE_X86
const SgemmKernel& kernel_avx2();
const SgemmKernel& kernel_avx512();
// Tuning hook (benchmark only): the AVX-512 kernel with another register tile
// (mr, nv) in {(14,2), (12,2), (6,4), (8,3), (4,4)}; unknown pairs return the default.
SgemmKernel avx512_variant(int mr, int nv);
#endif

// The kernel for an ISA (falls back to the best one compiled in that does not exceed it).
const SgemmKernel& kernel_for(CpuIsa isa);

// sgemm with an explicit kernel and thread count (threads <= 0: get_num_threads()).
// Results are bitwise identical for every thread count.
void sgemm_ex(const SgemmKernel& kern, int threads, bool transA, bool transB, int64_t M, int64_t N,
              int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
              float beta, float* C, int64_t ldc);

// Fills table[1..M] with F<m>::fn for m = 1..M.
template <template <int> class F, int... I>
inline void fill_row_table(MicroFn* table, std::integer_sequence<int, I...>) {
  ((table[I + 1] = F<I + 1>::fn), ...);
}

// ---------------------------------------------------------------------------------------
// Portable packing template. Instantiated inside each ISA file's target-attributed
// wrapper (always_inline), so the compiler vectorizes it for that ISA.
template <int P>
MS_INLINE void pack_panel(const float* MS_RESTRICT src, int64_t ld, bool kcontig, int64_t rows,
                          int64_t kc, float* MS_RESTRICT dst) {
  if (!kcontig) {
    // Each k gives `rows` contiguous values: a strided copy.
    if (rows == P) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * ld;
        float* d = dst + k * P;
        for (int r = 0; r < P; ++r) d[r] = s[r];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * ld;
        float* d = dst + k * P;
        int r = 0;
        for (; r < rows; ++r) d[r] = s[r];
        for (; r < P; ++r) d[r] = 0.0f;
      }
    }
    return;
  }
  // Each row is contiguous in k: transpose in chunks of 16 k so that each source row's
  // cache line is consumed at once (rows may alias in L1 at power-of-two strides).
  int64_t k0 = 0;
  for (; k0 + 16 <= kc; k0 += 16) {
    float* d = dst + k0 * P;
    int64_t r = 0;
    for (; r < rows; ++r) {
      const float* s = src + r * ld + k0;
      for (int kk = 0; kk < 16; ++kk) d[kk * P + r] = s[kk];
    }
    for (; r < P; ++r)
      for (int kk = 0; kk < 16; ++kk) d[kk * P + r] = 0.0f;
  }
  if (k0 < kc) {
    const int64_t rem = kc - k0;
    float* d = dst + k0 * P;
    int64_t r = 0;
    for (; r < rows; ++r) {
      const float* s = src + r * ld + k0;
      for (int64_t kk = 0; kk < rem; ++kk) d[kk * P + r] = s[kk];
    }
    for (; r < P; ++r)
      for (int64_t kk = 0; kk < rem; ++kk) d[kk * P + r] = 0.0f;
  }
}

template <int P>
MS_INLINE void pack_panels(const float* src, int64_t ld, bool kcontig, int64_t rows, int64_t kc,
                           float* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += P) {
    const int64_t nr = rows - r0 < P ? rows - r0 : P;
    const float* s = kcontig ? src + r0 * ld : src + r0;
    pack_panel<P>(s, ld, kcontig, nr, kc, dst);
    dst += static_cast<int64_t>(P) * kc;
  }
}

}  // namespace gemm
}  // namespace modelslice
