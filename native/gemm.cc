// Packed, cache-blocked SGEMM (GotoBLAS/BLIS structure).
//
//   for jc in N by NC            (B block: kc x nc, packed into NR-column micro-panels)
//     for pc in K by KC          (summation blocks, always in order 0, KC, 2KC, ...)
//       pack B[pc:pc+kc, jc:jc+nc]
//       for ic in M by MC        (A block: mc x kc, packed into MR-row micro-panels)
//         pack A[ic:ic+mc, pc:pc+kc]
//         for jr in nc by NR, ir in mc by MR: micro-kernel (MR x NR register tile)
//
// Threads own disjoint rectangles of C (a grid over rows and columns, never over K),
// and pack their own A and B blocks, so no synchronization is needed and every C
// element is summed in exactly the same order whatever the thread count.
//
// Every C element gets the same arithmetic wherever it sits: acc = fma chain over the k
// of one depth block (in order), then c = alpha * acc (+ beta * c); depth blocks depend
// only on K. (Matrix-vector products, below, round differently: one row, one column, or a
// few rows times a transposed B, each of whose rows rounds as its one-row product.) Row-edge tiles
// use the micro-kernel instantiated for fewer rows (identical per-element code); column-edge tiles
// are computed at full width into a stack tile (holding a copy of C when beta != 0) and the valid
// part is copied out. A narrower register tile chosen for small N uses the same arithmetic and the
// same depth blocks.
//
// M == 1 or N == 1 go to matrix-vector routines (no packing), and so do a few rows times a
// transposed B (one matrix-vector product per row, B in L1-sized blocks); K == 0 or alpha == 0
// only scale C (BLAS semantics: beta == 0 writes zeros without reading C).
#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "cpu.h"
#include "gemm_internal.h"
#include "parallel.h"
#include "scratch.h"

namespace modelslice {
namespace gemm {

const SgemmKernel& kernel_for(CpuIsa isa) {
#ifdef MODELSLICE_X86
  if (isa == CpuIsa::kAvx512) return kernel_avx512();
  if (isa == CpuIsa::kAvx2) return kernel_avx2();
#endif
  (void)isa;
  return kernel_generic();
}

namespace {

thread_local Scratch tl_pack_a, tl_pack_b, tl_vec;

struct Problem {
  bool transA, transB;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

// Depth of a summation block: K split into equal-ish blocks of at most kern.kc
// (depends only on K, never on threads).
inline int64_t depth_block(const SgemmKernel& kern, int64_t K) {
  const int64_t blocks = ceil_div(K, kern.kc);
  return ceil_div(K, blocks);
}

// C block rows [m0, m1) x cols [n0, n1) on the calling thread.
// kcb: depth of the summation blocks (shared by a kernel and its narrow variant, so that
// both round identically).
void gemm_region(const SgemmKernel& kern, int64_t kcb, const Problem& p, int64_t m0, int64_t m1,
                 int64_t n0, int64_t n1) {
  const int MR = kern.mr, NR = kern.nr;
  const int64_t MCb = kern.mc, NCb = kern.nc;
  const int64_t mspan = std::min<int64_t>(MCb, m1 - m0), nspan = std::min<int64_t>(NCb, n1 - n0);
  float* bufA = tl_pack_a.get(static_cast<size_t>(ceil_div(mspan, MR) * MR * kcb));
  float* bufB = tl_pack_b.get(static_cast<size_t>(ceil_div(nspan, NR) * NR * kcb));
  alignas(64) float tile[kMaxMR * kMaxNR] = {};

  for (int64_t jc = n0; jc < n1; jc += NCb) {
    const int64_t nc = std::min(NCb, n1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += kcb) {
      const int64_t kc = std::min(kcb, p.K - pc);
      const float beta = pc == 0 ? p.beta : 1.0f;
      if (p.transB)
        kern.pack_b(p.B + jc * p.ldb + pc, p.ldb, true, nc, kc, bufB);
      else
        kern.pack_b(p.B + pc * p.ldb + jc, p.ldb, false, nc, kc, bufB);
      for (int64_t ic = m0; ic < m1; ic += MCb) {
        const int64_t mc = std::min(MCb, m1 - ic);
        if (p.transA)
          kern.pack_a(p.A + pc * p.lda + ic, p.lda, false, mc, kc, bufA);
        else
          kern.pack_a(p.A + ic * p.lda + pc, p.lda, true, mc, kc, bufA);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min<int64_t>(NR, nc - jr);
          const float* Bp = bufB + (jr / NR) * NR * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mc - ir);
            const float* Ap = bufA + (ir / MR) * MR * kc;
            float* Cp = p.C + (ic + ir) * p.ldc + (jc + jr);
            if (nr == NR) {
              kern.micro_rows[mr](kc, Ap, Bp, Cp, p.ldc, p.alpha, beta);
            } else {
              if (beta != 0.0f) {
                for (int64_t i = 0; i < mr; ++i)
                  for (int64_t j = 0; j < nr; ++j) tile[i * NR + j] = Cp[i * p.ldc + j];
              }
              kern.micro_rows[mr](kc, Ap, Bp, tile, NR, p.alpha, beta);
              for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j) Cp[i * p.ldc + j] = tile[i * NR + j];
            }
          }
        }
      }
    }
  }
}

