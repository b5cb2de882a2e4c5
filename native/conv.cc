#include "conv.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "conv_implicit.h"
#include "conv_small.h"
#include "elementwise.h"
#include "gemm.h"
#include "norm.h"
#include "parallel.h"
#include "scratch.h"

namespace modelslice {

namespace {

thread_local const char* tl_conv_paths[3] = {"none", "none", "none"};

// Column buffers are per calling thread and grow only, so repeated
// convolutions of one shape do not allocate.
float* column_scratch(int64_t elements) {
  thread_local Scratch buffer;
  return buffer.get(static_cast<size_t>(elements));
}

// Runs body(n, threads) for every image n of the batch. With at least as many images as
// threads, the threads share the images and each image's work runs on its own thread
// (threads = 1): a GEMM of one small image is too small to split, and waking the pool per
// image cost more than it saved (a 3x3 stride-2 convolution to 7x7 outputs at batch 128:
// 19-22 GFLOP/s split per image). Otherwise the images go in order, each on every thread
// (threads = 0). Each image gets the same arithmetic either way.
template <typename F>
void for_each_image(int64_t batch, F&& body) {
  const int nt = get_num_threads();
  if (nt > 1 && batch >= nt) {
    parallel_run(nt, [&](int t, int n) {
      int64_t lo, hi;
      split_range(batch, 1, t, n, &lo, &hi);
      for (int64_t i = lo; i < hi; ++i) body(i, 1);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) body(i, 0);
  }
}

bool is_pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.strideH == 1 && s.strideW == 1 && s.padH == 0 && s.padW == 0;
}

// col[(c * kh + i) * kw + j][oh * outW + ow] = x[c][oh * sh - ph + i * dh][ow * sw - pw + j * dw]
// for the `channels` planes starting at x (one image, one group), on at most maxThreads
// threads (0: the calling thread's count). Rows of col are ldcol apart (0: plane).
void im2col(const ConvShape& s, int64_t channels, const float* x, float* col, int maxThreads = 0,
            int64_t ldcol = 0) {
  const int64_t rows = channels * s.kh * s.kw;
  const int64_t plane = s.outH * s.outW;
  if (ldcol == 0) ldcol = plane;
  const int threads =
      rows * plane < (1 << 16) ? 1 : (maxThreads > 0 ? maxThreads : get_num_threads());
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, 1, t, nt, &lo, &hi);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t c = r / (s.kh * s.kw), i = (r / s.kw) % s.kh, j = r % s.kw;
      const float* xc = x + c * s.inH * s.inW;
      float* out = col + r * ldcol;
      for (int64_t oh = 0; oh < s.outH; ++oh) {
        const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
        float* o = out + oh * s.outW;
        if (ih < 0 || ih >= s.inH) {
          std::memset(o, 0, sizeof(float) * s.outW);
          continue;
        }
        const float* xr = xc + ih * s.inW;
        const int64_t off = j * s.dilationW - s.padW;
        if (s.strideW == 1) {
          // Valid ow satisfy 0 <= ow + off < inW.
          int64_t begin = off < 0 ? -off : 0;
          int64_t end = s.inW - off < s.outW ? s.inW - off : s.outW;
          if (end < begin) end = begin;
          for (int64_t ow = 0; ow < begin; ++ow) o[ow] = 0;
          if (end > begin) std::memcpy(o + begin, xr + begin + off, sizeof(float) * (end - begin));
          for (int64_t ow = end; ow < s.outW; ++ow) o[ow] = 0;
        } else {
          for (int64_t ow = 0; ow < s.outW; ++ow) {
            const int64_t iw = ow * s.strideW + off;
            o[ow] = iw >= 0 && iw < s.inW ? xr[iw] : 0.0f;
          }
        }
      }
    }
  });
}

