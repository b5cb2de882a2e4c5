#include "parallel.h"

#include <cstdlib>
#include <thread>

namespace modelslice {

namespace {
int default_threads() {
  if (const char* env = std::getenv("MODELSLICE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}
int g_threads = default_threads();
}  // namespace

int get_num_threads() { return g_threads; }

void set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }

}  // namespace modelslice
