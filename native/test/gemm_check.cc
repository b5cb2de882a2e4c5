// Correctness check for modelslice::sgemm against a double-precision reference.
// Build/run: native/test/build-and-run.sh     Exit code != 0 on failure.
//
// Covers: random and edge shapes (1, primes, around MR/NR/KC multiples, a few large),
// all transposes, alpha/beta variants (beta = 0 with NaN-filled C), leading dimensions
// larger than the widths (the gaps are NaN-filled, so reading them is detected), every
// ISA path the CPU supports, bitwise equality across thread counts, canaries around C,
// and guard pages (PROT_NONE) right after each operand to catch over-reads.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../cpu.h"
#include "../gemm.h"
#include "../gemm_internal.h"

using namespace modelslice;

namespace {

int g_failures = 0;
long g_cases = 0;
std::mt19937_64 g_rng(12345);

const uint32_t kSentinelBits = 0x7fc0dead;  // a quiet NaN with a recognizable payload
float sentinel() {
  float f;
  std::memcpy(&f, &kSentinelBits, 4);
  return f;
}
bool is_sentinel(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b == kSentinelBits;
}

// A buffer whose usable region ends exactly at a PROT_NONE page (catches over-reads and
// over-writes past the end), with `pre` canary floats in front.
struct Guarded {
  size_t n = 0, pre = 0, total = 0, map_bytes = 0;
  char* map = nullptr;
  float* base = nullptr;  // first canary
  float* data = nullptr;  // n floats
  Guarded(size_t n_, size_t pre_ = 16) : n(n_), pre(pre_) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    total = n + pre;
    const size_t bytes = total * sizeof(float);
    const size_t body = (bytes + page - 1) / page * page;
    map_bytes = body + page;
    map = static_cast<char*>(
        mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (map == MAP_FAILED) {
      std::perror("mmap");
      std::exit(2);
    }
    mprotect(map + body, page, PROT_NONE);
    base = reinterpret_cast<float*>(map + body - bytes);
    data = base + pre;
    for (size_t i = 0; i < total; ++i) base[i] = sentinel();
  }
  ~Guarded() { munmap(map, map_bytes); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  bool canaries_ok() const {
    for (size_t i = 0; i < pre; ++i)
      if (!is_sentinel(base[i])) return false;
    return true;
  }
};

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t lda, ldb, ldc;
};

std::string describe(const Case& c, const char* isa, int threads) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "isa=%s threads=%d ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g lda=%lld "
                "ldb=%lld ldc=%lld",
                isa, threads, c.ta, c.tb, (long long)c.M, (long long)c.N, (long long)c.K, c.alpha,
                c.beta, (long long)c.lda, (long long)c.ldb, (long long)c.ldc);
  return buf;
}

void fail(const std::string& what) {
  if (++g_failures <= 30) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

// Storage extent of a rows x cols row-major matrix with leading dimension ld.
size_t extent(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : static_cast<size_t>((rows - 1) * ld + cols);
}

void fill_matrix(float* p, int64_t rows, int64_t cols, int64_t ld) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) p[i * ld + j] = d(g_rng);
}

