// AVX2 + FMA versions of the convolution's fast-path pieces (conv_direct.h, conv_pack.h):
// the direct tiles, the weight-gradient tile, the padded copies and the patch packing.
// They keep the AVX-512 geometry (a "vector" is 16 output pixels of one row, its lanes
// given by a 16-bit prefix mask), each vector held as two 8-lane halves, so
// conv_implicit.cc lays out images and tiles the same way for both instruction sets.
// Compiled without -march: functions carry their own target attribute and are only
// called after cpu.cc has found AVX2 and FMA.
#include "conv_direct.h"
#include "conv_pack.h"
#include "gemm_internal.h"
#include "gemm_pack_x86.h"

#ifdef MODELSLICE_X86
#include <immintrin.h>

#include <algorithm>

namespace modelslice {
namespace conv {
namespace {

// The first n (clamped to 0..8) lanes, as a maskload / maskstore mask.
MS_TGT256 MS_INLINE __m256i lanes8(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int k = static_cast<int>(n < 0 ? 0 : n > 8 ? 8 : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

// The lanes whose bits are set in `bits` (lane l: bit l), as a maskload mask.
MS_TGT256 MS_INLINE __m256i lane_bits8(unsigned bits) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), bit), bit);
}

// How many leading lanes a 16-bit prefix mask (0xffff, or (1 << len) - 1) sets.
inline int prefix_len(uint16_t mask) { return __builtin_popcount(mask); }

// src + off without forming an out-of-range pointer in C++ terms (masked-off lanes of the
// loads below may lie outside the image; AVX maskload does not touch them).
inline const float* offset_ptr(const float* src, int64_t off) {
  return reinterpret_cast<const float*>(reinterpret_cast<intptr_t>(src) +
                                        static_cast<intptr_t>(off) * 4);
}

// MR rows x NV vectors of 16 pixels (two ymm each). Every row and vector gets the same fma
// chain over (channel, tap) in order, so a C element's value does not depend on its tile.
template <int MR, int NV>
MS_TGT256 void direct_tile(const DirectArgs& d) {
  __m256 acc[MR][2 * NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 2 * NV; ++v) acc[r][v] = _mm256_setzero_ps();
  int64_t off[NV];
  for (int v = 0; v < NV; ++v) off[v] = d.vecOff[v];
  const float* A = d.Ap;
  const int64_t taps = d.taps;
  // One step: the fmas of the MR weights at A with the vectors at p.
  const auto step = [&](const float* p) MS_TGT256 {
    __m256 b[2 * NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      b[2 * v] = _mm256_loadu_ps(p + off[v]);
      b[2 * v + 1] = _mm256_loadu_ps(p + off[v] + 8);
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r);
#pragma GCC unroll 4
      for (int v = 0; v < 2 * NV; ++v) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
    A += MR;
  };
  if (taps == 1) {
    // 1x1 kernels: one loop over the channels (the tap loop of one trip per channel cost
    // about as much as its twelve fmas).
    const float* p = d.src + d.tapOff[0];
    for (int64_t c = 0; c < d.channels; ++c, p += d.chanStride) step(p);
  } else {
    for (int64_t c = 0; c < d.channels; ++c) {
      const float* xc = d.src + c * d.chanStride;
      for (int64_t t = 0; t < taps; ++t) step(xc + d.tapOff[t]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    const int len = prefix_len(d.mask[v]);
    const __m256i m0 = lanes8(len), m1 = lanes8(len - 8);
    for (int r = 0; r < MR; ++r) {
      if (r >= d.mr) break;
      float* q = d.C + r * d.ldc + d.cOff[v];
      __m256 lo = acc[r][2 * v], hi = acc[r][2 * v + 1];
      if (d.accumulate) {
        lo = _mm256_add_ps(_mm256_maskload_ps(q, m0), lo);
        hi = _mm256_add_ps(_mm256_maskload_ps(offset_ptr(q, 8), m1), hi);
      } else if (d.bias) {
        const __m256 bv = _mm256_set1_ps(d.bias[r]);
        lo = _mm256_add_ps(lo, bv);
        hi = _mm256_add_ps(hi, bv);
      }
      if (len == 16) {
        _mm256_storeu_ps(q, lo);
        _mm256_storeu_ps(q + 8, hi);
      } else {
        _mm256_maskstore_ps(q, m0, lo);
        if (len > 8) _mm256_maskstore_ps(q + 8, m1, hi);
      }
    }
  }
  // A residual, added to the stored values (still in cache) in a pass of its own: inside the
  // loop above it made GCC give up registers to the fma loop (ResNet-164 at batch 64 capped
  // at AVX2: 228 -> 275 ms).
  if (d.R == nullptr) return;
  for (int v = 0; v < NV; ++v) {
    const int len = prefix_len(d.mask[v]);
    const __m256i m0 = lanes8(len), m1 = lanes8(len - 8);
    for (int r = 0; r < d.mr && r < MR; ++r) {
      float* q = d.C + r * d.ldc + d.cOff[v];
      const float* res = d.R + r * d.ldc + d.cOff[v];
      _mm256_maskstore_ps(q, m0,
                          _mm256_add_ps(_mm256_maskload_ps(q, m0), _mm256_maskload_ps(res, m0)));
      if (len > 8)
        _mm256_maskstore_ps(q + 8, m1,
                            _mm256_add_ps(_mm256_maskload_ps(q + 8, m1),
                                          _mm256_maskload_ps(offset_ptr(res, 8), m1)));
    }
  }
}

MS_TGT256 MS_INLINE float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// Weight-gradient tile: MR output channels x NT patch rows, summed over the pixel vectors
// in order (each vector's two halves into the same accumulator, low half first), then
// reduced by a fixed tree and added to gw.
template <int MR, int NT>
MS_TGT256 void weight_tile(const WeightArgs& d) {
  __m256 acc[MR][NT];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
  const float* g[MR];
  const float* x[NT];
  for (int r = 0; r < MR; ++r) g[r] = d.gy + (r < d.mr ? r : d.mr - 1) * d.plane;
  for (int t = 0; t < NT; ++t) x[t] = d.xp + d.rowOff[t < d.nt ? t : d.nt - 1];
  for (int64_t v = 0; v < d.vectors; ++v) {
    const int64_t xo = d.vecOff[v], go = d.gyOff[v];
    if (d.mask[v] == 0xffffu) {
#pragma GCC unroll 2
      for (int h = 0; h < 16; h += 8) {
        __m256 b[NT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) b[t] = _mm256_loadu_ps(x[t] + xo + h);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          const __m256 a = _mm256_loadu_ps(g[r] + go + h);
#pragma GCC unroll 8
          for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(a, b[t], acc[r][t]);
        }
      }
      continue;
    }
    // A row's last vector may hang over its end (a flat pass's vectors over row ends): those
    // lanes are not read (zeros); a half without lanes is skipped.
    for (int h = 0; h < 16; h += 8) {
      const unsigned bits = (d.mask[v] >> h) & 0xffu;
      if (bits == 0) continue;
      const __m256i m = lane_bits8(bits);
      __m256 b[NT];
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) b[t] = _mm256_maskload_ps(offset_ptr(x[t], xo + h), m);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256 a = _mm256_maskload_ps(offset_ptr(g[r], go + h), m);
#pragma GCC unroll 8
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(a, b[t], acc[r][t]);
      }
    }
  }
  // Compile-time indices keep acc in registers (see the AVX-512 tile).
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t)
      if (r < d.mr && t < d.nt) d.gw[r * d.ldw + t] += hsum(acc[r][t]);
}

