// Convolutions with few output pixels: weight rows read in place times gathered patches
// (see conv_small.h). The AVX-512 and AVX2 tiles carry their own target attributes and run
// only after cpu.cc has found those instruction sets.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593 (see gemm_kernel_avx512.cc)
#endif
#include "conv_small.h"

#include "cpu.h"
#include "gemm_internal.h"
#include "parallel.h"
#include "scratch.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>
#endif

namespace modelslice {

namespace {

// Where this path beats the implicit GEMM, which packs the weight prefix on every call:
// up to kAlwaysPixels output pixels over the batch whatever the weight, and up to
// kMaxPixels when the weight prefix is at least kStreamWeightFloats (the weight stream
// dominates). Measured on Zen 4, 3x3 convolutions, 2 threads (bench/RESULTS.md, "Few
// output pixels"): 512->512 at 2x2, batch 1: 0.20 against 2.29 ms; 256->256 at 4x4,
// batch 1: 0.12 against 0.60; 128->256 at 8x8, batch 1: 0.24 against 0.32; while
// 128->128 at 8x8 (576 KiB of weight) ties and 64->64 at 8x8 loses (78 against 71 us).
constexpr int64_t kAlwaysPixels = 16;
constexpr int64_t kMaxPixels = 128;
constexpr int64_t kStreamWeightFloats = int64_t{1} << 18;

// Patch rows are padded to a multiple of this many floats (zeros), so every patch load is
// a whole aligned vector and only the weight row's last vector needs a mask.
constexpr int64_t kPatchAlign = 16;

// out[r * nq + j] = sum over k < K of w[r * ldw + k] * p[j * ldp + k], r < mr, j < nq.
using TileFn = void (*)(const float* w, int64_t ldw, const float* p, int64_t ldp, int64_t K,
                        float* out);

#ifdef MODELSLICE_X86

template <int MR, int NQ>
MS_TGT512 void tile_avx512(const float* w, int64_t ldw, const float* p, int64_t ldp, int64_t K,
                           float* out) {
  __m512 acc[MR][NQ];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NQ; ++j) acc[r][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 b[NQ];
    for (int j = 0; j < NQ; ++j) b[j] = _mm512_load_ps(p + j * ldp + k);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_loadu_ps(w + r * ldw + k);
      for (int j = 0; j < NQ; ++j) acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 b[NQ];
    for (int j = 0; j < NQ; ++j) b[j] = _mm512_load_ps(p + j * ldp + k);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_maskz_loadu_ps(m, w + r * ldw + k);
      for (int j = 0; j < NQ; ++j) acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NQ; ++j) out[r * NQ + j] = _mm512_reduce_add_ps(acc[r][j]);
}

MS_TGT256 MS_INLINE __m256i first_lanes8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

MS_TGT256 MS_INLINE float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MR, int NQ>
MS_TGT256 void tile_avx2(const float* w, int64_t ldw, const float* p, int64_t ldp, int64_t K,
                         float* out) {
  __m256 acc[MR][NQ];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NQ; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 b[NQ];
    for (int j = 0; j < NQ; ++j) b[j] = _mm256_load_ps(p + j * ldp + k);
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_loadu_ps(w + r * ldw + k);
      for (int j = 0; j < NQ; ++j) acc[r][j] = _mm256_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  if (k < K) {
    const __m256i m = first_lanes8(K - k);
    __m256 b[NQ];
    for (int j = 0; j < NQ; ++j) b[j] = _mm256_load_ps(p + j * ldp + k);
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_maskload_ps(w + r * ldw + k, m);
      for (int j = 0; j < NQ; ++j) acc[r][j] = _mm256_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NQ; ++j) out[r * NQ + j] = sum8(acc[r][j]);
}

// Tiles of up to 4 x 4 (AVX-512: 16 accumulators of the 32 registers) or 3 x 4 (AVX2: 12 of
// 16), indexed [mr - 1][nq - 1].
constexpr int kNq = 4;
#define MS_SMALL_ROW(F, MR) \
  { &F<MR, 1>, &F<MR, 2>, &F<MR, 3>, &F<MR, 4> }
const TileFn kTiles512[4][kNq] = {MS_SMALL_ROW(tile_avx512, 1), MS_SMALL_ROW(tile_avx512, 2),
                                  MS_SMALL_ROW(tile_avx512, 3), MS_SMALL_ROW(tile_avx512, 4)};
const TileFn kTiles256[3][kNq] = {MS_SMALL_ROW(tile_avx2, 1), MS_SMALL_ROW(tile_avx2, 2),
                                  MS_SMALL_ROW(tile_avx2, 3)};
#undef MS_SMALL_ROW

#endif  // MODELSLICE_X86

// The largest tile's rows, and its table, for the ISA the kernels run; 0 without a SIMD path.
int tile_rows(const TileFn** table) {
#ifdef MODELSLICE_X86
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      *table = &kTiles512[0][0];
      return 4;
    case CpuIsa::kAvx2:
      *table = &kTiles256[0][0];
      return 3;
    default:
      break;
  }
#endif
  (void)table;
  return 0;
}

