// Memory-safety harness for the convolution, pooling, normalization and row-wise
// kernels, meant to run under AddressSanitizer (scripts/test-asan.sh builds and
// runs it). Every operand is its own heap allocation of exactly the size the
// binding requires (a sliced weight: only up to the last element its prefix
// reads), so a read or write one element outside is reported, even for the
// smallest shapes, which the JavaScript tests keep on the V8 heap where ASan
// cannot see them. Values are only checked to be finite; their correctness
// against float64 references is the tap tests' job. Exit code != 0 on failure.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "../conv.h"
#include "../norm.h"
#include "../parallel.h"
#include "../pool.h"
#include "../rowwise.h"

using namespace modelslice;

namespace {

std::mt19937_64 g_rng(20260613);
int g_failures = 0;
long g_cases = 0;

int64_t pick(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(g_rng);
}

// Exactly n floats on the heap (std::vector allocates exactly the requested count).
std::vector<float> randn(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  std::normal_distribution<float> d;
  for (auto& x : v) x = d(g_rng);
  return v;
}

std::vector<float> zeros(int64_t n) { return std::vector<float>(static_cast<size_t>(n), 0.0f); }

// Null for an empty buffer, as a zero-length typed array may be.
float* ptr(std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }
const float* cptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

void expect_finite(const std::vector<float>& v, const char* what, const char* where) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) {
      if (g_failures < 20) std::printf("FAIL %s: %s[%zu] = %g\n", where, what, i, v[i]);
      ++g_failures;
      return;
    }
}

void conv_case(int64_t n, int64_t groups, int64_t cg, int64_t ipg, int64_t og, int64_t h, int64_t w,
               int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
               int64_t dw, bool bias) {
  ConvShape s{n, groups * cg, h, w, groups * og, kh, kw, sh, sw, ph, pw, dh, dw, groups, ipg, 0, 0};
  s.outH = conv_out_size(h, kh, sh, ph, dh);
  s.outW = conv_out_size(w, kw, sw, pw, dw);
  if (s.outH < 1 || s.outW < 1) return;
  char where[256];
  std::snprintf(where, sizeof where,
                "conv x[%lld,%lld,%lld,%lld] O %lld ipg %lld k %lldx%lld s %lldx%lld p %lldx%lld "
                "d %lldx%lld g %lld",
                (long long)n, (long long)s.inChannels, (long long)h, (long long)w,
                (long long)s.outChannels, (long long)ipg, (long long)kh, (long long)kw,
                (long long)sh, (long long)sw, (long long)ph, (long long)pw, (long long)dh,
                (long long)dw, (long long)groups);
  const int64_t taps = kh * kw;
  // The prefix the kernels may read of a full [outFull, ipg, kh, kw] weight.
  const int64_t wLen = (s.outChannels - 1) * ipg * taps + cg * taps;
  const int64_t xLen = n * s.inChannels * h * w;
  const int64_t yLen = n * s.outChannels * s.outH * s.outW;
  auto x = randn(xLen), wt = randn(wLen), b = randn(s.outChannels), y = zeros(yLen);
  // The binding calls each kernel only when it has work, and so does this harness.
  if (yLen > 0) conv2d_forward(s, cptr(x), cptr(wt), bias ? cptr(b) : nullptr, ptr(y));
  expect_finite(y, "y", where);
  auto gy = randn(yLen), gx = zeros(xLen), gw = zeros(wLen), gb = zeros(s.outChannels);
  if (yLen > 0 && xLen > 0) conv2d_backward_input(s, cptr(gy), cptr(wt), ptr(gx));
  if (yLen > 0) conv2d_backward_weight(s, cptr(gy), cptr(x), ptr(gw));
  conv2d_backward_bias(s, cptr(gy), ptr(gb));
  expect_finite(gx, "gx", where);
  expect_finite(gw, "gw", where);
  expect_finite(gb, "gb", where);
  ++g_cases;
}

void pool_case(int64_t planes, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
               int64_t ph, int64_t pw) {
  PoolShape s{planes, h, w, kh, kw, sh, sw, ph, pw, 0, 0};
  s.outH = conv_out_size(h, kh, sh, ph, 1);
  s.outW = conv_out_size(w, kw, sw, pw, 1);
  if (s.outH < 1 || s.outW < 1) return;
  const int64_t xLen = planes * h * w, yLen = planes * s.outH * s.outW;
  auto x = randn(xLen), gy = randn(yLen);
  for (int kind = 0; kind < 2; ++kind) {
    auto y = zeros(yLen), gx = zeros(xLen);
    if (kind == 0) {
      max_pool_forward(s, cptr(x), ptr(y));
      max_pool_backward(s, cptr(x), cptr(gy), ptr(gx));
    } else {
      avg_pool_forward(s, cptr(x), ptr(y));
      avg_pool_backward(s, cptr(gy), ptr(gx));
      // Max pooling of an all-padding window is -inf by design; average pooling is finite.
      expect_finite(y, "avg y", "pool");
    }
    expect_finite(gx, "gx", "pool");
  }
  const int64_t plane = h * w;
  auto m = zeros(planes), gpx = zeros(xLen);
  global_avg_pool_forward(planes, plane, cptr(x), ptr(m));
  global_avg_pool_backward(planes, plane, cptr(m), ptr(gpx));
  expect_finite(gpx, "global gx", "pool");
  ++g_cases;
}