// One channel's input map (conv.h, InputTransform) in group norm's order and rounding:
// (x - center) * scale + shift, then ReLU keeping NaN. The identity when t is null.
struct LaneMap {
  bool on, relu;
  __m256 center, scale, shift;
};

MS_TGT256 LaneMap lane_map(const InputTransform* t, int64_t i) {
  LaneMap m{};
  m.on = t != nullptr;
  if (!m.on) return m;
  m.relu = t->relu;
  m.center = _mm256_set1_ps(t->center[i]);
  m.scale = _mm256_set1_ps(t->scale[i]);
  m.shift = _mm256_set1_ps(t->shift[i]);
  return m;
}

MS_TGT256 MS_INLINE __m256 mapped(const LaneMap& m, __m256 v) {
  if (!m.on) return v;
  __m256 p = _mm256_mul_ps(_mm256_sub_ps(v, m.center), m.scale);
  // The empty asm makes the product a value the compiler cannot see through, so it cannot
  // contract the multiply and add into an fma (group norm's output rounds twice).
  __asm__("" : "+x"(p));
  v = _mm256_add_ps(p, m.shift);
  if (m.relu)
    v = _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LE_OQ));
  return v;
}

}  // namespace

MS_TGT256 void pad_copy_avx2(const float* src, int64_t channels, int64_t H, int64_t W, int64_t Wp,
                             int64_t padH, int64_t padW, int64_t padded, float* dst,
                             const InputTransform* t, int64_t tBase) {
  const int64_t full = W / 8 * 8;
  const __m256i tail = lanes8(W - full);
  for (int64_t c = 0; c < channels; ++c) {
    const LaneMap m = lane_map(t, tBase + c);
    const float* s = src + c * H * W;
    float* d = dst + c * padded + padH * Wp + padW;
    for (int64_t ih = 0; ih < H; ++ih, s += W, d += Wp) {
      int64_t l = 0;
      for (; l < full; l += 8) _mm256_storeu_ps(d + l, mapped(m, _mm256_loadu_ps(s + l)));
      if (l < W)
        _mm256_maskstore_ps(d + l, tail, mapped(m, _mm256_maskload_ps(offset_ptr(s, l), tail)));
    }
  }
}