// Patch q (image n, output pixel p) of group g into dst[0 .. ldp): K values in
// (channel, tap row, tap column) order, zero where the window leaves the image, mapped by t
// (zero padding stays zero: it pads the mapped input), then zeros up to ldp.
void gather_patch(const ConvShape& s, int64_t g, int64_t n, int64_t p, const float* x,
                  const InputTransform* t, int64_t ldp, float* dst) {
  const int64_t cg = s.inChannels / s.groups, inPlane = s.inH * s.inW;
  const int64_t oh = p / s.outW, ow = p % s.outW;
  float* d = dst;
  for (int64_t c = 0; c < cg; ++c) {
    const int64_t ch = g * cg + c;
    const float* src = x + (n * s.inChannels + ch) * inPlane;
    float center = 0.0f, scale = 1.0f, shift = 0.0f;
    if (t) {
      const int64_t i = n * s.inChannels + ch;
      center = t->center[i];
      scale = t->scale[i];
      shift = t->shift[i];
    }
    for (int64_t i = 0; i < s.kh; ++i) {
      const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
      const bool rowIn = ih >= 0 && ih < s.inH;
      for (int64_t j = 0; j < s.kw; ++j) {
        const int64_t iw = ow * s.strideW - s.padW + j * s.dilationW;
        float v = 0.0f;
        if (rowIn && iw >= 0 && iw < s.inW) {
          v = src[ih * s.inW + iw];
          if (t) {  // as apply_input_transform (conv.cc), so the fold changes nothing
            v = (v - center) * scale + shift;
            if (t->relu) v = v <= 0.0f ? 0.0f : v;
          }
        }
        *d++ = v;
      }
    }
  }
  for (int64_t k = cg * s.kh * s.kw; k < ldp; ++k) dst[k] = 0.0f;
}

}  // namespace

bool conv_small_applies(const ConvShape& s) {
  const TileFn* table = nullptr;
  if (tile_rows(&table) == 0) return false;
  if (s.groups == s.inChannels && s.groups == s.outChannels && s.groups > 1) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t pixels = s.batch * s.outH * s.outW;
  if (cg <= 0 || og <= 0 || s.kh <= 0 || s.kw <= 0 || pixels <= 0) return false;
  return pixels <= kAlwaysPixels ||
         (pixels <= kMaxPixels && og * cg * s.kh * s.kw >= kStreamWeightFloats);
}

bool conv_small_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                        float* y, bool accumulate, const InputTransform* t) {
  if (!conv_small_applies(s)) return false;
  const TileFn* table = nullptr;
  const int MR = tile_rows(&table);
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t K = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t plane = s.outH * s.outW, pixels = s.batch * plane;
  const int64_t ldp = ceil_div(K, kPatchAlign) * kPatchAlign;
  thread_local Scratch patches;
  float* P = patches.get(static_cast<size_t>(pixels * ldp));
  const int threads = get_num_threads();
  for (int64_t g = 0; g < s.groups; ++g) {
    parallel_run(pixels * K < (1 << 14) ? 1 : threads, [&](int th, int nt) {
      int64_t lo, hi;
      split_range(pixels, 1, th, nt, &lo, &hi);
      for (int64_t q = lo; q < hi; ++q)
        gather_patch(s, g, q / plane, q % plane, x, t, ldp, P + q * ldp);
    });
    const float* wg = w + g * og * ldw;
    parallel_run(threads, [&](int th, int nt) {
      int64_t lo, hi;
      split_range(og, MR, th, nt, &lo, &hi);
      float out[4 * kNq];
      for (int64_t o = lo; o < hi; o += MR) {
        const int mr = static_cast<int>(hi - o < MR ? hi - o : MR);
        for (int64_t q = 0; q < pixels; q += kNq) {
          const int nq = static_cast<int>(pixels - q < kNq ? pixels - q : kNq);
          table[(mr - 1) * kNq + (nq - 1)](wg + o * ldw, ldw, P + q * ldp, ldp, K, out);
          for (int r = 0; r < mr; ++r) {
            const int64_t oc = g * og + o + r;
            const float b = bias ? bias[oc] : 0.0f;
            for (int j = 0; j < nq; ++j) {
              const int64_t n = (q + j) / plane, p = (q + j) % plane;
              float& dst = y[(n * s.outChannels + oc) * plane + p];
              dst = accumulate ? dst + out[r * nq + j] : out[r * nq + j] + b;
            }
          }
        }
      }
    });
  }
  note_conv_path(ConvPass::kForward, "small");
  return true;
}

}  // namespace modelslice
