#include "elementwise.h"

#include "parallel.h"
#include "reduce.h"

namespace modelslice {

namespace {

// Below this many elements a second thread costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 16;

int threads_for(int64_t n) {
  int t = get_num_threads();
  return n < kParallelGrain ? 1 : t;
}

// Walks a contiguous index space over `shape`, keeping strided offsets for two
// operands. Dimension rank-1 is the innermost; the inner loop is handed to `body`.
// Merges neighbouring axes along which both operands are contiguous with each
// other, so a same-shape add walks one long inner loop instead of rows of W.
int coalesce(int rank, const int64_t* shape, const int64_t* sa, const int64_t* sb, int64_t* oshape,
             int64_t* osa, int64_t* osb) {
  int r = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;  // a unit axis contributes nothing
    if (r > 0 && osa[r - 1] == sa[d] * shape[d] && osb[r - 1] == sb[d] * shape[d]) {
      oshape[r - 1] *= shape[d];
      osa[r - 1] = sa[d];
      osb[r - 1] = sb[d];
      continue;
    }
    oshape[r] = shape[d];
    osa[r] = sa[d];
    osb[r] = sb[d];
    ++r;
  }
  return r;
}

template <typename Body>
void for_each_strided(int rank_in, const int64_t* shape_in, const int64_t* sa_in,
                      const int64_t* sb_in, Body&& body) {
  int64_t shape[kMaxDims], sa[kMaxDims], sb[kMaxDims];
  for (int d = 0; d < rank_in; ++d)
    if (shape_in[d] == 0) return;
  const int rank = coalesce(rank_in, shape_in, sa_in, sb_in, shape, sa, sb);
  if (rank == 0) {
    body(0, 0, 0, 1, 0, 0);
    return;
  }
  int64_t inner = shape[rank - 1];
  int64_t outer = 1;
  for (int d = 0; d < rank - 1; ++d) outer *= shape[d];
  if (inner == 0 || outer == 0) return;
  int64_t idx[kMaxDims] = {0};
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < outer; ++o) {
    body(o * inner, oa, ob, inner, sa[rank - 1], sb[rank - 1]);
    for (int d = rank - 2; d >= 0; --d) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < shape[d]) break;
      oa -= sa[d] * shape[d];
      ob -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

void binary_broadcast(BinaryOp op, int rank, const int64_t* shape, const float* a,
                      const int64_t* aStrides, const float* b, const int64_t* bStrides,
                      float* out) {
  for_each_strided(rank, shape, aStrides, bStrides,
                   [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t da, int64_t db) {
                     float* y = out + o;
                     const float* pa = a + ia;
                     const float* pb = b + ib;
                     if (op == BinaryOp::Add) {
                       if (da == 1 && db == 1)
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i] + pb[i];
                       else if (da == 1 && db == 0)
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i] + pb[0];
                       else
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i * da] + pb[i * db];
                     } else {
                       if (da == 1 && db == 1)
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i] * pb[i];
                       else if (da == 1 && db == 0)
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i] * pb[0];
                       else
                         for (int64_t i = 0; i < n; ++i) y[i] = pa[i * da] * pb[i * db];
                     }
                   });
}

void sum_to_strided(int rank, const int64_t* shape, const float* g, float scale, float* acc,
                    const int64_t* accStrides) {
  int64_t zero[kMaxDims] = {0};
  for_each_strided(rank, shape, accStrides, zero,
                   [&](int64_t o, int64_t ia, int64_t, int64_t n, int64_t da, int64_t) {
                     const float* pg = g + o;
                     float* pa = acc + ia;
                     if (da == 1) {
                       for (int64_t i = 0; i < n; ++i) pa[i] += scale * pg[i];
                     } else if (da == 0) {
                       float s = 0;
                       for (int64_t i = 0; i < n; ++i) s += pg[i];
                       pa[0] += scale * s;
                     } else {
                       for (int64_t i = 0; i < n; ++i) pa[i * da] += scale * pg[i];
                     }
                   });
}

void mul_grad_strided(int rank, const int64_t* shape, const float* g, const float* other,
                      const int64_t* otherStrides, float* acc, const int64_t* accStrides) {
  for_each_strided(rank, shape, accStrides, otherStrides,
                   [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t da, int64_t db) {
                     const float* pg = g + o;
                     float* pa = acc + ia;
                     const float* pb = other + ib;
                     if (da == 0) {
                       float s = 0;
                       for (int64_t i = 0; i < n; ++i) s += pg[i] * pb[i * db];
                       pa[0] += s;
                     } else {
                       for (int64_t i = 0; i < n; ++i) pa[i * da] += pg[i] * pb[i * db];
                     }
                   });
}

void relu_forward(int64_t n, const float* x, float* y) {
  parallel_run(threads_for(n), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(n, 16, t, nt, &lo, &hi);
    // NaN passes through (as in PyTorch): a ReLU must not hide a diverged activation.
    for (int64_t i = lo; i < hi; ++i) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
  });
}

void relu_backward(int64_t n, const float* x, const float* gy, float* gx) {
  parallel_run(threads_for(n), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(n, 16, t, nt, &lo, &hi);
    // A mask of the gradient's bits, not a branch or a conditional load: the loop vectorizes
    // (with random signs a branch mispredicts half the time: 18x slower).
    for (int64_t i = lo; i < hi; ++i) gx[i] += relu_mask(gy, x, i);
  });
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  parallel_run(threads_for(n), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(n, 16, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) y[i] += alpha * x[i];
  });
}

void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y, int64_t ldy) {
  parallel_run(threads_for(rows * cols), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(rows, 1, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) {
      float* row = y + i * ldy;
      for (int64_t j = 0; j < cols; ++j) row[j] += bias[j];
    }
  });
}

void column_sums(int64_t rows, int64_t cols, const float* g, int64_t ldg, float* acc) {
  // Split over columns so each output has one fixed summation order.
  parallel_run(threads_for(rows * cols), [&](int t, int nt) {
    int64_t lo, hi;
    split_range(cols, 16, t, nt, &lo, &hi);
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = g + i * ldg;
      for (int64_t j = lo; j < hi; ++j) acc[j] += row[j];
    }
  });
}

}  // namespace modelslice
