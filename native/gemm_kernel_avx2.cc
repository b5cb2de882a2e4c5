// AVX2 + FMA SGEMM micro-kernel (6 x 16), packing and matrix-vector routines.
// Compiled without -march: every function carries its own target attribute.
#include "gemm_internal.h"
#include "gemm_pack_x86.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

namespace modelslice {
namespace gemm {
namespace {

template <int MR, int NV, int MA = MR>
MS_TGT256 void micro_avx2(int64_t kc, const float* MS_RESTRICT A, const float* MS_RESTRICT B,
                          float* C, int64_t ldc, float alpha, float beta) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();

#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = _mm256_load_ps(B + 8 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(a, b[j], acc[i][j]);
    }
    A += MA;
    B += 8 * NV;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        _mm256_storeu_ps(C + i * ldc + 8 * j, _mm256_mul_ps(va, acc[i][j]));
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* c = C + i * ldc + 8 * j;
        _mm256_storeu_ps(c, _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), _mm256_mul_ps(va, acc[i][j])));
      }
  }
}

template <int P>
MS_TGT256 void pack_avx2(const float* src, int64_t ld, bool kcontig, int64_t rows, int64_t kc,
                         float* dst) {
  pack_x86<P>(src, ld, kcontig, rows, kc, dst);
}

// ---- matrix-vector -------------------------------------------------------------------
MS_TGT256 MS_INLINE __m256i tail_mask(int64_t n) {  // first n (0..8) lanes set
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

MS_TGT256 MS_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

template <int R>
MS_TGT256 MS_INLINE void dot_rows(int64_t K, const float* S, int64_t ld, const float* x,
                                  float* out) {
  __m256 a0[R], a1[R];
  for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
    for (int r = 0; r < R; ++r) {
      a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(S + r * ld + k), x0, a0[r]);
      a1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(S + r * ld + k + 8), x1, a1[r]);
    }
  }
  if (k + 8 <= K) {
    const __m256 x0 = _mm256_loadu_ps(x + k);
    for (int r = 0; r < R; ++r) a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(S + r * ld + k), x0, a0[r]);
    k += 8;
  }
  if (k < K) {
    const __m256i m = tail_mask(K - k);
    const __m256 x1 = _mm256_maskload_ps(x + k, m);
    for (int r = 0; r < R; ++r)
      a1[r] = _mm256_fmadd_ps(_mm256_maskload_ps(S + r * ld + k, m), x1, a1[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(_mm256_add_ps(a0[r], a1[r]));
}

MS_TGT256 MS_INLINE void put_scalar(float* y, float v, float alpha, float beta) {
  const __m128 t = _mm_mul_ss(_mm_set_ss(alpha), _mm_set_ss(v));
  *y = beta == 0.0f ? _mm_cvtss_f32(t)
                    : _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(beta), _mm_set_ss(*y), t));
}

MS_TGT256 void gemv_dot_avx2(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                             const float* x, float beta, float* y, int64_t incy) {
  float s[4];
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    dot_rows<4>(K, S + r * ld, ld, x, s);
    for (int i = 0; i < 4; ++i) put_scalar(y + (r + i) * incy, s[i], alpha, beta);
  }
  for (; r < rows; ++r) {
    dot_rows<1>(K, S + r * ld, ld, x, s);
    put_scalar(y + r * incy, s[0], alpha, beta);
  }
}

template <int NV>
MS_TGT256 MS_INLINE void axpy_cols(int64_t K, const float* S, int64_t ld, const float* x,
                                   __m256i last, __m256* acc) {
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 xk = _mm256_set1_ps(x[k]);
    const float* s = S + k * ld;
    for (int v = 0; v < NV - 1; ++v)
      acc[v] = _mm256_fmadd_ps(xk, _mm256_loadu_ps(s + 8 * v), acc[v]);
    acc[NV - 1] = _mm256_fmadd_ps(xk, _mm256_maskload_ps(s + 8 * (NV - 1), last), acc[NV - 1]);
  }
}

MS_TGT256 MS_INLINE void store_cols(float* y, int64_t incy, int64_t j, __m256 acc, int64_t n,
                                    __m256 va, __m256 vb, bool beta0) {
  alignas(32) float tmp[8];
  for (int l = 0; l < 8; ++l) tmp[l] = (!beta0 && l < n) ? y[(j + l) * incy] : 0.0f;
  __m256 r = _mm256_mul_ps(va, acc);
  if (!beta0) r = _mm256_fmadd_ps(vb, _mm256_load_ps(tmp), r);
  _mm256_store_ps(tmp, r);
  for (int l = 0; l < n; ++l) y[(j + l) * incy] = tmp[l];
}

MS_TGT256 void gemv_axpy_avx2(int64_t cols, int64_t K, float alpha, const float* S, int64_t ld,
                              const float* x, float beta, float* y, int64_t incy) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const bool beta0 = beta == 0.0f;
  int64_t j = 0;
  __m256 acc[8];
  const __m256i all = _mm256_set1_epi32(-1);
  for (; j + 64 <= cols; j += 64) {
    axpy_cols<8>(K, S + j, ld, x, all, acc);
    for (int v = 0; v < 8; ++v) store_cols(y, incy, j + 8 * v, acc[v], 8, va, vb, beta0);
  }
  for (; j < cols; j += 8) {
    const int64_t n = cols - j < 8 ? cols - j : 8;
    axpy_cols<1>(K, S + j, ld, x, tail_mask(n), acc);
    store_cols(y, incy, j, acc[0], n, va, vb, beta0);
  }
}

template <int M>
struct Rows256 {
  static constexpr MicroFn fn = &micro_avx2<M, 2, 6>;
};
template <int M>
struct Rows256Narrow {
  static constexpr MicroFn fn = &micro_avx2<M, 1, 8>;
};

}  // namespace

const SgemmKernel& kernel_avx2() {
  // Narrow 8 x 8 tile for N <= 8.
  static const SgemmKernel narrow = [] {
    SgemmKernel k{};
    k.name = "avx2";
    k.mr = 8;
    k.nr = 8;
    k.kc = 384;  // the driver uses the main kernel's kc in any case
    k.mc = 8 * 12;
    k.nc = 4096;
    k.micro = &micro_avx2<8, 1, 8>;
    fill_row_table<Rows256Narrow>(k.micro_rows, std::make_integer_sequence<int, 8>());
    k.pack_a = &pack_avx2<8>;
    k.pack_b = &pack_avx2<8>;
    k.gemv_dot = &gemv_dot_avx2;
    k.gemv_axpy = &gemv_axpy_avx2;
    return k;
  }();
  static const SgemmKernel k = [] {
    SgemmKernel k{};
    k.name = "avx2";
    k.mr = 6;
    k.nr = 16;
    k.kc = 384;  // B micro-panel 16 x 384 floats = 24 KiB stays in L1; A block in L2
    k.mc = 6 * 16;
    k.nc = 4096;
    k.micro = &micro_avx2<6, 2, 6>;
    fill_row_table<Rows256>(k.micro_rows, std::make_integer_sequence<int, 6>());
    k.pack_a = &pack_avx2<6>;
    k.pack_b = &pack_avx2<16>;
    k.gemv_dot = &gemv_dot_avx2;
    k.gemv_axpy = &gemv_axpy_avx2;
    k.narrow = &narrow;
    k.narrow_max_n = 8;
    return k;
  }();
  return k;
}

}  // namespace gemm
}  // namespace modelslice

#endif  // MODELSLICE_X86
