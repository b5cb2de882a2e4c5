// SGEMM benchmark: modelslice::sgemm vs OpenBLAS (if libopenblas.so.0 can be dlopen'ed).
// Build/run: native/test/build-and-run.sh bench [--json] [--reps N] [--threads 1,2] [--quick]
//
// Timings are best-of-N, alternating ours / OpenBLAS in the same run (the machine is
// shared and noisy: compare ratios, not absolute numbers across runs).
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../native/cpu.h"
#include "../../native/gemm.h"
#include "../../native/gemm_internal.h"
#include "../../native/parallel.h"

using namespace modelslice;

namespace {

using cblas_sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                               int, float, float*, int);
using set_threads_t = void (*)(int);
cblas_sgemm_t g_cblas = nullptr;
set_threads_t g_blas_threads = nullptr;

void load_openblas() {
  for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
    void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    g_cblas = reinterpret_cast<cblas_sgemm_t>(dlsym(h, "cblas_sgemm"));
    g_blas_threads = reinterpret_cast<set_threads_t>(dlsym(h, "openblas_set_num_threads"));
    if (g_cblas) return;
  }
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Opts {
  bool json = false, quick = false, tune = false;
  int reps = 9;
  std::vector<int> threads = {1, 2};
  double min_time = 0.02;  // seconds per timed trial
  // Pause between trials of different libraries: OpenBLAS worker threads busy-wait for a
  // while after each call (and OpenMP's for a shorter while), which would steal one of
  // the 2 cores from the other library's next trial.
  int gap_ms = 250;
  bool no_blas = false;
  std::string variants;  // default: NN,NT,TN (NN with --quick)
  // tuning overrides
  int mr = 0, nv = 0, kc = 0, mc = 0, nc = 0;
};
Opts g_opt;

struct Gemm {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  const float *A, *B;
  float* C;
};

gemm::SgemmKernel g_kernel;  // our kernel (possibly with tuning overrides)
bool g_use_public = true;

void run_ours(const Gemm& g, int threads) {
  if (g_use_public)
    sgemm(g.ta, g.tb, g.M, g.N, g.K, 1.0f, g.A, g.lda, g.B, g.ldb, 0.0f, g.C, g.ldc);
  else
    gemm::sgemm_ex(g_kernel, threads, g.ta, g.tb, g.M, g.N, g.K, 1.0f, g.A, g.lda, g.B, g.ldb, 0.0f,
                   g.C, g.ldc);
}
void run_blas(const Gemm& g) {
  g_cblas(101, g.ta ? 112 : 111, g.tb ? 112 : 111, (int)g.M, (int)g.N, (int)g.K, 1.0f, g.A,
          (int)g.lda, g.B, (int)g.ldb, 0.0f, g.C, (int)g.ldc);
}

// Seconds per call of the fastest trial.
template <typename F>
double trial(F&& f, int iters) {
  const double t0 = now();
  for (int i = 0; i < iters; ++i) f();
  return (now() - t0) / iters;
}
template <typename F>
int calibrate(F&& f) {
  f();  // warm up (page faults, thread pool, packing buffers)
  double t = trial(f, 1);
  int iters = 1;
  while (t * iters < g_opt.min_time && iters < (1 << 20)) iters *= 2;
  return iters;
}

void pause() {
  if (g_opt.gap_ms > 0 && g_cblas) usleep(static_cast<useconds_t>(g_opt.gap_ms) * 1000);
}