void norm_case(int64_t n, int64_t groups, int64_t cpg, int64_t sp, bool affine, bool relu) {
  const int64_t c = groups * cpg, total = n * c * sp;
  auto x = randn(total), gamma = randn(c), beta = randn(c), gy = randn(total);
  auto y = zeros(total), mean = zeros(n * groups), rstd = zeros(n * groups);
  if (total > 0) {
    group_norm_forward(n, c, sp, groups, cptr(x), affine ? cptr(gamma) : nullptr,
                       affine ? cptr(beta) : nullptr, 1e-5f, ptr(y), ptr(mean), ptr(rstd), relu);
    auto gx = zeros(total), gg = zeros(c), gb = zeros(c);
    group_norm_backward(n, c, sp, groups, cptr(x), cptr(gy), affine ? cptr(gamma) : nullptr,
                        cptr(mean), cptr(rstd), ptr(gx), affine ? ptr(gg) : nullptr,
                        affine ? ptr(gb) : nullptr, relu ? cptr(y) : nullptr);
    expect_finite(y, "gn y", "norm");
    expect_finite(gx, "gn gx", "norm");
  }
  if (n * sp > 0) {
    auto cm = zeros(c), cv = zeros(c), scale = randn(c), shift = randn(c), ya = zeros(total);
    channel_moments(n, c, sp, cptr(x), ptr(cm), ptr(cv));
    channel_affine(n, c, sp, cptr(x), cptr(scale), cptr(shift), ptr(ya));
    auto r = zeros(c);
    for (int64_t i = 0; i < c; ++i) r[i] = 1.0f / std::sqrt(cv[i] + 1e-5f);
    for (int training = 0; training < 2; ++training) {
      auto gx = zeros(total), gg = zeros(c), gb = zeros(c);
      batch_norm_backward(n, c, sp, cptr(x), cptr(gy), cptr(cm), cptr(r),
                          affine ? cptr(gamma) : nullptr, training == 1, ptr(gx), ptr(gg), ptr(gb));
      expect_finite(gx, "bn gx", "norm");
    }
    expect_finite(ya, "affine y", "norm");
  }
  ++g_cases;
}

void softmax_case(int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  if (total == 0) return;
  auto x = randn(total), gy = randn(total);
  for (int log = 0; log < 2; ++log) {
    auto y = zeros(total), gx = zeros(total);
    softmax_rows(rows, cols, cptr(x), ptr(y), log == 1);
    softmax_rows_backward(rows, cols, cptr(y), cptr(gy), ptr(gx), log == 1);
    expect_finite(y, "softmax y", "softmax");
    expect_finite(gx, "softmax gx", "softmax");
  }
  ++g_cases;
}

void run_all() {
  // Shapes that take the fast paths: 1x1, 3x3 padded, strided, depthwise, a 7x7 stem, wide
  // channel counts, and sliced weights (fewer filters and input channels than stored).
  conv_case(2, 1, 64, 64, 64, 8, 8, 1, 1, 1, 1, 0, 0, 1, 1, true);
  conv_case(2, 1, 48, 64, 40, 8, 8, 1, 1, 1, 1, 0, 0, 1, 1, false);
  conv_case(1, 1, 32, 32, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, true);
  conv_case(2, 1, 24, 32, 20, 15, 13, 3, 3, 1, 1, 1, 1, 1, 1, false);
  conv_case(2, 1, 16, 16, 32, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, false);
  conv_case(2, 16, 1, 1, 1, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1, false);
  conv_case(1, 12, 1, 1, 1, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, true);
  conv_case(1, 1, 3, 3, 16, 32, 32, 7, 7, 2, 2, 3, 3, 1, 1, false);
  conv_case(2, 1, 64, 64, 128, 4, 4, 1, 1, 2, 2, 0, 0, 1, 1, false);
  conv_case(1, 2, 8, 12, 8, 10, 10, 3, 3, 1, 1, 2, 2, 2, 2, true);
  for (int i = 0; i < 300; ++i) {
    const int64_t groups = pick(1, 3), cg = pick(1, 6), og = pick(1, 6), kh = pick(1, 4),
                  kw = pick(1, 4), dh = pick(1, 2), dw = pick(1, 2);
    conv_case(pick(0, 3), groups, cg, cg + pick(0, 3), og, pick(1, 12), pick(1, 12), kh, kw,
              pick(1, 3), pick(1, 3), pick(0, 2), pick(0, 2), dh, dw, pick(0, 1) == 1);
  }
  for (int i = 0; i < 200; ++i) {
    const int64_t kh = pick(1, 5), kw = pick(1, 5);
    pool_case(pick(0, 6), pick(1, 12), pick(1, 12), kh, kw, pick(1, 3), pick(1, 3), pick(0, kh / 2),
              pick(0, kw / 2));
  }
  pool_case(64, 32, 32, 2, 2, 2, 2, 0, 0);
  pool_case(16, 17, 17, 3, 3, 2, 2, 1, 1);
  for (int i = 0; i < 200; ++i)
    norm_case(pick(0, 4), pick(1, 4), pick(1, 5), pick(0, 20), pick(0, 1) == 1, pick(0, 1) == 1);
  norm_case(4, 8, 8, 256, true, true);
  for (int i = 0; i < 100; ++i) softmax_case(pick(0, 9), pick(1, 40));
  softmax_case(64, 1000);
  softmax_case(1, 1);
}

}  // namespace

int main() {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    run_all();
  }
  if (g_failures > 0) {
    std::printf("kernels_check: %d failure(s) in %ld cases\n", g_failures, g_cases);
    return 1;
  }
  std::printf("kernels_check: OK (%ld cases over 1, 2 and 3 threads)\n", g_cases);
  return 0;
}
