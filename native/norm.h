// Normalization kernels over [batch, channels, spatial] activations. Statistics
// are accumulated in double; gamma/beta may be null (no affine transform).
#pragma once
#include <cstdint>

namespace modelslice {

// Group norm over `groups` contiguous channel groups per image. Writes y and
// the per-(image, group) mean and reciprocal standard deviation.
void group_norm_forward(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                        const float* x, const float* gamma, const float* beta, float eps, float* y,
                        float* mean, float* rstd, bool relu = false);

// Group norm's statistics without its output: mean and rstd per (image, group), and per
// (image, channel) the map y = (x - center) * scale + shift that group_norm_forward applies,
// in the same rounding (for a convolution to apply as it reads x: conv.h, InputTransform).
void group_norm_stats(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                      const float* x, const float* gamma, const float* beta, float eps, float* mean,
                      float* rstd, float* center, float* scale, float* shift);

// group_norm_stats for groups [g0, g1) of image n only, on the calling thread (x, mean, ...
// are the whole batch's): what a convolution's thread computes for an image, or the norm
// groups of it, that it wrote, while they are in its cache (conv.h, OutputStats). The same
// values as group_norm_stats.
void group_norm_stats_groups(int64_t n, int64_t g0, int64_t g1, int64_t channels, int64_t spatial,
                             int64_t groups, const float* x, const float* gamma, const float* beta,
                             float eps, float* mean, float* rstd, float* center, float* scale,
                             float* shift);

// The map of a folded group norm + ReLU (group_norm_stats's center, scale, shift): its
// output is max((x - center) * scale + shift, 0) per (image, channel), never written.
struct ReluMap {
  const float* center;
  const float* scale;
  const float* shift;
};

// gx += dL/dx; ggamma, gbeta (nullable) += their gradients. With relu_out (the output
// of a fused groupNorm + ReLU) the incoming gradient is masked by relu_out > 0. With
// relu_map instead, by that output recomputed from x channel by channel, bit for bit the
// same mask: a training plan that folds the norm into its convolutions keeps no output.
void group_norm_backward(int64_t batch, int64_t channels, int64_t spatial, int64_t groups,
                         const float* x, const float* gy, const float* gamma, const float* mean,
                         const float* rstd, float* gx, float* ggamma, float* gbeta,
                         const float* relu_out = nullptr, bool gx_accumulate = true,
                         const ReluMap* relu_map = nullptr);

// Per-channel mean and biased variance over batch and space.
void channel_moments(int64_t batch, int64_t channels, int64_t spatial, const float* x, float* mean,
                     float* var);

// y = x * scale[c] + shift[c].
void channel_affine(int64_t batch, int64_t channels, int64_t spatial, const float* x,
                    const float* scale, const float* shift, float* y);

// Batch norm backward. With `training`, mean/rstd are the batch statistics and
// flow into gx; otherwise they are constants (running statistics).
void batch_norm_backward(int64_t batch, int64_t channels, int64_t spatial, const float* x,
                         const float* gy, const float* mean, const float* rstd, const float* gamma,
                         bool training, float* gx, float* ggamma, float* gbeta);

}  // namespace modelslice
