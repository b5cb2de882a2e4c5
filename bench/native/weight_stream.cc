// The memory floor of a batch-1 pass: the time to read a model's weights once, on two
// threads, from memory (the caches flushed by reading a larger buffer first). A pass that
// reads every weight cannot beat it; bench/RESULTS.md compares VGG-13 at batch 1 with it.
//
//   g++ -O3 -std=c++17 -mavx2 -pthread bench/native/weight_stream.cc -o /tmp/weight_stream
//   /tmp/weight_stream 9416010 5299450 2357930 591450   # VGG-13's parameters at r = 1 .. 0.25
//
// Best of 10 reads of each size.
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

float sum_range(const float* a, size_t lo, size_t hi) {
  __m256 acc = _mm256_setzero_ps();
  for (size_t i = lo; i + 8 <= hi; i += 8) acc = _mm256_add_ps(acc, _mm256_load_ps(a + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  return lanes[0] + lanes[7];
}

}  // namespace

int main(int argc, char** argv) {
  const size_t flushFloats = size_t{64} << 20;  // 256 MB: far beyond any last-level cache
  float* flush = static_cast<float*>(std::aligned_alloc(64, flushFloats * 4));
  for (size_t i = 0; i < flushFloats; i++) flush[i] = 1.0f;
  for (int arg = 1; arg < argc; arg++) {
    const size_t n = (std::strtoull(argv[arg], nullptr, 10) + 15) / 16 * 16;
    float* a = static_cast<float*>(std::aligned_alloc(64, n * 4));
    for (size_t i = 0; i < n; i++) a[i] = 1.0f;
    double best = 1e30;
    float sink = 0.0f;
    for (int rep = 0; rep < 10; rep++) {
      sink += sum_range(flush, 0, flushFloats);
      float half = 0.0f;
      const auto t0 = std::chrono::steady_clock::now();
      std::thread other([&] { half = sum_range(a, n / 2, n); });
      sink += sum_range(a, 0, n / 2);
      other.join();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      sink += half;
      if (ms < best) best = ms;
    }
    std::printf("%zu floats (%.1f MB): %.3f ms, %.1f GB/s\n", n, n * 4 / 1e6, best,
                n * 4 / best / 1e6);
    std::free(a);
    if (sink == 12345.0f) std::puts("");
  }
  std::free(flush);
}
