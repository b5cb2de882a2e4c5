// Standalone check of the kernel thread pool (native/parallel.cc): every share
// runs exactly once per job, for any thread count, across thousands of
// back-to-back jobs (the handoff races live there), with nested calls, with
// callers on several threads at once, after the thread count shrinks, and
// with an exception thrown on a worker.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../parallel.h"

namespace ms = modelslice;

static int failures = 0;
#define CHECK(cond, ...)                          \
  do {                                            \
    if (!(cond)) {                                \
      std::fprintf(stderr, "FAIL: " __VA_ARGS__); \
      std::fprintf(stderr, "\n");                 \
      ++failures;                                 \
    }                                             \
  } while (0)

// Runs `jobs` jobs of `threads` shares; each share adds its index + 1 to a slot.
static void run_jobs(int threads, int jobs, const char* what) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(threads));
  long long bad = 0;
  for (int j = 0; j < jobs; ++j) {
    for (auto& h : hits) h.store(0);
    int seen_nt = -1;
    ms::parallel_run(threads, [&](int t, int nt) {
      if (t == 0) seen_nt = nt;
      hits[static_cast<size_t>(t)].fetch_add(1);
    });
    if (seen_nt != threads) ++bad;
    for (auto& h : hits)
      if (h.load() != 1) ++bad;
  }
  CHECK(bad == 0, "%s: %lld shares ran other than once (threads %d, %d jobs)", what, bad, threads,
        jobs);
}

int main() {
  for (int threads : {1, 2, 3, 4, 7})
    run_jobs(threads, threads <= 2 ? 20000 : 3000, "back-to-back jobs");
  // Shrinking: workers beyond the new count must not hold up or join jobs.
  run_jobs(8, 100, "eight threads");
  run_jobs(2, 20000, "two threads after eight");

  // Nested: an inner parallel_run runs inline and still covers every share.
  std::atomic<int> inner{0};
  ms::parallel_run(4, [&](int, int) {
    ms::parallel_run(3, [&](int t, int nt) {
      if (nt == 3 && t >= 0 && t < 3) inner.fetch_add(1);
    });
  });
  CHECK(inner.load() == 12, "nested: %d inner shares, want 12", inner.load());

  // Several callers at once (as Node worker threads would be): each job is
  // complete whether it got the pool or ran inline.
  std::atomic<long long> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int j = 0; j < 5000; ++j) {
        std::atomic<int> sum{0};
        ms::parallel_run(3, [&](int t, int) { sum.fetch_add(t + 1); });
        total.fetch_add(sum.load());
      }
    });
  for (auto& t : callers) t.join();
  CHECK(total.load() == 4LL * 5000 * 6, "concurrent callers: total %lld, want %lld", total.load(),
        4LL * 5000 * 6);

  // An exception on a worker reaches the caller, and the pool still works.
  bool caught = false;
  try {
    ms::parallel_run(3, [&](int t, int) {
      if (t == 2) throw std::runtime_error("share 2 failed");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught, "an exception thrown on a worker was not rethrown to the caller");
  run_jobs(3, 1000, "after an exception");

  if (failures == 0) std::printf("pool_check: all passed\n");
  return failures == 0 ? 0 : 1;
}
