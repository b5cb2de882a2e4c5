#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fast_exp.h"
#include "gemm.h"
#include "parallel.h"

namespace modelslice {

namespace {

// Queries are taken in blocks of this many rows: a causal block's products stop at the last
// key its last query sees, so the masked upper triangle is mostly not computed.
constexpr int64_t kRowBlock = 32;

// Keys query i may see.
inline int64_t visible(int64_t i, int64_t Tq, int64_t Tk, bool causal) {
  return causal ? i + 1 + Tk - Tq : Tk;
}

// Softmax of row x[0, n) into y, zeros in y[n, cols).
void softmax_row(const float* x, float* y, int64_t n, int64_t cols) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  if (std::isinf(m) && m < 0) m = 0;
  for (int64_t j = 0; j < n; ++j) y[j] = exp_approx(x[j] - m);
  float lanes[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += y[j + l];
  double sum = 0;
  for (int l = 0; l < 16; ++l) sum += lanes[l];
  for (; j < n; ++j) sum += y[j];
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t c = 0; c < n; ++c) y[c] *= inv;
  for (int64_t c = n; c < cols; ++c) y[c] = 0;
}

// Runs fn(b, h, scratch) for every (sequence b, head h), split over threads by pair (so each
// pair's sums are one thread's, whatever the count); scratch holds kRowBlock x Tk floats.
template <typename F>
void for_each_pair(int64_t batch, int64_t heads, int64_t Tq, int64_t Tk, int64_t d, F&& fn) {
  const int64_t pairs = batch * heads;
  const int threads = pairs * Tq * Tk * d < (1 << 16) ? 1 : get_num_threads();
  parallel_run(threads, [&](int t, int nt) {
    int64_t lo, hi;
    split_range(pairs, 1, t, nt, &lo, &hi);
    std::vector<float> scratch(static_cast<size_t>(kRowBlock * Tk));
    for (int64_t pair = lo; pair < hi; ++pair) fn(pair / heads, pair % heads, scratch.data());
  });
}

}  // namespace

void attention_forward(int64_t batch, int64_t heads, int64_t Tq, int64_t Tk, int64_t d, float scale,
                       bool causal, const float* q, const float* k, const float* v, float* probs,
                       float* out) {
  const int64_t width = heads * d;
  for_each_pair(batch, heads, Tq, Tk, d, [&](int64_t b, int64_t h, float* scores) {
    const float* qb = q + b * Tq * width + h * d;
    const float* kb = k + b * Tk * width + h * d;
    const float* vb = v + b * Tk * width + h * d;
    float* ob = out + b * Tq * width + h * d;
    float* pb = probs + (b * heads + h) * Tq * Tk;
    for (int64_t r0 = 0; r0 < Tq; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, Tq - r0);
      const int64_t n = visible(r0 + rows - 1, Tq, Tk, causal);
      sgemm_threads(1, false, true, rows, n, d, scale, qb + r0 * width, width, kb, width, 0.0f,
                    scores, n);
      for (int64_t i = 0; i < rows; ++i)
        softmax_row(scores + i * n, pb + (r0 + i) * Tk, visible(r0 + i, Tq, Tk, causal), Tk);
      sgemm_threads(1, false, false, rows, d, n, 1.0f, pb + r0 * Tk, Tk, vb, width, 0.0f,
                    ob + r0 * width, width);
    }
  });
}

void attention_backward(int64_t batch, int64_t heads, int64_t Tq, int64_t Tk, int64_t d,
                        float scale, bool causal, const float* q, const float* k, const float* v,
                        const float* probs, const float* gout, float* gq, float* gk, float* gv) {
  const int64_t width = heads * d;
  for_each_pair(batch, heads, Tq, Tk, d, [&](int64_t b, int64_t h, float* ds) {
    const int64_t qo = b * Tq * width + h * d, ko = b * Tk * width + h * d;
    const float* pb = probs + (b * heads + h) * Tq * Tk;
    for (int64_t r0 = 0; r0 < Tq; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, Tq - r0);
      const int64_t n = visible(r0 + rows - 1, Tq, Tk, causal);
      const float* p = pb + r0 * Tk;
      const float* g = gout + qo + r0 * width;
      // dV[0, n) += P^T dO
      if (gv != nullptr)
        sgemm_threads(1, true, false, n, d, rows, 1.0f, p, Tk, g, width, 1.0f, gv + ko, width);
      if (gq == nullptr && gk == nullptr) continue;
      // dP = dO V^T, then dS = P * (dP - sum_j dP P) row by row (zero where P is).
      sgemm_threads(1, false, true, rows, n, d, 1.0f, g, width, v + ko, width, 0.0f, ds, n);
      for (int64_t i = 0; i < rows; ++i) {
        const float* pr = p + i * Tk;
        float* dr = ds + i * n;
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += static_cast<double>(dr[j]) * pr[j];
        const float sf = static_cast<float>(s);
        for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - sf);
      }
      // dQ += scale dS K, dK[0, n) += scale dS^T Q
      if (gq != nullptr)
        sgemm_threads(1, false, false, rows, d, n, scale, ds, n, k + ko, width, 1.0f,
                      gq + qo + r0 * width, width);
      if (gk != nullptr)
        sgemm_threads(1, true, false, n, d, rows, scale, ds, n, q + qo + r0 * width, width, 1.0f,
                      gk + ko, width);
    }
  });
}

}  // namespace modelslice