// The adjoint of im2col: x[c][ih][iw] += col[...] over every tap that read it.
// Split over channels so no two threads add into the same plane.
void col2im_add(const ConvShape& s, int64_t channels, const float* col, float* x,
                int maxThreads = 0) {
  const int64_t plane = s.outH * s.outW;
  const int threads = channels * s.kh * s.kw * plane < (1 << 16)
                          ? 1
                          : (maxThreads > 0 ? maxThreads : get_num_threads());
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(channels, 1, t, nt, &lo, &hi);
    for (int64_t c = lo; c < hi; ++c) {
      float* xc = x + c * s.inH * s.inW;
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          const float* in = col + ((c * s.kh + i) * s.kw + j) * plane;
          for (int64_t oh = 0; oh < s.outH; ++oh) {
            const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
            if (ih < 0 || ih >= s.inH) continue;
            float* xr = xc + ih * s.inW;
            const float* r = in + oh * s.outW;
            for (int64_t ow = 0; ow < s.outW; ++ow) {
              const int64_t iw = ow * s.strideW - s.padW + j * s.dilationW;
              if (iw >= 0 && iw < s.inW) xr[iw] += r[ow];
            }
          }
        }
    }
  });
}

bool is_depthwise(const ConvShape& s) {
  return s.groups == s.inChannels && s.groups == s.outChannels && s.groups > 1;
}

// Direct depthwise convolution: one plane per (image, channel).
void depthwise_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                       float* y) {
  const int64_t planes = s.batch * s.inChannels;
  const int64_t taps = s.weightInPerGroup * s.kh * s.kw;
  const int threads = planes * s.outH * s.outW * s.kh * s.kw < (1 << 15) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(planes, 1, t, nt, &lo, &hi);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t c = p % s.inChannels;
      const float* xp = x + p * s.inH * s.inW;
      const float* wc = w + c * taps;
      float* yp = y + p * s.outH * s.outW;
      const float b = bias ? bias[c] : 0.0f;
      for (int64_t oh = 0; oh < s.outH; ++oh)
        for (int64_t ow = 0; ow < s.outW; ++ow) {
          float acc = 0;
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
            if (ih < 0 || ih >= s.inH) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const int64_t iw = ow * s.strideW - s.padW + j * s.dilationW;
              if (iw >= 0 && iw < s.inW) acc += xp[ih * s.inW + iw] * wc[i * s.kw + j];
            }
          }
          yp[oh * s.outW + ow] = acc + b;
        }
    }
  });
}

void depthwise_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx) {
  const int64_t planes = s.batch * s.inChannels;
  const int64_t taps = s.weightInPerGroup * s.kh * s.kw;
  const int threads = planes * s.outH * s.outW * s.kh * s.kw < (1 << 15) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(planes, 1, t, nt, &lo, &hi);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t c = p % s.inChannels;
      float* gxp = gx + p * s.inH * s.inW;
      const float* wc = w + c * taps;
      const float* gyp = gy + p * s.outH * s.outW;
      for (int64_t oh = 0; oh < s.outH; ++oh)
        for (int64_t ow = 0; ow < s.outW; ++ow) {
          const float g = gyp[oh * s.outW + ow];
          for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
            if (ih < 0 || ih >= s.inH) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
              const int64_t iw = ow * s.strideW - s.padW + j * s.dilationW;
              if (iw >= 0 && iw < s.inW) gxp[ih * s.inW + iw] += g * wc[i * s.kw + j];
            }
          }
        }
    }
  });
}

void depthwise_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw) {
  const int64_t taps = s.weightInPerGroup * s.kh * s.kw;
  const int threads =
      s.batch * s.inChannels * s.outH * s.outW * s.kh * s.kw < (1 << 15) ? 1 : get_num_threads();
  // Split over channels: each weight tap has one owner and a fixed summation order.
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(s.inChannels, 1, t, nt, &lo, &hi);
    for (int64_t c = lo; c < hi; ++c) {
      float* gwc = gw + c * taps;
      for (int64_t i = 0; i < s.kh; ++i)
        for (int64_t j = 0; j < s.kw; ++j) {
          double acc = 0;
          for (int64_t n = 0; n < s.batch; ++n) {
            const float* xp = x + (n * s.inChannels + c) * s.inH * s.inW;
            const float* gyp = gy + (n * s.inChannels + c) * s.outH * s.outW;
            for (int64_t oh = 0; oh < s.outH; ++oh) {
              const int64_t ih = oh * s.strideH - s.padH + i * s.dilationH;
              if (ih < 0 || ih >= s.inH) continue;
              for (int64_t ow = 0; ow < s.outW; ++ow) {
                const int64_t iw = ow * s.strideW - s.padW + j * s.dilationW;
                if (iw >= 0 && iw < s.inW) acc += gyp[oh * s.outW + ow] * xp[ih * s.inW + iw];
              }
            }
          }
          gwc[i * s.kw + j] += static_cast<float>(acc);
        }
    }
  });
}

}  // namespace

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t padded = in + 2 * pad;
  if (stride < 1 || padded < span) return -1;
  return (padded - span) / stride + 1;
}

