// Deterministic, vectorisable reductions. A plain `double s += x[i]` loop is a
// serial dependency chain the compiler may not reorder; here each block of
// 1024 values is summed in 16 independent float lanes (which it vectorises)
// and the blocks are combined in double. The order is fixed, so results do not
// depend on threads or alignment.
#pragma once
#include <cstdint>
#include <cstring>

namespace modelslice {

namespace reduce_detail {
constexpr int kLanes = 16;
constexpr int64_t kBlock = 1024;

template <typename Term>
inline double blocked_sum(int64_t n, Term&& term) {
  double total = 0;
  int64_t i = 0;
  while (n - i >= kLanes) {
    float lanes[kLanes] = {0};
    int64_t end = i + kBlock < n ? i + kBlock : n;
    end = i + (end - i) / kLanes * kLanes;
    for (; i < end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
    double s = 0;
    for (int j = 0; j < kLanes; ++j) s += lanes[j];
    total += s;
  }
  for (; i < n; ++i) total += term(i);
  return total;
}
}  // namespace reduce_detail

// sum x[i]. The lanes sum deviations from x[0], so a large common offset does
// not eat the float lanes' precision (the offset is added back in double).
inline double sum_of(const float* x, int64_t n) {
  if (n == 0) return 0;
  const float pivot = x[0];
  return static_cast<double>(pivot) * static_cast<double>(n) +
         reduce_detail::blocked_sum(n, [x, pivot](int64_t i) { return x[i] - pivot; });
}

// sum (x[i] - mu)^2
inline double sum_sq_dev(const float* x, int64_t n, float mu) {
  return reduce_detail::blocked_sum(n, [x, mu](int64_t i) {
    const float d = x[i] - mu;
    return d * d;
  });
}

// sum g[i] * (x[i] - mu)
inline double sum_prod_dev(const float* g, const float* x, int64_t n, float mu) {
  return reduce_detail::blocked_sum(n, [g, x, mu](int64_t i) { return g[i] * (x[i] - mu); });
}

// The same sums over g masked by y > 0 (a ReLU's backward folded in): the
// arithmetic is exactly that of the unmasked sums over the masked array.
// A bitwise select (g's bits and an all-ones or all-zero mask) that the
// compiler vectorises; the result is g or +0, as y > 0 ? g : 0 gives.
inline float relu_mask(const float* g, const float* y, int64_t i) {
  uint32_t bits;
  std::memcpy(&bits, &g[i], sizeof bits);
  bits &= y[i] > 0.0f ? 0xffffffffu : 0u;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

inline double sum_of_masked(const float* g, const float* y, int64_t n) {
  if (n == 0) return 0;
  const float pivot = relu_mask(g, y, 0);
  return static_cast<double>(pivot) * static_cast<double>(n) +
         reduce_detail::blocked_sum(
             n, [g, y, pivot](int64_t i) { return relu_mask(g, y, i) - pivot; });
}

inline double sum_prod_dev_masked(const float* g, const float* y, const float* x, int64_t n,
                                  float mu) {
  return reduce_detail::blocked_sum(
      n, [g, y, x, mu](int64_t i) { return relu_mask(g, y, i) * (x[i] - mu); });
}

}  // namespace modelslice