// C = beta * C (beta == 0: zeros, C not read).
void scale_c(const Problem& p, int threads) {
  parallel_run(threads, [&](int t, int nt) {
    int64_t r0, r1;
    split_range(p.M, 1, t, nt, &r0, &r1);
    for (int64_t i = r0; i < r1; ++i) {
      float* c = p.C + i * p.ldc;
      if (p.beta == 0.0f)
        for (int64_t j = 0; j < p.N; ++j) c[j] = 0.0f;
      else if (p.beta != 1.0f)
        for (int64_t j = 0; j < p.N; ++j) c[j] *= p.beta;
    }
  });
}

// M == 1 or N == 1.
void gemv(const SgemmKernel& kern, const Problem& p, int threads) {
  // The vector operand x (length K) and the matrix S in either "dot" (rows contiguous in k)
  // or "axpy" (k-rows contiguous in the output index) layout.
  const float* x;
  int64_t incx;
  const float* S;
  int64_t ld, outputs, incy;
  bool dot;
  if (p.M == 1) {  // C[0, j] = sum_k op(A)[0, k] op(B)[k, j]
    x = p.A;
    incx = p.transA ? p.lda : 1;
    S = p.B;
    ld = p.ldb;
    dot = p.transB;
    outputs = p.N;
    incy = 1;
  } else {  // N == 1: C[i, 0] = sum_k op(A)[i, k] op(B)[k, 0]
    x = p.B;
    incx = p.transB ? 1 : p.ldb;
    S = p.A;
    ld = p.lda;
    dot = !p.transA;
    outputs = p.M;
    incy = p.ldc;
  }
  const int64_t work = outputs * p.K;
  int nt = std::max<int64_t>(1, std::min<int64_t>(threads, work / (1 << 17)));
  const int64_t align = dot ? 4 : 128;
  nt = static_cast<int>(std::min<int64_t>(nt, ceil_div(outputs, align)));
  parallel_run(nt, [&](int t, int n) {
    const float* xv = x;
    if (incx != 1) {
      float* buf = tl_vec.get(static_cast<size_t>(p.K));
      for (int64_t k = 0; k < p.K; ++k) buf[k] = x[k * incx];
      xv = buf;
    }
    int64_t o0, o1;
    split_range(outputs, align, t, n, &o0, &o1);
    if (o1 <= o0) return;
    if (dot)
      kern.gemv_dot(o1 - o0, p.K, p.alpha, S + o0 * ld, ld, xv, p.beta, p.C + o0 * incy, incy);
    else
      kern.gemv_axpy(o1 - o0, p.K, p.alpha, S + o0, ld, xv, p.beta, p.C + o0 * incy, incy);
  });
}

// 2 <= M <= kFewRows, A's rows contiguous, B's rows contiguous in k (y = x W^T for a few rows x,
// a decode step's tokens): each row is a matrix-vector product, run over a block of B's rows at
// a time so that B streams from memory once and the other rows read it from L1. Packing B, as
// the blocked path does, would read it twice for a few rows of work; and every row gets the
// arithmetic of M == 1, so a step of a few tokens computes each one as a step of one would.
constexpr int64_t kFewRows = 8;

