// Deterministic, vectorisable reductions. A plain `double s += x[i]` loop is a
// serial dependency chain the compiler may not reorder; here each block of
// 4096 values is summed in 64 independent float lanes (which it vectorises)
// and the blocks are combined in double. The order is fixed, so results do not
// depend on threads or alignment.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu.h"

namespace modelslice {

namespace reduce_detail {
// 64 lanes: four independent AVX-512 accumulators (eight AVX2, sixteen SSE), enough to hide
// the add latency; one accumulator chain ran at a quarter of the load rate.
constexpr int kLanes = 64;
constexpr int64_t kBlock = 4096;  // 64 terms per lane, as 16 lanes over 1024 had

template <typename Term>
MS_INLINE double blocked_sum(int64_t n, Term&& term) {
  double total = 0;
  int64_t i = 0;
  while (n - i >= kLanes) {
    float lanes[kLanes] = {0};
    int64_t end = i + kBlock < n ? i + kBlock : n;
    end = i + (end - i) / kLanes * kLanes;
    for (; i < end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
    // A fixed tree: four lanes to one in float, then sixteen in double, halving.
    double d[16];
    for (int j = 0; j < 16; ++j)
      d[j] = static_cast<double>((lanes[j] + lanes[j + 16]) + (lanes[j + 32] + lanes[j + 48]));
    for (int w = 8; w > 0; w /= 2)
      for (int j = 0; j < w; ++j) d[j] += d[j + w];
    total += d[0];
  }
  for (; i < n; ++i) total += term(i);
  return total;
}
}  // namespace reduce_detail

// sum x[i]. The lanes sum deviations from x[0], so a large common offset does
// not eat the float lanes' precision (the offset is added back in double).
MS_INLINE double sum_of(const float* x, int64_t n) {
  if (n == 0) return 0;
  const float pivot = x[0];
  return static_cast<double>(pivot) * static_cast<double>(n) +
         reduce_detail::blocked_sum(
             n, [x, pivot](int64_t i) MS_INLINE_LAMBDA { return x[i] - pivot; });
}

// sum (x[i] - mu)^2
MS_INLINE double sum_sq_dev(const float* x, int64_t n, float mu) {
  return reduce_detail::blocked_sum(n, [x, mu](int64_t i) MS_INLINE_LAMBDA {
    const float d = x[i] - mu;
    return d * d;
  });
}

// Mean and sum of squared deviations from it, reading x from memory once: each block of
// kBlock values (in L1 after the first read) gets its own mean and squared deviations from
// that mean in float lanes, and the blocks are merged in double in a fixed order (Chan et
// al.'s pairwise update), so a large common offset costs no precision and the result does
// not depend on threads or alignment.
struct Moments {
  double mean, m2;  // m2 = sum (x[i] - mean)^2
};

MS_INLINE Moments moments_of(const float* x, int64_t n) {
  double mean = 0, m2 = 0;
  int64_t seen = 0;
  for (int64_t b = 0; b < n; b += reduce_detail::kBlock) {
    const int64_t nb = n - b < reduce_detail::kBlock ? n - b : reduce_detail::kBlock;
    const float* xb = x + b;
    const double mb = sum_of(xb, nb) / static_cast<double>(nb);
    const float mbf = static_cast<float>(mb);
    const double off = mb - mbf;
    const double m2b = sum_sq_dev(xb, nb, mbf) - static_cast<double>(nb) * off * off;
    if (seen == 0) {
      mean = mb;
      m2 = m2b;
    } else {
      const double total = static_cast<double>(seen + nb);
      const double delta = mb - mean;
      mean += delta * static_cast<double>(nb) / total;
      m2 += m2b + delta * delta * static_cast<double>(seen) * static_cast<double>(nb) / total;
    }
    seen += nb;
  }
  return {mean, m2};
}

// sum g[i] * (x[i] - mu)
MS_INLINE double sum_prod_dev(const float* g, const float* x, int64_t n, float mu) {
  return reduce_detail::blocked_sum(
      n, [g, x, mu](int64_t i) MS_INLINE_LAMBDA { return g[i] * (x[i] - mu); });
}

// The same sums over g masked by y > 0 (a ReLU's backward folded in): the
// arithmetic is exactly that of the unmasked sums over the masked array.
// A bitwise select (g's bits and an all-ones or all-zero mask) that the
// compiler vectorises; the result is g or +0, as y > 0 ? g : 0 gives.
MS_INLINE float relu_mask(const float* g, const float* y, int64_t i) {
  uint32_t bits;
  std::memcpy(&bits, &g[i], sizeof bits);
  bits &= y[i] > 0.0f ? 0xffffffffu : 0u;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

MS_INLINE double sum_of_masked(const float* g, const float* y, int64_t n) {
  if (n == 0) return 0;
  const float pivot = relu_mask(g, y, 0);
  return static_cast<double>(pivot) * static_cast<double>(n) +
         reduce_detail::blocked_sum(
             n, [g, y, pivot](int64_t i) MS_INLINE_LAMBDA { return relu_mask(g, y, i) - pivot; });
}

MS_INLINE double sum_prod_dev_masked(const float* g, const float* y, const float* x, int64_t n,
                                     float mu) {
  return reduce_detail::blocked_sum(
      n, [g, y, x, mu](int64_t i) MS_INLINE_LAMBDA { return relu_mask(g, y, i) * (x[i] - mu); });
}

}  // namespace modelslice
