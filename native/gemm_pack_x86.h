// x86 packing routines shared by the AVX2 and AVX-512 kernel files (256-bit code: on
// Zen 4 the 8 x 8 ymm transposes measured faster than 16 x 16 zmm ones). Functions carry
// target("avx2,fma") and are always inlined into their (AVX2 or AVX-512) callers.
#pragma once
#include "gemm_internal.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

namespace modelslice {
namespace gemm {
namespace {

// In-register 8 x 8 transpose: r[i][k] -> r[k][i].
MS_TGT256 MS_INLINE void transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // u[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i + 3.
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// One P x kc micro-panel (P = 6 or a multiple of 8), rows >= `rows` zero-filled.
template <int P>
MS_TGT256 MS_INLINE void pack_panel_avx2(const float* MS_RESTRICT src, int64_t ld, int64_t rows,
                                         int64_t kc, float* MS_RESTRICT dst) {
  // kcontig: dst[k * P + r] = src[r * ld + k], 8 x 8 blocks transposed in registers.
  const int64_t kfull = kc / 8 * 8;
  for (int rb = 0; rb < P; rb += 8) {
    for (int64_t k0 = 0; k0 < kfull; k0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = (rb + i < rows && rb + i < P) ? _mm256_loadu_ps(src + (rb + i) * ld + k0)
                                             : _mm256_setzero_ps();
      transpose8(r);
      float* d = dst + k0 * P + rb;
      for (int kk = 0; kk < 8; ++kk) {
        if (P - rb >= 8) {
          _mm256_storeu_ps(d + kk * P, r[kk]);
        } else {  // P == 6
          _mm_storeu_ps(d + kk * P, _mm256_castps256_ps128(r[kk]));
          _mm_storel_pi(reinterpret_cast<__m64*>(d + kk * P + 4), _mm256_extractf128_ps(r[kk], 1));
        }
      }
    }
  }
  if (kfull < kc) {  // k tail
    for (int64_t k = kfull; k < kc; ++k)
      for (int r = 0; r < P; ++r) dst[k * P + r] = r < rows ? src[r * ld + k] : 0.0f;
  }
}

template <int P>
MS_TGT256 MS_INLINE void pack_x86(const float* src, int64_t ld, bool kcontig, int64_t rows,
                                  int64_t kc, float* dst) {
  static_assert(P == 6 || P % 8 == 0, "panel width");
  if (!kcontig && P < 8) {
    // Narrow panels from k-major storage: walk each source row across all panels.
    const int64_t panels = (rows + P - 1) / P;
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * ld;
      for (int64_t p = 0; p < panels; ++p) {
        float* d = dst + p * P * kc + k * P;
        const int64_t n = rows - p * P < P ? rows - p * P : P;
        if (p * P + 8 <= rows && k + 1 < kc) {
          // 8-wide move; the 2 extra floats land in slot k + 1, rewritten next iteration.
          _mm256_storeu_ps(d, _mm256_loadu_ps(s + p * P));
        } else if (n == P) {
          for (int r = 0; r < P; ++r) d[r] = s[p * P + r];
        } else {
          for (int r = 0; r < P; ++r) d[r] = r < n ? s[p * P + r] : 0.0f;
        }
      }
    }
    return;
  }
  if (!kcontig) {
    // P % 8 == 0: ymm copies. Groups of panels spanning 512 source bytes are walked k-major
    // so that each source row segment is read contiguously (few, long streams).
    constexpr int64_t G = P >= 128 ? 1 : 128 / P;
    const int64_t full = rows / P;
    for (int64_t g0 = 0; g0 < full; g0 += G) {
      const int64_t g1 = g0 + G < full ? g0 + G : full;
      for (int64_t k = 0; k < kc; ++k) {
        const float* s = src + k * ld;
        for (int64_t p = g0; p < g1; ++p)
          for (int v = 0; v < P / 8; ++v)
            _mm256_storeu_ps(dst + p * P * kc + k * P + 8 * v, _mm256_loadu_ps(s + p * P + 8 * v));
      }
    }
    if (full * P < rows)
      pack_panel<P>(src + full * P, ld, false, rows - full * P, kc, dst + full * P * kc);
    return;
  }
  for (int64_t r0 = 0; r0 < rows; r0 += P) {
    const int64_t nr = rows - r0 < P ? rows - r0 : P;
    pack_panel_avx2<P>(src + r0 * ld, ld, nr, kc, dst);
    dst += static_cast<int64_t>(P) * kc;
  }
}

}  // namespace
}  // namespace gemm
}  // namespace modelslice

#endif  // MODELSLICE_X86
