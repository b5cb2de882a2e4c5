#include "pool.h"

#include <algorithm>
#include <cmath>

#include "cpu.h"
#include "parallel.h"

namespace modelslice {

namespace {

int threads_for(int64_t work) { return work < (1 << 15) ? 1 : get_num_threads(); }

// Runs body(plane) for every plane, split across threads by plane.
template <typename Body>
void for_planes(int64_t planes, int64_t work, Body&& body) {
  parallel_run(threads_for(work), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(planes, 1, t, nt, &lo, &hi);
    for (int64_t p = lo; p < hi; ++p) body(p);
  });
}

// The taps [tap_begin, tap_end) of a window whose first tap is input row (or
// column) `start`, possibly negative, that fall inside [0, in); the others read
// padding. Loops run over these only, so a window far larger than the input
// (a huge kernel or padding) costs what the input costs, not what the window does.
inline int64_t tap_begin(int64_t start) { return start < 0 ? -start : 0; }
inline int64_t tap_end(int64_t start, int64_t k, int64_t in) { return std::min(k, in - start); }

// Taps read in all, for the threading decision: at most the input's extent per
// axis, so a huge window cannot overflow the product.
inline int64_t window_work(const PoolShape& s) {
  return s.planes * s.outH * s.outW * std::min(s.kh, s.inH) * std::min(s.kw, s.inW);
}

}  // namespace

namespace {

// The window's running maximum m after tap v, as the general loop below takes it: v when it is
// larger, or when it is NaN and m is not yet (the first NaN wins, as in PyTorch). Branch-free,
// so the loops over a row vectorise.
MS_INLINE bool takes(float m, float v) { return v > m || (v != v && m == m); }
MS_INLINE float take_max(float m, float v) { return takes(m, v) ? v : m; }

// 2x2 windows, stride 2, no padding: VGG's pools.
bool plain_2x2(const PoolShape& s) {
  return s.kh == 2 && s.kw == 2 && s.strideH == 2 && s.strideW == 2 && s.padH == 0 && s.padW == 0 &&
         s.outH == s.inH / 2 && s.outW == s.inW / 2;
}

// The four taps of each window in the general loop's order, so every output is the same value,
// bit for bit (with the same NaN), row by row.
bool max_pool_2x2(const PoolShape& s, const float* x, float* y) {
  if (!plain_2x2(s)) return false;
  for_planes(s.planes, s.planes * s.outH * s.outW * 4, [&](int64_t p) {
    run_isa([&]() MS_INLINE_LAMBDA {
      const float* xp = x + p * s.inH * s.inW;
      float* yp = y + p * s.outH * s.outW;
      for (int64_t oh = 0; oh < s.outH; ++oh) {
        const float* r0 = xp + 2 * oh * s.inW;
        const float* r1 = r0 + s.inW;
        float* out = yp + oh * s.outW;
        for (int64_t ow = 0; ow < s.outW; ++ow) {
          const float top = take_max(r0[2 * ow], r0[2 * ow + 1]);
          const float bottom = take_max(r1[2 * ow], r1[2 * ow + 1]);
          out[ow] = take_max(top, bottom);
        }
      }
    });
  });
  return true;
}

// The backward of max_pool_2x2: gy to each window's first maximum (the general loop's), the
// other three taps of gx left as they are.
bool max_pool_2x2_backward(const PoolShape& s, const float* x, const float* gy, float* gx) {
  if (!plain_2x2(s)) return false;
  for_planes(s.planes, s.planes * s.outH * s.outW * 4, [&](int64_t p) {
    run_isa([&]() MS_INLINE_LAMBDA {
      const float* xp = x + p * s.inH * s.inW;
      float* gp = gx + p * s.inH * s.inW;
      const float* g = gy + p * s.outH * s.outW;
      for (int64_t oh = 0; oh < s.outH; ++oh) {
        const float* r0 = xp + 2 * oh * s.inW;
        const float* r1 = r0 + s.inW;
        float* g0 = gp + 2 * oh * s.inW;
        float* g1 = g0 + s.inW;
        const float* go = g + oh * s.outW;
        for (int64_t ow = 0; ow < s.outW; ++ow) {
          const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
          const bool takeB = takes(a, b), takeD = takes(c, d);
          const float top = takeB ? b : a, bottom = takeD ? d : c;
          const bool takeBottom = takes(top, bottom);
          const float v = go[ow];
          g0[2 * ow] = !takeBottom && !takeB ? g0[2 * ow] + v : g0[2 * ow];
          g0[2 * ow + 1] = !takeBottom && takeB ? g0[2 * ow + 1] + v : g0[2 * ow + 1];
          g1[2 * ow] = takeBottom && !takeD ? g1[2 * ow] + v : g1[2 * ow];
          g1[2 * ow + 1] = takeBottom && takeD ? g1[2 * ow + 1] + v : g1[2 * ow + 1];
        }
      }
    });
  });
  return true;
}

}  // namespace

