// AVX-512 direct-convolution tiles over a zero-padded copy of one image (see
// conv_direct.h). Compiled without -march: functions carry their own target attribute and
// are only called after cpu.cc has found AVX-512.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored \
    "-Wmaybe-uninitialized"  // GCC bug 105593 (see gemm_kernel_avx512.cc)
#endif
#include "conv_direct.h"
#include "gemm_internal.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

#include <algorithm>

namespace modelslice {
namespace conv {
namespace {

// MR rows x NV vectors of 16 pixels; every row and vector gets the same fma chain over
// (channel, tap) in order, so a C element's value does not depend on its tile.
template <int MR, int NV>
MS_TGT512 void direct_tile(const DirectArgs& d) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  int64_t off[NV];
  for (int v = 0; v < NV; ++v) off[v] = d.vecOff[v];
  const float* A = d.Ap;
  const int64_t taps = d.taps;
  // One step: the fmas of the MR weights at A with the vectors at p.
  const auto step = [&](const float* p) MS_TGT512 {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(p + off[v]);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
    A += MR;
  };
  if (taps == 1) {
    // 1x1 kernels: one loop over the channels, not a tap loop of one trip per channel.
    const float* p = d.src + d.tapOff[0];
    for (int64_t c = 0; c < d.channels; ++c, p += d.chanStride) step(p);
  } else {
    for (int64_t c = 0; c < d.channels; ++c) {
      const float* xc = d.src + c * d.chanStride;
      for (int64_t t = 0; t < taps; ++t) step(xc + d.tapOff[t]);
    }
  }
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = static_cast<__mmask16>(d.mask[v]);
  for (int r = 0; r < MR; ++r) {
    if (r >= d.mr) break;
    float* c = d.C + r * d.ldc;
    const __m512 bv = _mm512_set1_ps(!d.accumulate && d.bias ? d.bias[r] : 0.0f);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* q = c + d.cOff[v];
      __m512 out = acc[r][v];
      if (d.accumulate)
        out = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], q), out);
      else if (d.bias)
        out = _mm512_add_ps(out, bv);
      if (d.R) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m[v], d.R + r * d.ldc + d.cOff[v]));
      _mm512_mask_storeu_ps(q, m[v], out);
    }
  }
}

// Weight-gradient tile: MR output channels x NT patch rows (channel, tap), summed over the
// pixel vectors of one image in order, then added to gw. Lanes are combined by
// _mm512_reduce_add_ps (a fixed tree), so the result does not depend on the tile's place.
template <int MR, int NT>
MS_TGT512 void weight_tile(const WeightArgs& d) {
  __m512 acc[MR][NT];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  const float* g[MR];
  const float* x[NT];
  for (int r = 0; r < MR; ++r) g[r] = d.gy + (r < d.mr ? r : d.mr - 1) * d.plane;
  for (int t = 0; t < NT; ++t) x[t] = d.xp + d.rowOff[t < d.nt ? t : d.nt - 1];
  for (int64_t v = 0; v < d.vectors; ++v) {
    const int64_t xo = d.vecOff[v], go = d.gyOff[v];
    // A row's last vector may hang over its end: those lanes are not read (zeros).
    const __mmask16 m = static_cast<__mmask16>(d.mask[v]);
    __m512 b[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) b[t] = _mm512_maskz_loadu_ps(m, x[t] + xo);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_maskz_loadu_ps(m, g[r] + go);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_fmadd_ps(a, b[t], acc[r][t]);
    }
  }
  // Indices known at compile time: a loop to d.mr / d.nt made GCC keep acc in memory and
  // store all of it on every pass of the loop above (3x slower).
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t)
      if (r < d.mr && t < d.nt) d.gw[r * d.ldw + t] += _mm512_reduce_add_ps(acc[r][t]);
}

}  // namespace

namespace {

// One channel's input map (conv.h, InputTransform), in group norm's order and rounding:
// (x - center) * scale + shift, then ReLU keeping NaN. The identity when t is null.
struct LaneMap {
  bool on, relu;
  __m512 center, scale, shift;
};

MS_TGT512 LaneMap lane_map(const InputTransform* t, int64_t i) {
  LaneMap m{};
  m.on = t != nullptr;
  if (!m.on) return m;
  m.relu = t->relu;
  m.center = _mm512_set1_ps(t->center[i]);
  m.scale = _mm512_set1_ps(t->scale[i]);
  m.shift = _mm512_set1_ps(t->shift[i]);
  return m;
}

MS_TGT512 inline __m512 mapped(const LaneMap& m, __m512 v) {
  if (!m.on) return v;
  // Explicit rounding keeps the compiler from contracting the multiply and add into an fma,
  // which would round once where group norm's output rounds twice.
  constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  v = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_sub_ps(v, m.center), m.scale, kNear), m.shift,
                          kNear);
  if (m.relu)
    v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ), v,
                             _mm512_setzero_ps());
  return v;
}

}  // namespace