MS_TGT256 void pad_copy_halves_avx2(const float* src, int64_t channels, int64_t H, int64_t W,
                                    const HalvesPlace& at, int64_t padH, int64_t padW,
                                    int64_t padded, float* dst, const InputTransform* t,
                                    int64_t tBase) {
  const int64_t half = at.odd;
  for (int64_t c = 0; c < channels; ++c) {
    const LaneMap m = lane_map(t, tBase + c);
    const float* s = src + c * H * W;
    for (int64_t ih = 0; ih < H; ++ih, s += W) {
      const int64_t pr = ih + padH;
      float* d = dst + c * padded + (pr / 2) * at.rowPair + (pr % 2) * at.oddRow;
      // 16 columns at a time: the 8 even ones and the 8 odd ones, each to its half (lanes
      // past the row are mapped too, and not stored).
      for (int64_t c0 = 0; c0 < W; c0 += 16) {
        const int64_t n = std::min<int64_t>(16, W - c0);
        const __m256 a = mapped(m, _mm256_maskload_ps(offset_ptr(s, c0), lanes8(n)));
        const __m256 b = mapped(m, _mm256_maskload_ps(offset_ptr(s, c0 + 8), lanes8(n - 8)));
        // shuffle_ps works within 128-bit lanes: [a0 a2 b0 b2 | a4 a6 b4 b6], then the
        // 64-bit quarters reordered to [a0 a2 a4 a6 | b0 b2 b4 b6].
        const __m256 ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
        const __m256 od = _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
        const int64_t pe = (c0 + padW) % 2;
        _mm256_maskstore_ps(d + pe * half + (c0 + padW) / 2, lanes8((n + 1) / 2), ev);
        _mm256_maskstore_ps(d + (1 - pe) * half + (c0 + 1 + padW) / 2, lanes8(n / 2), od);
      }
    }
  }
}