void max_pool_forward(const PoolShape& s, const float* x, float* y) {
  if (max_pool_2x2(s, x, y)) return;
  for_planes(s.planes, window_work(s), [&](int64_t p) {
    const float* xp = x + p * s.inH * s.inW;
    float* yp = y + p * s.outH * s.outW;
    for (int64_t oh = 0; oh < s.outH; ++oh)
      for (int64_t ow = 0; ow < s.outW; ++ow) {
        float m = -INFINITY;
        const int64_t h0 = oh * s.strideH - s.padH, w0 = ow * s.strideW - s.padW;
        for (int64_t i = tap_begin(h0); i < tap_end(h0, s.kh, s.inH); ++i) {
          const int64_t ih = h0 + i;
          for (int64_t j = tap_begin(w0); j < tap_end(w0, s.kw, s.inW); ++j) {
            const int64_t iw = w0 + j;
            const float v = xp[ih * s.inW + iw];
            if (takes(m, v)) m = v;
            if (m != m) break;  // the first NaN wins, as in PyTorch
          }
        }
        yp[oh * s.outW + ow] = m;
      }
  });
}

void max_pool_backward(const PoolShape& s, const float* x, const float* gy, float* gx) {
  if (max_pool_2x2_backward(s, x, gy, gx)) return;
  for_planes(s.planes, window_work(s), [&](int64_t p) {
    const float* xp = x + p * s.inH * s.inW;
    const float* gp = gy + p * s.outH * s.outW;
    float* gxp = gx + p * s.inH * s.inW;
    for (int64_t oh = 0; oh < s.outH; ++oh)
      for (int64_t ow = 0; ow < s.outW; ++ow) {
        float m = -INFINITY;
        int64_t arg = -1;
        const int64_t h0 = oh * s.strideH - s.padH, w0 = ow * s.strideW - s.padW;
        for (int64_t i = tap_begin(h0); i < tap_end(h0, s.kh, s.inH); ++i) {
          const int64_t ih = h0 + i;
          for (int64_t j = tap_begin(w0); j < tap_end(w0, s.kw, s.inW); ++j) {
            const int64_t iw = w0 + j;
            const float v = xp[ih * s.inW + iw];
            if (arg < 0 || takes(m, v)) {
              m = v;
              arg = ih * s.inW + iw;
            }
          }
        }
        if (arg >= 0) gxp[arg] += gp[oh * s.outW + ow];
      }
  });
}

void avg_pool_forward(const PoolShape& s, const float* x, float* y) {
  const float inv = 1.0f / static_cast<float>(s.kh * s.kw);
  for_planes(s.planes, window_work(s), [&](int64_t p) {
    const float* xp = x + p * s.inH * s.inW;
    float* yp = y + p * s.outH * s.outW;
    for (int64_t oh = 0; oh < s.outH; ++oh)
      for (int64_t ow = 0; ow < s.outW; ++ow) {
        float acc = 0;
        const int64_t h0 = oh * s.strideH - s.padH, w0 = ow * s.strideW - s.padW;
        for (int64_t i = tap_begin(h0); i < tap_end(h0, s.kh, s.inH); ++i) {
          const int64_t ih = h0 + i;
          for (int64_t j = tap_begin(w0); j < tap_end(w0, s.kw, s.inW); ++j) {
            const int64_t iw = w0 + j;
            acc += xp[ih * s.inW + iw];
          }
        }
        yp[oh * s.outW + ow] = acc * inv;
      }
  });
}

void avg_pool_backward(const PoolShape& s, const float* gy, float* gx) {
  const float inv = 1.0f / static_cast<float>(s.kh * s.kw);
  for_planes(s.planes, window_work(s), [&](int64_t p) {
    const float* gp = gy + p * s.outH * s.outW;
    float* gxp = gx + p * s.inH * s.inW;
    for (int64_t oh = 0; oh < s.outH; ++oh)
      for (int64_t ow = 0; ow < s.outW; ++ow) {
        const float g = gp[oh * s.outW + ow] * inv;
        const int64_t h0 = oh * s.strideH - s.padH, w0 = ow * s.strideW - s.padW;
        for (int64_t i = tap_begin(h0); i < tap_end(h0, s.kh, s.inH); ++i) {
          const int64_t ih = h0 + i;
          for (int64_t j = tap_begin(w0); j < tap_end(w0, s.kw, s.inW); ++j) {
            const int64_t iw = w0 + j;
            gxp[ih * s.inW + iw] += g;
          }
        }
      }
  });
}

void global_avg_pool_forward(int64_t planes, int64_t size, const float* x, float* y) {
  for_planes(planes, planes * size, [&](int64_t p) {
    const float* xp = x + p * size;
    double acc = 0;
    for (int64_t i = 0; i < size; ++i) acc += xp[i];
    y[p] = static_cast<float>(acc / static_cast<double>(size));
  });
}

void global_avg_pool_backward(int64_t planes, int64_t size, const float* gy, float* gx) {
  for_planes(planes, planes * size, [&](int64_t p) {
    const float g = gy[p] / static_cast<float>(size);
    float* gxp = gx + p * size;
    for (int64_t i = 0; i < size; ++i) gxp[i] += g;
  });
}

}  // namespace modelslice
