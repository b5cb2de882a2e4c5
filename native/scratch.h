// Per-thread scratch memory for kernels: 64-byte aligned, grow-only, reused
// across calls (one object per thread and purpose, freed at thread exit), so
// packing and column buffers cost no allocation after the first call of a shape.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace modelslice {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(raw_); }

  // At least `floats` floats, 64-byte aligned; contents are unspecified.
  float* get(size_t floats) {
    if (floats > cap_) {
      std::free(raw_);
      raw_ = nullptr;
      cap_ = 0;
      const size_t want = floats + floats / 4;  // headroom against repeated growth
      raw_ = std::malloc(want * sizeof(float) + 64);
      if (!raw_) throw std::bad_alloc();
      cap_ = want;
    }
    const uintptr_t p = reinterpret_cast<uintptr_t>(raw_);
    return reinterpret_cast<float*>((p + 63) & ~static_cast<uintptr_t>(63));
  }

 private:
  void* raw_ = nullptr;
  size_t cap_ = 0;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace modelslice
