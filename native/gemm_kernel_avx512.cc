// AVX-512 SGEMM micro-kernels, packing and matrix-vector routines.
// Compiled without -march: every function carries its own target attribute, and is only
// called after cpu.cc has verified CPU and OS (XCR0) support.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports false "may be used uninitialized" warnings from inside its own AVX-512
// intrinsic headers (the _mm512_undefined_* pass-through operands; GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "gemm_internal.h"
#include "gemm_pack_x86.h"
#include "transpose_avx512.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

namespace modelslice {
namespace gemm {
namespace {

// MR x (16 * NV) register tile; MR * NV accumulators + NV B vectors + 1 broadcast <= 32 zmm.
// MR rows of a tile whose packed A panel has stride MA (>= MR).
template <int MR, int NV, int MA = MR>
MS_TGT512 void micro_avx512(int64_t kc, const float* MS_RESTRICT A, const float* MS_RESTRICT B,
                            float* C, int64_t ldc, float alpha, float beta) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();

#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);

#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = _mm512_load_ps(B + 16 * j);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[i]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
    }
    A += MA;
    B += 16 * NV;
  }

  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        _mm512_storeu_ps(C + i * ldc + 16 * j, _mm512_mul_ps(va, acc[i][j]));
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* c = C + i * ldc + 16 * j;
        _mm512_storeu_ps(c, _mm512_fmadd_ps(vb, _mm512_loadu_ps(c), _mm512_mul_ps(va, acc[i][j])));
      }
  }
}

MS_TGT512 MS_INLINE __mmask16 lanes(int64_t n) {  // first n (0..16) lanes
  return n >= 16  ? static_cast<__mmask16>(0xFFFF)
         : n <= 0 ? static_cast<__mmask16>(0)
                  : static_cast<__mmask16>((1u << n) - 1u);
}

// One P x kc micro-panel (P = 14 or a multiple of 16), rows >= P zero-filled.
template <int P>
MS_TGT512 MS_INLINE void pack_panel_avx512(const float* MS_RESTRICT src, int64_t ld, bool kcontig,
                                           int64_t rows, int64_t kc, float* MS_RESTRICT dst) {
  static_assert(P <= 16 || P % 16 == 0, "panel width");
  if (!kcontig) {  // dst[k * P + r] = src[k * ld + r]
    constexpr int V = (P + 15) / 16;
    __mmask16 m[V];
    for (int v = 0; v < V; ++v) m[v] = lanes(rows - 16 * v);
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * ld;
      float* d = dst + k * P;
      if (P % 16 == 0) {
        for (int v = 0; v < V; ++v)
          _mm512_store_ps(d + 16 * v, _mm512_maskz_loadu_ps(m[v], s + 16 * v));
      } else {
        _mm512_mask_storeu_ps(d, lanes(P), _mm512_maskz_loadu_ps(m[0], s));
      }
    }
    return;
  }
  // dst[k * P + r] = src[r * ld + k]: 16 x 16 blocks transposed in registers; 16 rows at
  // a time are streamed through k.
  for (int rb = 0; rb < P; rb += 16) {
    const int w = P - rb < 16 ? P - rb : 16;
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int64_t kn = kc - k0 < 16 ? kc - k0 : 16;
      const __mmask16 km = lanes(kn);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = (rb + i < rows) ? _mm512_maskz_loadu_ps(km, src + (rb + i) * ld + k0)
                               : _mm512_setzero_ps();
      transpose16(r);
      float* d = dst + k0 * P + rb;
      if (w == 16) {
        for (int kk = 0; kk < kn; ++kk) _mm512_store_ps(d + kk * P, r[kk]);
      } else {
        for (int kk = 0; kk < kn; ++kk) _mm512_mask_storeu_ps(d + kk * P, lanes(w), r[kk]);
      }
    }
  }
}

