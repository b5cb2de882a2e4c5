// 2-D convolution on channel prefixes, NCHW activations and OIHW weights.
//
// A call uses the first `outChannels` filters of the full weight and, within
// each group, the first `inChannels / groups` of the weight's
// `weightInPerGroup` input channels. Filter o's used taps are then the first
// (inChannels / groups) * kh * kw values of its row, so the weight is a
// row-major matrix with leading dimension weightInPerGroup * kh * kw whose
// prefix the GEMM reads in place.
#pragma once
#include <cstdint>

namespace modelslice {

struct ConvShape {
  int64_t batch, inChannels, inH, inW;
  int64_t outChannels, kh, kw;
  int64_t strideH, strideW, padH, padW, dilationH, dilationW;
  int64_t groups;
  int64_t weightInPerGroup;  // weight.shape[1]
  int64_t outH, outW;        // derived by conv_out_size
};

// Output size along one axis, or -1 when the (dilated) kernel does not fit the padded input.
int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

// A per-(image, channel) affine map, optionally followed by ReLU, applied to the input as
// the convolution reads it: x'[n, c] = (x[n, c] - center[i]) * scale[i] + shift[i] with
// i = n * inChannels + c, then max(x', 0) (NaN kept) with relu. In this order and rounding
// it is group norm's output (norm.h): an inference plan folds a group norm + ReLU into the
// convolutions that read it, so the normalized activation is never written.
struct InputTransform {
  const float* center;
  const float* scale;
  const float* shift;
  bool relu;
};

// The statistics of a group norm over the convolution's output (norm.h, group_norm_stats):
// mean and rstd per (image, group), center / scale / shift per (image, output channel). An
// inference plan asks the convolution for them when that norm reads its output next: the
// direct tiles compute each image's as soon as the thread that wrote the image is done with
// it, while the image is in that core's cache, instead of a pass over the whole output
// afterwards. The values are group_norm_stats's, bit for bit, on every path.
struct OutputStats {
  int64_t groups;
  const float* gamma;  // per output channel, or null
  const float* beta;   // per output channel, or null
  float eps;
  float* mean;
  float* rstd;
  float* center;
  float* scale;
  float* shift;
};

// y = conv(x, w) + bias (bias may be null); y is written, not accumulated.
// With accumulate, y += conv(x, w) instead: ungrouped, without bias (an
// inference plan folds a residual add into the convolution before it).
// With t, the convolution reads t applied to x (see InputTransform); with st, it also
// computes st's statistics of y (after the accumulation, when accumulating).
// With residual (laid out as y, not overlapping it; accumulate false), y = (conv(x, w) + bias)
// + residual, bit for bit as the convolution followed by the add: a training plan folds a
// residual block's add into its last convolution (the direct tiles add as they store).
void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                    bool accumulate = false, const InputTransform* t = nullptr,
                    const OutputStats* st = nullptr, const float* residual = nullptr);

// dst = t applied to `channels` channels of `plane` values of image n, starting at channel c0.
void apply_input_transform(const InputTransform& t, int64_t inChannels, int64_t n, int64_t c0,
                           int64_t channels, int64_t plane, const float* src, float* dst);

// gx += conv_transpose(gy, w).
// Adds the input gradient into gx, or with accumulate false writes it (gx's old values unread).
void conv2d_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx,
                           bool accumulate = true);

// gw[prefix] += correlation of gy with x (the rest of gw is untouched). With t, of gy with t
// applied to x (the forward pass's input map): the same sums as over the mapped input.
void conv2d_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw,
                            const InputTransform* t = nullptr);

// gb[:outChannels] += sums of gy over batch and space.
void conv2d_backward_bias(const ConvShape& s, const float* gy, float* gb);

// Which code path the calling thread's last convolution of each pass took:
// "depthwise", "direct" or "implicit" (conv_implicit.cc), "pointwise" (a plain
// GEMM per image) or "im2col". Tests read it to know the fast paths really ran.
enum class ConvPass : int { kForward = 0, kBackwardInput = 1, kBackwardWeight = 2 };
const char* conv_last_path(ConvPass pass);
void note_conv_path(ConvPass pass, const char* path);

}  // namespace modelslice