MS_TGT512 void pad_copy_avx512(const float* src, int64_t channels, int64_t H, int64_t W, int64_t Wp,
                               int64_t padH, int64_t padW, int64_t padded, float* dst,
                               const InputTransform* t, int64_t tBase) {
  const int64_t full = W / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (W - full)) - 1u);
  for (int64_t c = 0; c < channels; ++c) {
    const LaneMap m = lane_map(t, tBase + c);
    const float* s = src + c * H * W;
    float* d = dst + c * padded + padH * Wp + padW;
    for (int64_t ih = 0; ih < H; ++ih, s += W, d += Wp) {
      int64_t l = 0;
      for (; l < full; l += 16) _mm512_storeu_ps(d + l, mapped(m, _mm512_loadu_ps(s + l)));
      if (tail) _mm512_mask_storeu_ps(d + l, tail, mapped(m, _mm512_maskz_loadu_ps(tail, s + l)));
    }
  }
}

MS_TGT512 void pad_copy_halves_avx512(const float* src, int64_t channels, int64_t H, int64_t W,
                                      const HalvesPlace& at, int64_t padH, int64_t padW,
                                      int64_t padded, float* dst, const InputTransform* t,
                                      int64_t tBase) {
  const int64_t half = at.odd;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const auto lanes = [](int64_t n) {
    return static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << (n > 0 ? n : 0)) - 1u);
  };
  for (int64_t c = 0; c < channels; ++c) {
    const LaneMap m = lane_map(t, tBase + c);
    const float* s = src + c * H * W;
    for (int64_t ih = 0; ih < H; ++ih, s += W) {
      const int64_t pr = ih + padH;
      float* d = dst + c * padded + (pr / 2) * at.rowPair + (pr % 2) * at.oddRow;
      // 32 columns at a time: the 16 even ones and the 16 odd ones, each to its half (lanes
      // past the row are mapped too, and not stored).
      for (int64_t c0 = 0; c0 < W; c0 += 32) {
        const int64_t n = std::min<int64_t>(32, W - c0);
        const __m512 a = mapped(m, _mm512_maskz_loadu_ps(lanes(n), s + c0));
        const __m512 b = mapped(m, _mm512_maskz_loadu_ps(lanes(n - 16), s + c0 + 16));
        const int64_t pe = (c0 + padW) % 2;
        _mm512_mask_storeu_ps(d + pe * half + (c0 + padW) / 2, lanes((n + 1) / 2),
                              _mm512_permutex2var_ps(a, even, b));
        _mm512_mask_storeu_ps(d + (1 - pe) * half + (c0 + 1 + padW) / 2, lanes(n / 2),
                              _mm512_permutex2var_ps(a, odd, b));
      }
    }
  }
}

DirectFn direct_tile_avx512(int mr, int nv) {
  if (mr == 8) {
    static const DirectFn t[] = {nullptr, &direct_tile<8, 1>, &direct_tile<8, 2>,
                                 &direct_tile<8, 3>};
    return nv >= 1 && nv <= 3 ? t[nv] : nullptr;
  }
  if (mr == 6) {
    static const DirectFn t[] = {nullptr, &direct_tile<6, 1>, &direct_tile<6, 2>,
                                 &direct_tile<6, 3>, &direct_tile<6, 4>};
    return nv >= 1 && nv <= 4 ? t[nv] : nullptr;
  }
  if (mr == 4) {
    static const DirectFn t[] = {nullptr,
                                 &direct_tile<4, 1>,
                                 &direct_tile<4, 2>,
                                 &direct_tile<4, 3>,
                                 &direct_tile<4, 4>,
                                 &direct_tile<4, 5>};
    return nv >= 1 && nv <= 5 ? t[nv] : nullptr;
  }
  return nullptr;
}

WeightFn weight_tile_avx512(int mr, int nt) {
  switch (mr * 100 + nt) {
    case 406:
      return &weight_tile<4, 6>;
    case 604:
      return &weight_tile<6, 4>;
    case 803:
      return &weight_tile<8, 3>;
    case 405:
      return &weight_tile<4, 5>;
    case 308:
      return &weight_tile<3, 8>;
    case 210:
      return &weight_tile<2, 10>;
    case 307:
      return &weight_tile<3, 7>;
    default:
      return nullptr;
  }
}

}  // namespace conv
}  // namespace modelslice

#endif  // MODELSLICE_X86