void apply_input_transform(const InputTransform& t, int64_t inChannels, int64_t n, int64_t c0,
                           int64_t channels, int64_t plane, const float* src, float* dst) {
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t i = n * inChannels + c0 + c;
    const float center = t.center[i], scale = t.scale[i], shift = t.shift[i];
    const float* s = src + c * plane;
    float* d = dst + c * plane;
    if (t.relu) {
      for (int64_t p = 0; p < plane; ++p) {
        const float v = (s[p] - center) * scale + shift;
        d[p] = v <= 0.0f ? 0.0f : v;  // NaN passes through, as in group_norm_forward
      }
    } else {
      for (int64_t p = 0; p < plane; ++p) d[p] = (s[p] - center) * scale + shift;
    }
  }
}

namespace {
void conv2d_forward_paths(const ConvShape& s, const float* x, const float* w, const float* bias,
                          float* y, bool accumulate, const InputTransform* t, const OutputStats* st,
                          bool* statsDone, const float* residual, bool* residualDone);

// The whole batch's input with t applied, in thread-local scratch, for the paths that read the
// input in place (the memory traffic of an unfused norm, no more). Images are split between
// threads: no more threads than images (waking an idle pool worker costs more than a batch-1
// map), and one for a small map.
const float* mapped_batch(const ConvShape& s, const float* x, const InputTransform& t) {
  thread_local Scratch mappedInput;
  const int64_t inPlane = s.inH * s.inW, mapped = s.batch * s.inChannels * inPlane;
  float* xt = mappedInput.get(static_cast<size_t>(mapped));
  const int mapThreads =
      mapped < (1 << 16) ? 1 : static_cast<int>(std::min<int64_t>(get_num_threads(), s.batch));
  parallel_run(mapThreads, [&](int th, int nt) {
    int64_t lo, hi;
    split_range(s.batch, 1, th, nt, &lo, &hi);
    for (int64_t n = lo; n < hi; ++n)
      apply_input_transform(t, s.inChannels, n, 0, s.inChannels, inPlane,
                            x + n * s.inChannels * inPlane, xt + n * s.inChannels * inPlane);
  });
  return xt;
}
}  // namespace

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool accumulate, const InputTransform* t, const OutputStats* st,
                    const float* residual) {
  if (accumulate && (s.groups != 1 || bias != nullptr))
    throw std::invalid_argument("conv2dForward: accumulate needs groups 1 and no bias");
  if (accumulate && residual != nullptr)
    throw std::invalid_argument("conv2dForward: a residual needs accumulate false");
  bool statsDone = false, residualDone = false;
  // With a residual the statistics are of the sum: computed after it.
  conv2d_forward_paths(s, x, w, bias, y, accumulate, t, residual ? nullptr : st, &statsDone,
                       residual, &residualDone);
  // y + 1 * residual: the add's value, bit for bit (no fma contraction in this build).
  if (residual != nullptr && !residualDone)
    axpy(s.batch * s.outChannels * s.outH * s.outW, 1.0f, residual, y);
  if (st != nullptr && !statsDone)
    group_norm_stats(s.batch, s.outChannels, s.outH * s.outW, st->groups, y, st->gamma, st->beta,
                     st->eps, st->mean, st->rstd, st->center, st->scale, st->shift);
}