void run_case(const Case& c, const std::vector<CpuIsa>& isas, bool also_public) {
  ++g_cases;
  const int64_t Ar = c.ta ? c.K : c.M, Ac = c.ta ? c.M : c.K;
  const int64_t Br = c.tb ? c.N : c.K, Bc = c.tb ? c.K : c.N;
  Guarded A(extent(Ar, Ac, c.lda)), B(extent(Br, Bc, c.ldb));
  fill_matrix(A.data, Ar, Ac, c.lda);  // gaps between rows stay NaN sentinels
  fill_matrix(B.data, Br, Bc, c.ldb);
  const size_t cext = extent(c.M, c.N, c.ldc);
  std::vector<float> C0(cext, sentinel());
  if (c.beta == 0.0f) {
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) C0[i * c.ldc + j] = std::nanf("");
  } else {
    fill_matrix(C0.data(), c.M, c.N, c.ldc);
  }

  // Double-precision reference and an error scale per element.
  std::vector<double> ref(static_cast<size_t>(c.M * c.N)), mag(ref.size());
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double s = 0, a = 0;
      for (int64_t p = 0; p < c.K; ++p) {
        const double x = c.ta ? A.data[p * c.lda + i] : A.data[i * c.lda + p];
        const double y = c.tb ? B.data[j * c.ldb + p] : B.data[p * c.ldb + j];
        s += x * y;
        a += std::fabs(x * y);
      }
      double r = c.alpha * s, m = std::fabs(c.alpha) * a;
      if (c.beta != 0.0f) {
        r += c.beta * static_cast<double>(C0[i * c.ldc + j]);
        m += std::fabs(c.beta * static_cast<double>(C0[i * c.ldc + j]));
      }
      ref[i * c.N + j] = r;
      mag[i * c.N + j] = m;
    }
  const double eps = 1.2e-7 * (c.K + 4) * 2.0;

  std::vector<float> first;  // result of the first thread count, per ISA
  auto run_one = [&](const char* isa_name, int threads, bool use_public) -> std::vector<float> {
    Guarded C(cext);
    if (cext) std::memcpy(C.data, C0.data(), cext * sizeof(float));
    if (use_public)
      sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data, c.lda, B.data, c.ldb, c.beta, C.data,
            c.ldc);
    else
      gemm::sgemm_ex(gemm::kernel_for(*isas.begin()), threads, c.ta, c.tb, c.M, c.N, c.K, c.alpha,
                     A.data, c.lda, B.data, c.ldb, c.beta, C.data, c.ldc);
    (void)isa_name;
    std::vector<float> out(C.data, C.data + cext);
    if (!C.canaries_ok()) fail("canary before C overwritten: " + describe(c, isa_name, threads));
    return out;
  };

  for (size_t ii = 0; ii < isas.size(); ++ii) {
    const gemm::SgemmKernel& kern = gemm::kernel_for(isas[ii]);
    std::vector<float> base;
    for (int threads : {1, 2, 3}) {
      Guarded C(cext);
      if (cext) std::memcpy(C.data, C0.data(), cext * sizeof(float));
      gemm::sgemm_ex(kern, threads, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data, c.lda, B.data,
                     c.ldb, c.beta, C.data, c.ldc);
      const std::string d = describe(c, kern.name, threads);
      if (!C.canaries_ok()) fail("canary before C overwritten: " + d);
      bool bad = false;
      for (int64_t i = 0; i < c.M && !bad; ++i) {
        for (int64_t j = 0; j < c.ldc && !bad; ++j) {
          const size_t idx = static_cast<size_t>(i * c.ldc + j);
          if (idx >= cext) break;
          const float v = C.data[idx];
          if (j >= c.N) {
            if (!is_sentinel(v)) {
              fail("wrote into the gap of C at (" + std::to_string(i) + "," + std::to_string(j) +
                   "): " + d);
              bad = true;
            }
            continue;
          }
          const double r = ref[i * c.N + j], err = std::fabs(v - r);
          if (!(err <= eps * mag[i * c.N + j] + 1e-30)) {
            char buf[128];
            std::snprintf(buf, sizeof buf, " at (%lld,%lld) got %.9g want %.9g", (long long)i,
                          (long long)j, v, r);
            fail("wrong value" + std::string(buf) + ": " + d);
            bad = true;
          }
        }
      }
      if (threads == 1) {
        base.assign(C.data, C.data + cext);
      } else if (cext && std::memcmp(base.data(), C.data, cext * sizeof(float)) != 0) {
        fail("thread count changes the result (1 vs " + std::to_string(threads) + "): " + d);
      }
    }
  }
  if (also_public) {
    std::vector<float> pub = run_one("public", 0, true);
    std::vector<float> direct;
    {
      Guarded C(cext);
      if (cext) std::memcpy(C.data, C0.data(), cext * sizeof(float));
      gemm::sgemm_ex(gemm::kernel_for(cpu_isa()), 1, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data,
                     c.lda, B.data, c.ldb, c.beta, C.data, c.ldc);
      direct.assign(C.data, C.data + cext);
    }
    if (cext && std::memcmp(pub.data(), direct.data(), cext * sizeof(float)) != 0)
      fail("public sgemm differs from the selected kernel: " + describe(c, cpu_isa_name(), 0));
  }
}

