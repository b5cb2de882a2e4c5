// exp in float for row kernels (softmax): branch-free, so a loop over a row vectorizes at
// whatever SIMD width the file is compiled for. exp(x) = 2^k exp(r) with k = round(x / ln 2)
// and |r| <= ln 2 / 2, exp(r) by its Taylor polynomial of degree 6 (relative error below
// 2e-7). Inputs below -87.3 give at most the smallest normal float (about 1e-38), not 0:
// callers that need exact zeros (masked entries) write them themselves.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace modelslice {

inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // Rounds x / ln 2 to the nearest integer by the float adder (|x / ln 2| < 2^22).
  const float shifter = 12582912.0f;  // 1.5 * 2^23
  float kf = (x * 1.44269504088896341f + shifter) - shifter;
  // r = x - k ln 2, with ln 2 in two parts so r keeps its low bits.
  float r = x - kf * 0.693145751953125f - kf * 1.42860682030941723e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace modelslice