template <int P>
MS_TGT512 void pack_avx512(const float* src, int64_t ld, bool kcontig, int64_t rows, int64_t kc,
                           float* dst) {
  if (!kcontig && P % 16 == 0) {  // wide copy panels: full zmm moves
    for (int64_t r0 = 0; r0 < rows; r0 += P) {
      const int64_t nr = rows - r0 < P ? rows - r0 : P;
      pack_panel_avx512<P>(src + r0, ld, false, nr, kc, dst);
      dst += static_cast<int64_t>(P) * kc;
    }
    return;
  }
  if constexpr (P == 6 || P % 8 == 0) {
    pack_x86<P>(src, ld, kcontig, rows, kc, dst);
  } else {  // other tile heights (tuning variants): masked zmm code
    for (int64_t r0 = 0; r0 < rows; r0 += P) {
      const int64_t nr = rows - r0 < P ? rows - r0 : P;
      pack_panel_avx512<P>(kcontig ? src + r0 * ld : src + r0, ld, kcontig, nr, kc, dst);
      dst += static_cast<int64_t>(P) * kc;
    }
  }
}

// ---- matrix-vector -------------------------------------------------------------------
MS_TGT512 MS_INLINE __m512 store_formula(__m512 acc, __m512 va, __m512 vb, bool beta0, __m512 y) {
  return beta0 ? _mm512_mul_ps(va, acc) : _mm512_fmadd_ps(vb, y, _mm512_mul_ps(va, acc));
}

MS_TGT512 MS_INLINE float hsum512(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0),
                                 _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// hsum512 of N <= 8 vectors at once: the same pairings (v[i] + v[i + 8], then + 4, + 2, + 1),
// so each sum is bitwise hsum512's, but the vectors share the shuffles and adds of each level
// (two vectors per register after the first, four after the second). A short dot product's
// horizontal sums would otherwise cost about as much as its multiply-adds.
template <int N>
MS_TGT512 MS_INLINE void hsum512_x(const __m512* v, float* out) {
  static_assert(N >= 1 && N <= 8, "hsum512_x: 1 to 8 vectors");
  __m512 h[4];
  for (int j = 0; j < 4; ++j) {
    if (2 * j >= N) {
      h[j] = _mm512_setzero_ps();
      continue;
    }
    const __m512 a = v[2 * j], b = 2 * j + 1 < N ? v[2 * j + 1] : _mm512_setzero_ps();
    // [a.lo256 | b.lo256] + [a.hi256 | b.hi256]: h = v[i] + v[i + 8] for a, then b.
    h[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  // 128-bit lane k of s[m] holds vector 4m + k's v[i] + v[i + 4] terms.
  __m512 s[2];
  for (int m = 0; m < 2; ++m)
    s[m] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * m], h[2 * m + 1], 0x88),
                         _mm512_shuffle_f32x4(h[2 * m], h[2 * m + 1], 0xDD));
  // Per lane k: [t0, t1] of vector k, then of vector 4 + k.
  const __m512 t =
      _mm512_add_ps(_mm512_shuffle_ps(s[0], s[1], 0x44), _mm512_shuffle_ps(s[0], s[1], 0xEE));
  // Per lane k: t0 + t1 of vector k, of vector 4 + k.
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(t, t, 0x88), _mm512_shuffle_ps(t, t, 0xDD));
  const __m512 order =
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), r);
  alignas(64) float all[16];
  _mm512_store_ps(all, order);
  for (int j = 0; j < N; ++j) out[j] = all[j];
}