namespace {
void conv2d_forward_paths(const ConvShape& s, const float* x, const float* w, const float* bias,
                          float* y, bool accumulate, const InputTransform* t, const OutputStats* st,
                          bool* statsDone, const float* residual, bool* residualDone) {
  const int64_t inPlane = s.inH * s.inW;
  if (conv_small_forward(s, x, w, bias, y, accumulate, t)) return;
  // With a map: the direct tiles apply it as they copy each image into their padded buffer,
  // and the im2col and 1x1 loops below map each image into scratch while it is in cache.
  // The depthwise and implicit-GEMM paths read the input in place: for them the whole batch
  // is mapped first (the memory traffic of an unfused norm, no more).
  if (t != nullptr &&
      conv_implicit_forward(s, x, w, bias, y, accumulate, t, st, statsDone, residual, residualDone))
    return;
  if (t != nullptr && (is_depthwise(s) || conv_implicit_forward_runs(s))) {
    conv2d_forward_paths(s, mapped_batch(s, x, *t), w, bias, y, accumulate, nullptr, st, statsDone,
                         residual, residualDone);
    return;
  }
  if (is_depthwise(s)) {
    note_conv_path(ConvPass::kForward, "depthwise");
    depthwise_forward(s, x, w, bias, y);
    return;
  }
  if (t == nullptr && conv_implicit_forward(s, x, w, bias, y, accumulate, nullptr, st, statsDone,
                                            residual, residualDone))
    return;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t k = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t plane = s.outH * s.outW;
  const bool pointwise = is_pointwise(s);
  note_conv_path(ConvPass::kForward, pointwise ? "pointwise" : "im2col");
  for_each_image(s.batch, [&](int64_t n, int threads) {
    float* col = pointwise ? nullptr : column_scratch(k * plane);
    // With a map, each image's input is mapped into scratch while it is still in cache.
    thread_local Scratch mappedImage;
    float* xm = t ? mappedImage.get(static_cast<size_t>(s.inChannels * inPlane)) : nullptr;
    if (t)
      apply_input_transform(*t, s.inChannels, n, 0, s.inChannels, inPlane,
                            x + n * s.inChannels * inPlane, xm);
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* xg = t ? xm + g * cg * inPlane : x + (n * s.inChannels + g * cg) * inPlane;
      const float* b = xg;
      if (!pointwise) {
        im2col(s, cg, xg, col, threads);
        b = col;
      }
      float* yg = y + (n * s.outChannels + g * og) * plane;
      sgemm_threads(threads, false, false, og, plane, k, 1.0f, w + g * og * ldw, ldw, b, plane,
                    accumulate ? 1.0f : 0.0f, yg, plane);
    }
  });
  if (bias) {
    const int64_t planes = s.batch * s.outChannels;
    parallel_run(planes * plane < (1 << 16) ? 1 : get_num_threads(), [&](int t, int nt) {
      int64_t lo, hi;
      split_range(planes, 1, t, nt, &lo, &hi);
      for (int64_t p = lo; p < hi; ++p) {
        const float bv = bias[p % s.outChannels];
        float* yp = y + p * plane;
        for (int64_t i = 0; i < plane; ++i) yp[i] += bv;
      }
    });
  }
}
}  // namespace

void conv2d_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx,
                           bool accumulate) {
  const int64_t inPlane = s.inH * s.inW;
  if (is_depthwise(s)) {
    note_conv_path(ConvPass::kBackwardInput, "depthwise");
    if (!accumulate) std::fill(gx, gx + s.batch * s.inChannels * inPlane, 0.0f);
    depthwise_backward_input(s, gy, w, gx);
    return;
  }
  if (conv_implicit_backward_input(s, gy, w, gx, accumulate)) return;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t k = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t plane = s.outH * s.outW;
  const bool pointwise = is_pointwise(s);
  note_conv_path(ConvPass::kBackwardInput, pointwise ? "pointwise" : "im2col");
  for_each_image(s.batch, [&](int64_t n, int threads) {
    float* col = pointwise ? nullptr : column_scratch(k * plane);
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* gyg = gy + (n * s.outChannels + g * og) * plane;
      float* gxg = gx + (n * s.inChannels + g * cg) * s.inH * s.inW;
      const float* wg = w + g * og * ldw;
      if (pointwise) {
        sgemm_threads(threads, true, false, k, plane, og, 1.0f, wg, ldw, gyg, plane,
                      accumulate ? 1.0f : 0.0f, gxg, plane);
      } else {
        sgemm_threads(threads, true, false, k, plane, og, 1.0f, wg, ldw, gyg, plane, 0.0f, col,
                      plane);
        if (!accumulate) std::fill(gxg, gxg + cg * inPlane, 0.0f);
        col2im_add(s, cg, col, gxg, threads);
      }
    }
  });
}

