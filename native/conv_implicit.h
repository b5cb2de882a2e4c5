// Fast convolution paths on AVX-512 or AVX2 + FMA (conv_implicit.cc): direct register tiles over a
// zero-padded copy of each image where 16-pixel vectors cover the output rows with little
// waste (rows of 12-16, 24-32, ... pixels; horizontal stride 1, or 2 for the forward and
// weight-gradient passes), an implicit GEMM (sgemm micro-kernels, activations packed
// straight from NCHW, the whole batch as one GEMM) for other stride-1 rows. Threads never
// split a sum, so results do not depend on the thread count.
//
// Each entry returns false (doing nothing) where no fast path applies (neither AVX-512 nor AVX2, a
// horizontal stride the path does not take, degenerate shapes ...); the caller then uses
// im2col.
#pragma once
#include "conv.h"

namespace modelslice {

// With t, only the direct tiles run (they apply t while copying each image into its padded
// buffer); elsewhere it returns false and the caller applies t itself.
// With st (conv.h), the direct tiles of an ungrouped convolution compute its statistics
// image by image and set *statsDone; otherwise the caller computes them. With residual
// (laid out as y), the direct tiles add it to every output as they store it and set
// *residualDone; otherwise the caller adds it.
bool conv_implicit_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                           float* y, bool accumulate = false, const InputTransform* t = nullptr,
                           const OutputStats* st = nullptr, bool* statsDone = nullptr,
                           const float* residual = nullptr, bool* residualDone = nullptr);
// Whether conv_implicit_forward (without a map) would run this shape.
bool conv_implicit_forward_runs(const ConvShape& s);
bool conv_implicit_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx,
                                  bool accumulate);
// With t, only the direct and flat tiles run (they apply t as they copy each image); elsewhere
// it returns false and the caller applies t itself.
bool conv_implicit_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw,
                                   const InputTransform* t = nullptr);

}  // namespace modelslice