// R rows against X vectors at once (each load of a row serves every vector); every (vector,
// row) pair's arithmetic is identical to the R = 1, X = 1 case: two accumulators over steps of
// 32, a step of 16 into the first, a masked tail into the second.
template <int R, int X>
MS_TGT512 MS_INLINE void dot_rows(int64_t K, const float* S, int64_t ld, const float* const* x,
                                  float (*out)[4]) {
  __m512 a0[X][R], a1[X][R];
  for (int v = 0; v < X; ++v)
    for (int r = 0; r < R; ++r) a0[v][r] = a1[v][r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512 x0[X], x1[X];
    for (int v = 0; v < X; ++v) {
      x0[v] = _mm512_loadu_ps(x[v] + k);
      x1[v] = _mm512_loadu_ps(x[v] + k + 16);
    }
    for (int r = 0; r < R; ++r) {
      const __m512 s0 = _mm512_loadu_ps(S + r * ld + k), s1 = _mm512_loadu_ps(S + r * ld + k + 16);
      for (int v = 0; v < X; ++v) {
        a0[v][r] = _mm512_fmadd_ps(s0, x0[v], a0[v][r]);
        a1[v][r] = _mm512_fmadd_ps(s1, x1[v], a1[v][r]);
      }
    }
  }
  if (k + 16 <= K) {
    for (int r = 0; r < R; ++r) {
      const __m512 s0 = _mm512_loadu_ps(S + r * ld + k);
      for (int v = 0; v < X; ++v)
        a0[v][r] = _mm512_fmadd_ps(s0, _mm512_loadu_ps(x[v] + k), a0[v][r]);
    }
    k += 16;
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
    for (int r = 0; r < R; ++r) {
      const __m512 s1 = _mm512_maskz_loadu_ps(m, S + r * ld + k);
      for (int v = 0; v < X; ++v)
        a1[v][r] = _mm512_fmadd_ps(s1, _mm512_maskz_loadu_ps(m, x[v] + k), a1[v][r]);
    }
  }
  if constexpr (R * X == 1) {
    out[0][0] = hsum512(_mm512_add_ps(a0[0][0], a1[0][0]));
  } else {
    __m512 acc[8];
    for (int v = 0; v < X; ++v)
      for (int r = 0; r < R; ++r) acc[v * R + r] = _mm512_add_ps(a0[v][r], a1[v][r]);
    float sums[8];
    hsum512_x<R * X>(acc, sums);
    for (int v = 0; v < X; ++v)
      for (int r = 0; r < R; ++r) out[v][r] = sums[v * R + r];
  }
}

// y = alpha * v (+ beta * y, fused), the scalar twin of the vector store formula.
MS_TGT512 MS_INLINE void put_scalar(float* y, float v, float alpha, float beta) {
  const __m128 t = _mm_mul_ss(_mm_set_ss(alpha), _mm_set_ss(v));
  *y = beta == 0.0f ? _mm_cvtss_f32(t)
                    : _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(beta), _mm_set_ss(*y), t));
}

// y[v] = alpha * S x[v] + beta * y[v] for X vectors, the rows in tiles of 4.
template <int X>
MS_TGT512 MS_INLINE void gemv_dot_x(int64_t rows, int64_t K, float alpha, const float* S,
                                    int64_t ld, const float* const* x, float beta, float* const* y,
                                    int64_t incy) {
  float s[X][4];
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    dot_rows<4, X>(K, S + r * ld, ld, x, s);
    for (int v = 0; v < X; ++v)
      for (int i = 0; i < 4; ++i) put_scalar(y[v] + (r + i) * incy, s[v][i], alpha, beta);
  }
  for (; r < rows; ++r) {
    dot_rows<1, X>(K, S + r * ld, ld, x, s);
    for (int v = 0; v < X; ++v) put_scalar(y[v] + r * incy, s[v][0], alpha, beta);
  }
}

MS_TGT512 void gemv_dot_avx512(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                               const float* x, float beta, float* y, int64_t incy) {
  gemv_dot_x<1>(rows, K, alpha, S, ld, &x, beta, &y, incy);
}

// Two vectors against the same rows: each row is loaded once for both.
MS_TGT512 void gemv_dot2_avx512(int64_t rows, int64_t K, float alpha, const float* S, int64_t ld,
                                const float* x0, const float* x1, float beta, float* y0,
                                float* y1) {
  const float* const x[2] = {x0, x1};
  float* const y[2] = {y0, y1};
  gemv_dot_x<2>(rows, K, alpha, S, ld, x, beta, y, 1);
}

// y[j] for a chunk of NV*16 columns (mask on the last vector for tails).
template <int NV>
MS_TGT512 MS_INLINE void axpy_cols(int64_t K, const float* S, int64_t ld, const float* x,
                                   __mmask16 last, __m512* acc) {
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 xk = _mm512_set1_ps(x[k]);
    const float* s = S + k * ld;
    for (int v = 0; v < NV - 1; ++v)
      acc[v] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(s + 16 * v), acc[v]);
    acc[NV - 1] = _mm512_fmadd_ps(xk, _mm512_maskz_loadu_ps(last, s + 16 * (NV - 1)), acc[NV - 1]);
  }
}