MS_TGT256 void pack_patch_columns_avx2(const PatchSource& s, const Segment* seg, int nseg,
                                       int filled, int64_t k0, int64_t kc, int NR, float* dst) {
  const int64_t taps = s.kh * s.kw;
  int64_t c = k0 / taps, i = (k0 % taps) / s.kw, j = k0 % s.kw;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t kk = 0; kk < kc; ++kk) {
    float* d = dst + kk * NR;
    const float* chan = s.data + c * s.channelStride;
    const int64_t dI = i * s.dilationH - s.padH, dJ = j * s.dilationW - s.padW;
    for (int g = 0; g < nseg; ++g) {
      const Segment& sg = seg[g];
      float* o = d + sg.t0;
      const int64_t ih = sg.oh * s.strideH + dI;
      if (ih < 0 || ih >= s.H) {
        for (int l0 = 0; l0 < sg.len; l0 += 8)
          _mm256_maskstore_ps(o + l0, lanes8(sg.len - l0), zero);
        continue;
      }
      const int64_t iw0 = sg.ow0 + dJ;  // strideW == 1
      const int64_t lo = iw0 < 0 ? -iw0 : 0;
      const int64_t hi = s.W - iw0 < sg.len ? s.W - iw0 : sg.len;
      const float* row = chan + sg.n * s.imageStride + ih * s.W;
      for (int l0 = 0; l0 < sg.len; l0 += 8) {
        // Lanes l0 + l with lo <= l0 + l < hi read the image; the rest are zero.
        const __m256i valid = _mm256_andnot_si256(lanes8(lo - l0), lanes8(hi - l0));
        const __m256 v = _mm256_maskload_ps(offset_ptr(row, iw0 + l0), valid);
        _mm256_maskstore_ps(o + l0, lanes8(sg.len - l0), v);
      }
    }
    for (int t = filled; t < NR; t += 8) _mm256_maskstore_ps(d + t, lanes8(NR - t), zero);
    if (++j == s.kw) {
      j = 0;
      if (++i == s.kh) {
        i = 0;
        ++c;
      }
    }
  }
}

MS_TGT256 void pack_patch_rows_t_avx2(const PatchSource& s, const Segment* seg, int nseg,
                                      int64_t k0, int rows, int NR, float* dst) {
  PatchRows p;
  patch_rows(s, seg, nseg, k0, rows, &p);
  const int depth = p.depth;
  // Walk the depth in blocks of 8 columns; a block may span several segments.
  int g0 = 0;
  for (int lb = 0; lb < depth; lb += 8) {
    const int kn = depth - lb < 8 ? depth - lb : 8;
    while (seg[g0].t0 + seg[g0].len <= lb) ++g0;
    for (int rb = 0; rb < NR; rb += 8) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        const int pr = rb + r;
        __m256 acc = _mm256_setzero_ps();
        if (pr < rows) {
          for (int g = g0; g < nseg && seg[g].t0 < lb + kn; ++g) {
            SegmentLanes l;
            if (!segment_lanes(s, p, seg[g], pr, lb, kn, &l)) continue;
            const __m256i m = _mm256_andnot_si256(lanes8(l.lo), lanes8(l.hi));
            // Segments of one block cover disjoint lanes: OR them together.
            acc = _mm256_or_ps(acc, _mm256_maskload_ps(offset_ptr(l.row, l.shift), m));
          }
        }
        v[r] = acc;
      }
      gemm::transpose8(v);
      float* d = dst + static_cast<int64_t>(lb) * NR + rb;
      for (int kk = 0; kk < kn; ++kk) _mm256_store_ps(d + kk * NR, v[kk]);
    }
  }
}

DirectFn direct_tile_avx2(int mr, int nv) {
  if (mr == 6 && nv == 1) return &direct_tile<6, 1>;
  return nullptr;
}

WeightFn weight_tile_avx2(int mr, int nt) {
  if (mr == 4 && nt == 3) return &weight_tile<4, 3>;
  return nullptr;
}

}  // namespace conv
}  // namespace modelslice

#endif  // MODELSLICE_X86