int64_t pick(const std::vector<int64_t>& v) { return v[g_rng() % v.size()]; }

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
  std::vector<CpuIsa> isas;
  for (int i = static_cast<int>(cpu_isa_detected()); i >= 0; --i)
    isas.push_back(static_cast<CpuIsa>(i));
  std::printf("cpu detected: %s, selected: %s, sgemm kernel: %s\n",
              cpu_isa_name(cpu_isa_detected()), cpu_isa_name(), sgemm_kernel_name());
  if (std::strcmp(sgemm_kernel_name(), cpu_isa_name()) != 0)
    fail("sgemm_kernel_name != cpu_isa_name");
  std::printf("testing kernels:");
  for (CpuIsa i : isas)
    std::printf(" %s(%dx%d)", gemm::kernel_for(i).name, gemm::kernel_for(i).mr,
                gemm::kernel_for(i).nr);
  std::printf("\n");

  // Interesting sizes: around micro-tile sizes (6, 8, 14, 16, 32, 48, 64), cache-block
  // sizes (KC = 256) and primes.
  const std::vector<int64_t> sizes = {1,   2,   3,   5,   6,   7,   8,   9,   13,  14,  15, 16, 17,
                                      23,  29,  31,  32,  33,  41,  47,  48,  49,  63,  64, 65, 97,
                                      127, 128, 129, 167, 168, 169, 255, 256, 257, 263, 300};
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const float alphas[] = {1.0f, -0.5f, 2.0f, 0.0f};
  const float betas[] = {0.0f, 1.0f, 0.5f, -1.5f};

  // Degenerate shapes.
  for (int64_t M : {0, 1, 3})
    for (int64_t N : {0, 1, 5})
      for (int64_t K : {0, 1, 4})
        for (bool ta : {false, true})
          for (bool tb : {false, true})
            for (float beta : {0.0f, 0.5f}) {
              Case c{ta, tb, M, N, K, 1.5f, beta, 0, 0, 0};
              c.lda = std::max<int64_t>(1, (ta ? M : K) + 1);
              c.ldb = std::max<int64_t>(1, (tb ? K : N) + 2);
              c.ldc = std::max<int64_t>(1, N + 3);
              run_case(c, isas, true);
            }

  const int n_random = quick ? 150 : 700;
  for (int it = 0; it < n_random; ++it) {
    Case c;
    c.ta = g_rng() & 1;
    c.tb = g_rng() & 1;
    c.M = pick(sizes);
    c.N = pick(sizes);
    c.K = pick(sizes);
    c.alpha = (it % 7 == 0) ? alphas[g_rng() % 4] : alphas[g_rng() % 3];
    c.beta = betas[g_rng() % 4];
    const int64_t pad = (g_rng() % 3 == 0) ? 0 : static_cast<int64_t>(g_rng() % 37);
    c.lda = (c.ta ? c.M : c.K) + pad;
    c.ldb = (c.tb ? c.K : c.N) + ((g_rng() & 1) ? pad : 0);
    c.ldc = c.N + ((g_rng() & 1) ? 0 : static_cast<int64_t>(g_rng() % 19));
    run_case(c, isas, it % 10 == 0);
  }

  // A few large ones (several MC / KC / NC blocks, thread splits in both directions).
  const Case large[] = {
      {false, false, 517, 300, 600, 1.0f, 0.0f, 600, 300, 300},
      {false, true, 300, 700, 531, 0.75f, 1.0f, 600, 600, 701},
      {true, false, 129, 4200, 70, 1.0f, 0.5f, 200, 4210, 4200},
      {true, true, 1000, 48, 777, -1.0f, 0.0f, 1001, 800, 64},
      {false, false, 2, 5000, 300, 1.0f, 0.0f, 300, 5000, 5000},
      {false, true, 1, 3000, 1100, 1.0f, 0.25f, 1100, 1200, 3000},
      {true, false, 3000, 1, 900, 1.0f, 0.0f, 3000, 1, 1},
      {false, false, 2500, 1, 777, 2.0f, 1.0f, 800, 5, 7},
  };
  for (const Case& c : large) run_case(c, isas, true);

  // Edge tiles round exactly like interior tiles: any sub-block (>= 2 x 2, same K) of a
  // product, computed on its own, must be bitwise equal to the same elements of the full
  // product (the element then sits at a different position relative to the tile grid). A few
  // rows (<= 8) times a transposed B are matrix-vector products, rounding as one row does (the
  // next check): sub-blocks of that form take at least 9 rows here.
  for (int it = 0; it < (quick ? 20 : 60); ++it) {
    const bool ta = g_rng() & 1, tb = g_rng() & 1;
    const int64_t minRows = !ta && tb ? 9 : 2;
    const int64_t M = minRows + g_rng() % 120, N = 2 + g_rng() % 120, K = 1 + g_rng() % 600;
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)),
        C(static_cast<size_t>(M * N));
    fill_matrix(A.data(), 1, M * K, M * K);
    fill_matrix(B.data(), 1, K * N, K * N);
    const float beta = (g_rng() & 1) ? 0.0f : 0.75f;
    fill_matrix(C.data(), M, N, N);
    const int64_t r0 = g_rng() % (M - minRows + 1), c0 = g_rng() % (N - 1);
    const int64_t m = minRows + g_rng() % (M - r0 - minRows + 1), n = 2 + g_rng() % (N - c0 - 1);
    for (CpuIsa isa : isas) {
      const gemm::SgemmKernel& kern = gemm::kernel_for(isa);
      std::vector<float> full = C, sub = C;
      gemm::sgemm_ex(kern, 2, ta, tb, M, N, K, 1.25f, A.data(), lda, B.data(), ldb, beta,
                     full.data(), N);
      const float* As = ta ? A.data() + r0 : A.data() + r0 * lda;
      const float* Bs = tb ? B.data() + c0 * ldb : B.data() + c0;
      gemm::sgemm_ex(kern, 1, ta, tb, m, n, K, 1.25f, As, lda, Bs, ldb, beta,
                     sub.data() + r0 * N + c0, N);
      for (int64_t i = 0; i < m; ++i)
        if (std::memcmp(&full[(r0 + i) * N + c0], &sub[(r0 + i) * N + c0], n * sizeof(float)) !=
            0) {
          char buf[200];
          std::snprintf(buf, sizeof buf,
                        "sub-block differs from full product: isa=%s ta=%d tb=%d M=%lld N=%lld "
                        "K=%lld block (%lld,%lld) %lldx%lld",
                        kern.name, ta, tb, (long long)M, (long long)N, (long long)K, (long long)r0,
                        (long long)c0, (long long)m, (long long)n);
          fail(buf);
          break;
        }
    }
  }

  // A few rows times a transposed B: each row bitwise equal to its one-row product.
  for (int it = 0; it < (quick ? 20 : 60); ++it) {
    const int64_t M = 2 + g_rng() % 7, N = 1 + g_rng() % 300, K = 1 + g_rng() % 600;
    const int64_t lda = K + g_rng() % 3, ldb = K + g_rng() % 3, ldc = N + g_rng() % 3;
    std::vector<float> A(static_cast<size_t>(M * lda)), B(static_cast<size_t>(N * ldb)),
        C(static_cast<size_t>(M * ldc));
    fill_matrix(A.data(), 1, M * lda, M * lda);
    fill_matrix(B.data(), 1, N * ldb, N * ldb);
    fill_matrix(C.data(), 1, M * ldc, M * ldc);
    const float beta = (g_rng() & 1) ? 0.0f : -0.5f;
    for (CpuIsa isa : isas) {
      const gemm::SgemmKernel& kern = gemm::kernel_for(isa);
      std::vector<float> whole = C, rows = C;
      gemm::sgemm_ex(kern, 2, false, true, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta,
                     whole.data(), ldc);
      for (int64_t i = 0; i < M; ++i)
        gemm::sgemm_ex(kern, 1, false, true, 1, N, K, 0.75f, A.data() + i * lda, lda, B.data(), ldb,
                       beta, rows.data() + i * ldc, ldc);
      ++g_cases;
      if (std::memcmp(whole.data(), rows.data(), whole.size() * sizeof(float)) != 0) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "few rows differ from one-row products: isa=%s M=%lld N=%lld K=%lld",
                      kern.name, (long long)M, (long long)N, (long long)K);
        fail(buf);
      }
    }
  }

  if (g_failures) {
    std::printf("gemm_check: %d FAILURES in %ld cases\n", g_failures, g_cases);
    return 1;
  }
  std::printf("gemm_check: OK (%ld cases x %zu kernels x 3 thread counts)\n", g_cases, isas.size());
  return 0;
}