MS_TGT512 MS_INLINE void store_cols(float* y, int64_t incy, int64_t j, __m512 acc, __mmask16 m,
                                    __m512 va, __m512 vb, bool beta0) {
  if (incy == 1) {
    const __m512 yv = beta0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + j);
    _mm512_mask_storeu_ps(y + j, m, store_formula(acc, va, vb, beta0, yv));
  } else {
    alignas(64) float tmp[16];
    for (int l = 0; l < 16; ++l) tmp[l] = (!beta0 && ((m >> l) & 1)) ? y[(j + l) * incy] : 0.0f;
    _mm512_store_ps(tmp, store_formula(acc, va, vb, beta0, _mm512_load_ps(tmp)));
    for (int l = 0; l < 16; ++l)
      if ((m >> l) & 1) y[(j + l) * incy] = tmp[l];
  }
}

MS_TGT512 void gemv_axpy_avx512(int64_t cols, int64_t K, float alpha, const float* S, int64_t ld,
                                const float* x, float beta, float* y, int64_t incy) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const bool beta0 = beta == 0.0f;
  int64_t j = 0;
  __m512 acc[8];
  for (; j + 128 <= cols; j += 128) {
    axpy_cols<8>(K, S + j, ld, x, 0xFFFF, acc);
    for (int v = 0; v < 8; ++v) store_cols(y, incy, j + 16 * v, acc[v], 0xFFFF, va, vb, beta0);
  }
  for (; j < cols; j += 16) {
    const int64_t n = cols - j < 16 ? cols - j : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    axpy_cols<1>(K, S + j, ld, x, m, acc);
    store_cols(y, incy, j, acc[0], m, va, vb, beta0);
  }
}

template <int MA, int NV>
struct Rows512 {
  template <int M>
  struct F {
    static constexpr MicroFn fn = &micro_avx512<M, NV, MA>;
  };
};

template <int MA, int NV>
SgemmKernel make_avx512(int kc, int mc, int nc) {
  SgemmKernel k{};
  k.name = "avx512";
  k.mr = MA;
  k.nr = 16 * NV;
  k.kc = kc;
  k.mc = mc;
  k.nc = nc;
  k.micro = &micro_avx512<MA, NV, MA>;
  fill_row_table<Rows512<MA, NV>::template F>(k.micro_rows, std::make_integer_sequence<int, MA>());
  k.pack_a = &pack_avx512<MA>;
  k.pack_b = &pack_avx512<16 * NV>;
  k.gemv_dot = &gemv_dot_avx512;
  k.gemv_axpy = &gemv_axpy_avx512;
  k.gemv_dot2 = &gemv_dot2_avx512;
  return k;
}

}  // namespace

const SgemmKernel& kernel_avx512() {
  // Narrow 16 x 16 tile for N <= 32 (e.g. a classifier head): 16 zmm accumulators.
  static const SgemmKernel narrow = make_avx512<16, 1>(/*kc=*/512, /*mc=*/16 * 6, /*nc=*/2048);
  // Main tile 6 x 64 (24 zmm accumulators): measured best on Zen 4 against 14x32, 12x32,
  // 8x48 (kc = 512, mc = 48; B micro-panels stream from L2, A micro-panels stay in L1).
  static const SgemmKernel k = [] {
    SgemmKernel k = make_avx512<6, 4>(/*kc=*/512, /*mc=*/6 * 8, /*nc=*/2048);
    k.narrow = &narrow;
    k.narrow_max_n = 32;
    return k;
  }();
  return k;
}

// Alternative tiles, for tuning from the benchmark harness.
SgemmKernel avx512_variant(int mr, int nv) {
  const SgemmKernel& d = kernel_avx512();
  switch (mr * 10 + nv) {
    case 142:
      return make_avx512<14, 2>(d.kc, 14 * 6, d.nc);
    case 122:
      return make_avx512<12, 2>(d.kc, 12 * 14, d.nc);
    case 64:
      return make_avx512<6, 4>(d.kc, d.mc, d.nc);
    case 83:
      return make_avx512<8, 3>(d.kc, 8 * 21, d.nc);
    case 44:
      return make_avx512<4, 4>(d.kc, 4 * 12, d.nc);
    default:
      return d;
  }
}

}  // namespace gemm
}  // namespace modelslice

#endif  // MODELSLICE_X86