void conv2d_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw,
                            const InputTransform* t) {
  // With a map: the direct and flat tiles apply it as they copy each image; the other paths
  // get the whole batch mapped first.
  if (t != nullptr) {
    if (!is_depthwise(s) && conv_implicit_backward_weight(s, gy, x, gw, t)) return;
    conv2d_backward_weight(s, gy, mapped_batch(s, x, *t), gw, nullptr);
    return;
  }
  if (is_depthwise(s)) {
    note_conv_path(ConvPass::kBackwardWeight, "depthwise");
    depthwise_backward_weight(s, gy, x, gw);
    return;
  }
  if (conv_implicit_backward_weight(s, gy, x, gw)) return;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t k = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t plane = s.outH * s.outW;
  const bool pointwise = is_pointwise(s);
  note_conv_path(ConvPass::kBackwardWeight, pointwise ? "pointwise" : "im2col");
  if (pointwise) {
    for (int64_t n = 0; n < s.batch; ++n)
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* xg = x + (n * s.inChannels + g * cg) * s.inH * s.inW;
        const float* gyg = gy + (n * s.outChannels + g * og) * plane;
        sgemm(false, true, og, k, plane, 1.0f, gyg, plane, xg, plane, 1.0f, gw + g * og * ldw, ldw);
      }
    return;
  }
  // Images side by side in one GEMM: a small output (7x7: 49 pixels) would make a GEMM of
  // depth 49 per image, mostly packing and C traffic (21 GFLOP/s for 32->64 channels, 3x3
  // stride 2 to 7x7 at batch 128; 65 side by side). About 1024 pixels deep, the columns at
  // most 16 MiB; the grouping depends on the shape only, so the sums' order does not depend
  // on the threads. Not for 1x1 kernels: their few patch rows make the copies of gy cost
  // more than the GEMMs save (32->64, stride 2, to 7x7: 0.5 ms per image, 1.1 side by side).
  const int64_t group =
      s.kh * s.kw == 1 || k * plane == 0
          ? 1
          : std::max<int64_t>(1, std::min<int64_t>({s.batch, ceil_div(1024, plane),
                                                    (int64_t(4) << 20) / (k * plane)}));
  const int64_t depth = group * plane;
  float* col = column_scratch(k * depth);
  thread_local Scratch gyScratch;
  float* gyc = group > 1 ? gyScratch.get(static_cast<size_t>(og * depth)) : nullptr;
  for (int64_t n0 = 0; n0 < s.batch; n0 += group) {
    const int64_t images = std::min(group, s.batch - n0), ld = images * plane;
    for (int64_t g = 0; g < s.groups; ++g) {
      // Threads share the copies (columns and gy rows) by image.
      parallel_run(images * (k + og) * plane < (1 << 15) ? 1 : get_num_threads(),
                   [&](int t, int nt) {
                     int64_t lo, hi;
                     split_range(images, 1, t, nt, &lo, &hi);
                     for (int64_t i = lo; i < hi; ++i) {
                       const float* xg = x + ((n0 + i) * s.inChannels + g * cg) * s.inH * s.inW;
                       im2col(s, cg, xg, col + i * plane, 1, ld);
                       if (images > 1)
                         for (int64_t o = 0; o < og; ++o)
                           std::memcpy(gyc + o * ld + i * plane,
                                       gy + ((n0 + i) * s.outChannels + g * og + o) * plane,
                                       sizeof(float) * plane);
                     }
                   });
      const float* a = images > 1 ? gyc : gy + (n0 * s.outChannels + g * og) * plane;
      sgemm(false, true, og, k, ld, 1.0f, a, images > 1 ? ld : plane, col, ld, 1.0f,
            gw + g * og * ldw, ldw);
    }
  }
}

void conv2d_backward_bias(const ConvShape& s, const float* gy, float* gb) {
  const int64_t plane = s.outH * s.outW;
  parallel_run(s.batch * s.outChannels * plane < (1 << 16) ? 1 : get_num_threads(),
               [&](int t, int nt) {
                 int64_t lo, hi;
                 split_range(s.outChannels, 1, t, nt, &lo, &hi);
                 for (int64_t o = lo; o < hi; ++o) {
                   double acc = 0;
                   for (int64_t n = 0; n < s.batch; ++n) {
                     const float* p = gy + (n * s.outChannels + o) * plane;
                     for (int64_t i = 0; i < plane; ++i) acc += p[i];
                   }
                   gb[o] += static_cast<float>(acc);
                 }
               });
}

const char* conv_last_path(ConvPass pass) { return tl_conv_paths[static_cast<int>(pass)]; }

void note_conv_path(ConvPass pass, const char* path) {
  tl_conv_paths[static_cast<int>(pass)] = path;
}

}  // namespace modelslice
