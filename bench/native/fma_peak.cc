// The register-tile ceiling of each instruction set on this CPU: one thread running only a
// micro-kernel's inner loop (MR broadcasts and NV vector loads from L1, MR x NV fmas into
// register accumulators), nothing else. What the AVX2 fast paths can reach against the
// AVX-512 ones is bounded by the ratio of these figures: on the Zen 4 machine of
// bench/RESULTS.md AVX-512 tiles run about twice the AVX2 ones, so a compute-bound layer
// cannot come within 1.15x on AVX2 there.
//
//   g++ -O3 -std=c++17 bench/native/fma_peak.cc -o /tmp/fma_peak && /tmp/fma_peak
//
// No -march: each kernel carries its target, and the AVX-512 ones run only where cpuid says so.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593 (_mm512_reduce_add_ps)
#endif
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

template <int MR, int NV>
__attribute__((noinline, target("avx2,fma"))) float tile256(const float* A, const float* B,
                                                            long iters) {
  __m256 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();
  for (long k = 0; k < iters; ++k) {
    const float* a = A + (k & 255) * MR;
    const float* b = B + (k & 255) * 8 * NV;
    __m256 bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) s = _mm256_add_ps(s, acc[i][j]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0];
}

template <int MR, int NV>
__attribute__((noinline, target("avx512f"))) float tile512(const float* A, const float* B,
                                                           long iters) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (long k = 0; k < iters; ++k) {
    const float* a = A + (k & 255) * MR;
    const float* b = B + (k & 255) * 16 * NV;
    __m512 bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) s = _mm512_add_ps(s, acc[i][j]);
  return _mm512_reduce_add_ps(s);
}

volatile float sink;  // the results are used, so the loops cannot be dropped

template <typename F>
double gflops(F run, double flopsPerIter, long iters) {
  sink = run(iters / 10);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = run(iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (flopsPerIter * iters / s / 1e9 > best) best = flopsPerIter * iters / s / 1e9;
  }
  return best;
}

}  // namespace

int main() {
  float* A = static_cast<float*>(std::aligned_alloc(64, 1 << 20));
  float* B = static_cast<float*>(std::aligned_alloc(64, 1 << 20));
  for (int i = 0; i < (1 << 18); ++i) A[i] = B[i] = 1e-9f;
  const long iters = 20000000;
  std::printf("one thread, best of 3 (GFLOP/s)\n");
  std::printf("AVX2    6 x 16 (the sgemm and direct-tile shape): %6.1f\n",
              gflops([&](long n) { return tile256<6, 2>(A, B, n); }, 2.0 * 6 * 16, iters));
  std::printf("AVX2    4 x 24:                                    %6.1f\n",
              gflops([&](long n) { return tile256<4, 3>(A, B, n); }, 2.0 * 4 * 24, iters));
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    std::printf("AVX-512 8 x 48 (the 8 x 3 direct tile):            %6.1f\n",
                gflops([&](long n) { return tile512<8, 3>(A, B, n); }, 2.0 * 8 * 48, iters / 2));
    std::printf("AVX-512 6 x 64:                                    %6.1f\n",
                gflops([&](long n) { return tile512<6, 4>(A, B, n); }, 2.0 * 6 * 64, iters / 2));
  } else {
    std::printf("AVX-512: not on this CPU\n");
  }
  std::free(A);
  std::free(B);
  return 0;
}
