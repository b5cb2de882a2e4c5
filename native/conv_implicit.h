// Implicit-GEMM convolution: the packed GEMM of gemm.cc with its B operand packed
// straight from NCHW activations (im2col indexing, never materialised) and its C
// tiles stored straight into NCHW outputs, over the whole batch at once.
//
// Forward and backward-input are one GEMM each with M = channels produced, K = taps
// (channels read * kh * kw) and N = batch * output pixels; threads own disjoint runs of
// N (output pixels), never a part of K. Backward-weight is a GEMM whose reduction runs
// over batch * pixels: threads own disjoint tiles of the weight gradient and each tile
// sums its pixels in one fixed order. Results therefore do not depend on the thread count.
//
// Each entry returns false (doing nothing) where the fast path does not apply (no
// AVX-512, a horizontal stride other than 1 ...); the caller then uses the im2col path.
#pragma once
#include "conv.h"

namespace modelslice {

bool conv_implicit_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                           float* y);
bool conv_implicit_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx);
bool conv_implicit_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw);

}  // namespace modelslice
