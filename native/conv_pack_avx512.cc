// AVX-512 packing of GEMM panels straight from NCHW activations (see conv_pack.h).
// Compiled without -march: functions carry their own target attribute and are only
// called after cpu.cc has found AVX-512 (conv_implicit.cc checks cpu_isa()).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored \
    "-Wmaybe-uninitialized"  // GCC bug 105593 (see gemm_kernel_avx512.cc)
#endif
#include "conv_pack.h"
#include "gemm_internal.h"
#include "transpose_avx512.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

namespace modelslice {
namespace conv {

namespace {

MS_TGT512 MS_INLINE __mmask16 lanes16(int64_t n) {  // first n (clamped to 0..16) lanes
  return n >= 16  ? static_cast<__mmask16>(0xFFFF)
         : n <= 0 ? static_cast<__mmask16>(0)
                  : static_cast<__mmask16>((1u << n) - 1u);
}

inline uint64_t lanes64(int64_t n) {  // first n (clamped to 0..64) bits
  return n >= 64 ? ~uint64_t{0} : n <= 0 ? uint64_t{0} : (uint64_t{1} << n) - 1;
}

// src + off without forming an out-of-range pointer in C++ terms (masked-off lanes of
// the loads below may lie outside the image; AVX-512 masked loads do not touch them).
inline const float* offset_ptr(const float* src, int64_t off) {
  return reinterpret_cast<const float*>(reinterpret_cast<intptr_t>(src) +
                                        static_cast<intptr_t>(off) * 4);
}

}  // namespace

MS_TGT512 void pack_patch_columns_avx512(const PatchSource& s, const Segment* seg, int nseg,
                                         int filled, int64_t k0, int64_t kc, int NR, float* dst) {
  const int64_t taps = s.kh * s.kw;
  int64_t c = k0 / taps, i = (k0 % taps) / s.kw, j = k0 % s.kw;
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < kc; ++kk) {
    float* d = dst + kk * NR;
    const float* chan = s.data + c * s.channelStride;
    const int64_t dI = i * s.dilationH - s.padH, dJ = j * s.dilationW - s.padW;
    for (int g = 0; g < nseg; ++g) {
      const Segment& sg = seg[g];
      float* o = d + sg.t0;
      const int64_t ih = sg.oh * s.strideH + dI;
      if (ih < 0 || ih >= s.H) {
        for (int l0 = 0; l0 < sg.len; l0 += 16)
          _mm512_mask_storeu_ps(o + l0, lanes16(sg.len - l0), zero);
        continue;
      }
      const int64_t iw0 = sg.ow0 + dJ;  // strideW == 1
      const int64_t lo = iw0 < 0 ? -iw0 : 0;
      const int64_t hi = s.W - iw0 < sg.len ? s.W - iw0 : sg.len;
      const uint64_t valid = hi > lo ? lanes64(hi) & ~lanes64(lo) : 0;
      const float* row = chan + sg.n * s.imageStride + ih * s.W;
      for (int l0 = 0; l0 < sg.len; l0 += 16) {
        const __mmask16 lm = static_cast<__mmask16>(valid >> l0);
        const __m512 v = _mm512_maskz_loadu_ps(lm, offset_ptr(row, iw0 + l0));
        _mm512_mask_storeu_ps(o + l0, lanes16(sg.len - l0), v);
      }
    }
    for (int t = filled; t < NR; t += 16) _mm512_mask_storeu_ps(d + t, lanes16(NR - t), zero);
    if (++j == s.kw) {
      j = 0;
      if (++i == s.kh) {
        i = 0;
        ++c;
      }
    }
  }
}

MS_TGT512 void pack_patch_rows_t_avx512(const PatchSource& s, const Segment* seg, int nseg,
                                        int64_t k0, int rows, int NR, float* dst) {
  PatchRows p;
  patch_rows(s, seg, nseg, k0, rows, &p);
  const int depth = p.depth;
  // Walk the depth in blocks of 16 columns; a block may span several segments.
  int g0 = 0;
  for (int lb = 0; lb < depth; lb += 16) {
    const int kn = depth - lb < 16 ? depth - lb : 16;
    while (seg[g0].t0 + seg[g0].len <= lb) ++g0;
    for (int rb = 0; rb < NR; rb += 16) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) {
        const int pr = rb + r;
        __m512 acc = _mm512_setzero_ps();
        if (pr < rows) {
          for (int g = g0; g < nseg && seg[g].t0 < lb + kn; ++g) {
            SegmentLanes l;
            if (!segment_lanes(s, p, seg[g], pr, lb, kn, &l)) continue;
            const __mmask16 m = static_cast<__mmask16>(lanes64(l.hi) & ~lanes64(l.lo));
            acc = _mm512_mask_loadu_ps(acc, m, offset_ptr(l.row, l.shift));
          }
        }
        v[r] = acc;
      }
      transpose16(v);
      float* d = dst + static_cast<int64_t>(lb) * NR + rb;
      for (int kk = 0; kk < kn; ++kk) _mm512_store_ps(d + kk * NR, v[kk]);
    }
  }
}

}  // namespace conv
}  // namespace modelslice

#endif  // MODELSLICE_X86