void gemv_rows(const SgemmKernel& kern, const Problem& p, int threads) {
  const int64_t work = p.M * p.N * p.K;
  int nt = std::max<int64_t>(1, std::min<int64_t>(threads, work / (1 << 17)));
  nt = static_cast<int>(std::min<int64_t>(nt, ceil_div(p.N, 4)));
  // Rows of B per block: about 32 KiB, a multiple of 4 (gemv_dot's tile).
  const int64_t block = std::max<int64_t>(4, (8192 / std::max<int64_t>(p.K, 1)) & ~int64_t{3});
  parallel_run(nt, [&](int t, int n) {
    int64_t o0, o1;
    split_range(p.N, 4, t, n, &o0, &o1);
    for (int64_t b0 = o0; b0 < o1; b0 += block) {
      const int64_t rows = std::min(o1, b0 + block) - b0;
      const float* S = p.B + b0 * p.ldb;
      int64_t i = 0;
      if (kern.gemv_dot2 != nullptr)
        for (; i + 2 <= p.M; i += 2)
          kern.gemv_dot2(rows, p.K, p.alpha, S, p.ldb, p.A + i * p.lda, p.A + (i + 1) * p.lda,
                         p.beta, p.C + i * p.ldc + b0, p.C + (i + 1) * p.ldc + b0);
      for (; i < p.M; ++i)
        kern.gemv_dot(rows, p.K, p.alpha, S, p.ldb, p.A + i * p.lda, p.beta, p.C + i * p.ldc + b0,
                      1);
    }
  });
}

}  // namespace

void sgemm_ex(const SgemmKernel& kern0, int threads, bool transA, bool transB, int64_t M, int64_t N,
              int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
              float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (threads <= 0) threads = get_num_threads();
  const Problem p{transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  const double macs = static_cast<double>(M) * N * std::max<int64_t>(K, 1);

  if (K <= 0 || alpha == 0.0f) {
    scale_c(p, macs >= (1 << 18) ? threads : 1);
    return;
  }
  if (M == 1 || N == 1) {
    gemv(kern0, p, threads);
    return;
  }
  if (M <= kFewRows && !transA && transB) {
    gemv_rows(kern0, p, threads);
    return;
  }

  // Small N: a narrower register tile wastes less work on padding columns.
  const SgemmKernel& kern = kern0.narrow && N <= kern0.narrow_max_n ? *kern0.narrow : kern0;
  const int64_t kcb = depth_block(kern0, K);

  // Thread grid tm x tn over C: choose the factorization with the least estimated cost
  // (padded micro-tile work plus the packing each thread does on its own).
  const int MR = kern.mr, NR = kern.nr;
  int nt = static_cast<int>(std::min<double>(threads, macs / (1 << 18)));
  nt = std::max(nt, 1);
  int tm = 1, tn = 1;
  if (nt > 1) {
    double best = 0;
    for (int a = 1; a <= nt; ++a) {
      if (nt % a) continue;
      const int b = nt / a;
      const int64_t mt = ceil_div(ceil_div(M, MR), a) * MR,
                    ntile = ceil_div(ceil_div(N, NR), b) * NR;
      if (ceil_div(M, MR) < a || ceil_div(N, NR) < b) continue;
      const double compute = static_cast<double>(mt) * ntile * K;
      const double packB = static_cast<double>(ntile) * K;
      const double packA = static_cast<double>(mt) * K * ceil_div(ntile, kern.nc);
      const double cost = compute + 8.0 * (packA + packB);
      if (tm * tn == 1 || cost < best) {
        best = cost;
        tm = a;
        tn = b;
      }
    }
  }
  if (tm * tn == 1) {
    gemm_region(kern, kcb, p, 0, M, 0, N);
    return;
  }
  parallel_run(tm * tn, [&](int t, int n) {
    if (n != tm * tn) {  // fewer threads granted than asked: fall back to rows only
      int64_t m0, m1;
      split_range(M, MR, t, n, &m0, &m1);
      if (m0 < m1) gemm_region(kern, kcb, p, m0, m1, 0, N);
      return;
    }
    int64_t m0, m1, n0, n1;
    split_range(M, MR, t / tn, tm, &m0, &m1);
    split_range(N, NR, t % tn, tn, &n0, &n1);
    if (m0 < m1 && n0 < n1) gemm_region(kern, kcb, p, m0, m1, n0, n1);
  });
}

}  // namespace gemm

namespace {
const gemm::SgemmKernel& active_kernel() {
  static const gemm::SgemmKernel& k = gemm::kernel_for(cpu_isa());
  return k;
}
}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm::sgemm_ex(active_kernel(), 0, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_threads(int threads, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                   float beta, float* C, int64_t ldc) {
  gemm::sgemm_ex(active_kernel(), threads, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C,
                 ldc);
}

const char* sgemm_kernel_name() { return active_kernel().name; }

}  // namespace modelslice