std::vector<float> random_matrix(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Result {
  std::string name;
  int threads;
  double ours, blas;  // GFLOP/s (blas 0 if unavailable)
};
std::vector<Result> g_results;

// Times ours vs OpenBLAS for op(A) M x K, op(B) K x N with the given leading dims.
Result bench(const char* tag, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int threads,
             int64_t lda = 0, int64_t ldb = 0) {
  if (!lda) lda = ta ? M : K;
  if (!ldb) ldb = tb ? K : N;
  const int64_t Ar = ta ? K : M, Br = tb ? N : K;
  std::vector<float> A = random_matrix(static_cast<size_t>(Ar * lda), 1),
                     B = random_matrix(static_cast<size_t>(Br * ldb), 2);
  std::vector<float> C1(static_cast<size_t>(M * N)), C2(C1.size());
  Gemm g{ta, tb, M, N, K, lda, ldb, N, A.data(), B.data(), C1.data()};
  Gemm h = g;
  h.C = C2.data();
  set_num_threads(threads);
  if (g_blas_threads) g_blas_threads(threads);
  auto ours = [&] { run_ours(g, threads); };
  auto blas = [&] { run_blas(h); };
  const int it_o = calibrate(ours);
  pause();
  const int it_b = g_cblas ? calibrate(blas) : 0;
  double best_o = 1e30, best_b = 1e30;
  for (int r = 0; r < g_opt.reps; ++r) {
    pause();
    best_o = std::min(best_o, trial(ours, it_o));
    if (g_cblas) {
      pause();
      best_b = std::min(best_b, trial(blas, it_b));
    }
  }
  const double flop = 2.0 * M * N * K;
  Result res{tag, threads, flop / best_o * 1e-9, g_cblas ? flop / best_b * 1e-9 : 0.0};
  if (g_cblas) {  // sanity: same answer
    double md = 0, mr = 0;
    for (size_t i = 0; i < C1.size(); ++i) {
      md = std::max(md, (double)std::fabs(C1[i] - C2[i]));
      mr = std::max(mr, (double)std::fabs(C2[i]));
    }
    if (md > 1e-4 * std::max(1.0, mr) * std::sqrt((double)K))
      std::printf("  !! mismatch vs OpenBLAS: %g\n", md);
  }
  if (!g_opt.json || true) {
    if (g_cblas)
      std::printf("  %-34s t=%d  ours %7.1f  openblas %7.1f  ratio %.3f\n", tag, threads, res.ours,
                  res.blas, res.ours / res.blas);
    else
      std::printf("  %-34s t=%d  ours %7.1f GFLOP/s\n", tag, threads, res.ours);
    std::fflush(stdout);
  }
  g_results.push_back(res);
  return res;
}

// Sliced (prefix of a larger weight, ld = 2048) vs dense weight of the same logical size;
// forward pass of a linear layer: x[M, 1024] * W[1024, 1024]^T.
double sliced_vs_dense(int64_t M, int threads, double* sliced_gf, double* dense_gf) {
  const int64_t n = 1024, big = 2048;
  std::vector<float> x = random_matrix(static_cast<size_t>(M * n), 3);
  std::vector<float> Wbig = random_matrix(static_cast<size_t>(big * big), 4);
  std::vector<float> Wd = random_matrix(static_cast<size_t>(n * n), 5);
  std::vector<float> C(static_cast<size_t>(M * n));
  set_num_threads(threads);
  Gemm gs{false, true, M, n, n, n, big, n, x.data(), Wbig.data(), C.data()};
  Gemm gd{false, true, M, n, n, n, n, n, x.data(), Wd.data(), C.data()};
  auto fs = [&] { run_ours(gs, threads); };
  auto fd = [&] { run_ours(gd, threads); };
  const int is = calibrate(fs), id = calibrate(fd);
  double bs = 1e30, bd = 1e30;
  for (int r = 0; r < g_opt.reps; ++r) {
    bs = std::min(bs, trial(fs, is));
    bd = std::min(bd, trial(fd, id));
  }
  const double flop = 2.0 * M * n * n;
  *sliced_gf = flop / bs * 1e-9;
  *dense_gf = flop / bd * 1e-9;
  std::printf("  sliced-vs-dense M=%-5lld t=%d  sliced %7.1f  dense %7.1f  time ratio %.3f\n",
              (long long)M, threads, *sliced_gf, *dense_gf, bs / bd);
  std::fflush(stdout);
  return bs / bd;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--json")
      g_opt.json = true;
    else if (a == "--quick")
      g_opt.quick = true;
    else if (a == "--reps")
      g_opt.reps = std::max(1, std::atoi(next()));
    else if (a == "--threads") {
      g_opt.threads.clear();
      std::string s = next();
      size_t p = 0;
      while (p < s.size()) {
        g_opt.threads.push_back(std::atoi(s.c_str() + p));
        p = s.find(',', p);
        if (p == std::string::npos) break;
        ++p;
      }
    } else if (a == "--tile") {
      g_opt.mr = std::atoi(next());
      g_opt.nv = std::atoi(next());
    } else if (a == "--kc")
      g_opt.kc = std::atoi(next());
    else if (a == "--mc")
      g_opt.mc = std::atoi(next());
    else if (a == "--nc")
      g_opt.nc = std::atoi(next());
    else if (a == "--tune")
      g_opt.tune = true;
    else if (a == "--gap-ms")
      g_opt.gap_ms = std::atoi(next());
    else if (a == "--min-time-ms")
      g_opt.min_time = std::atoi(next()) * 1e-3;
    else if (a == "--no-openblas")
      g_opt.no_blas = true;
    else if (a == "--variants")
      g_opt.variants = next();
    else {
      std::fprintf(stderr,
                   "usage: gemm_bench [--json] [--quick] [--reps N] [--threads 1,2] [--tile MR NV] "
                   "[--kc N] [--mc N] [--nc N] [--gap-ms N] [--min-time-ms N] [--no-openblas] "
                   "[--variants NN,NT,TN]\n");
      return 2;
    }
  }
  if (g_opt.variants.empty()) g_opt.variants = g_opt.quick ? "NN" : "NN,NT,TN";
  if (!g_opt.no_blas) load_openblas();
  g_kernel = gemm::kernel_for(cpu_isa());
#if defined(__x86_64__) || defined(_M_X64)
  if (g_opt.mr && cpu_isa() == CpuIsa::kAvx512) g_kernel = gemm::avx512_variant(g_opt.mr, g_opt.nv);
#endif
  if (g_opt.kc) g_kernel.kc = g_opt.kc;
  if (g_opt.mc) g_kernel.mc = g_opt.mc;
  if (g_opt.nc) g_kernel.nc = g_opt.nc;
  g_use_public = !(g_opt.mr || g_opt.kc || g_opt.mc || g_opt.nc);
  std::printf("sgemm kernel: %s (%dx%d, kc=%d mc=%d nc=%d)%s; openblas: %s\n", g_kernel.name,
              g_kernel.mr, g_kernel.nr, g_kernel.kc, g_kernel.mc, g_kernel.nc,
              g_use_public ? "" : " [tuning override]", g_cblas ? "yes" : "not found");

  struct Shape {
    int64_t M, N, K;
  };
  const Shape shapes[] = {{1024, 1024, 1024}, {64, 1024, 1024}, {4096, 64, 576}, {256, 256, 2304}};
  std::string json = "{\"kernel\":\"" + std::string(g_kernel.name) +
                     "\",\"openblas\":" + (g_cblas ? "true" : "false");
  char buf[512];
  for (int t : g_opt.threads) {
    for (int variant = 0; variant < 3; ++variant) {
      const bool ta = variant == 2, tb = variant == 1;
      const char* vname = variant == 0 ? "NN" : variant == 1 ? "NT" : "TN";
      if (g_opt.variants.find(vname) == std::string::npos) continue;
      std::printf("threads=%d %s (transA=%d transB=%d)\n", t, vname, ta, tb);
      double lo = 0, lb = 0;
      int n = 0;
      for (const Shape& s : shapes) {
        char tag[64];
        std::snprintf(tag, sizeof tag, "%s %lldx%lldx%lld", vname, (long long)s.M, (long long)s.N,
                      (long long)s.K);
        Result r = bench(tag, ta, tb, s.M, s.N, s.K, t);
        lo += std::log(r.ours);
        lb += std::log(r.blas > 0 ? r.blas : 1);
        ++n;
        std::snprintf(buf, sizeof buf, ",\"%s_t%d\":{\"ours\":%.2f,\"openblas\":%.2f}", tag, t,
                      r.ours, r.blas);
        json += buf;
      }
      const double go = std::exp(lo / n), gb = std::exp(lb / n);
      if (g_cblas)
        std::printf("  geomean %s t=%d: ours %.1f  openblas %.1f  ratio %.3f\n", vname, t, go, gb,
                    go / gb);
      else
        std::printf("  geomean %s t=%d: ours %.1f\n", vname, t, go);
      std::snprintf(buf, sizeof buf,
                    ",\"geomean_%s_t%d\":{\"ours\":%.2f,\"openblas\":%.2f,\"ratio\":%.4f}", vname,
                    t, go, gb, g_cblas ? go / gb : 0.0);
      json += buf;
    }
    if (!g_opt.quick) {
      // Batch-1 inference (matrix-vector), a small-N layer (classifier head), a large square.
      for (const Shape& s :
           {Shape{1, 1024, 1024}, Shape{1024, 10, 1024}, Shape{2048, 2048, 2048}}) {
        char tag[64];
        const bool tb = s.M == 1 || s.N == 10;
        std::snprintf(tag, sizeof tag, "%s %lldx%lldx%lld", tb ? "NT" : "NN", (long long)s.M,
                      (long long)s.N, (long long)s.K);
        Result r = bench(tag, false, tb, s.M, s.N, s.K, t);
        std::snprintf(buf, sizeof buf, ",\"%s_t%d\":{\"ours\":%.2f,\"openblas\":%.2f}", tag, t,
                      r.ours, r.blas);
        json += buf;
      }
    }
    for (int64_t M : {int64_t(1024), int64_t(256)}) {
      if (g_opt.quick && M == 256) break;
      double gs, gd;
      const double ratio = sliced_vs_dense(M, t, &gs, &gd);
      std::snprintf(
          buf, sizeof buf,
          ",\"sliced_vs_dense_M%lld_t%d\":{\"sliced\":%.2f,\"dense\":%.2f,\"time_ratio\":%.4f}",
          (long long)M, t, gs, gd, ratio);
      json += buf;
    }
  }
  json += "}";
  if (g_opt.json) std::printf("%s\n", json.c_str());
  return 0;
}
