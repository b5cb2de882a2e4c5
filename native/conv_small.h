// Convolutions with few output pixels in all (batch x outH x outW small: one image's late
// 4x4 / 2x2 maps, an 8x8 map at batch 1): every output is a dot product of one weight row
// with one patch, and the cost is streaming the weight once. conv_small.cc gathers the
// patches (K = channels x kh x kw values each, contiguous, zero-padded to a multiple of 16)
// and multiplies MR weight rows, read in place from the weight prefix (no packing), with NQ
// patches in registers (AVX-512: 4 x 4 tiles of 16 lanes; AVX2 + FMA: 3 x 4 of 8), each
// sum reduced once at the end. Any stride, padding, dilation, groups; a fused input map;
// accumulate and bias as in conv2d_forward. Threads own disjoint weight rows; a sum's
// order depends only on K, so results do not depend on the thread count.
#pragma once
#include "conv.h"

namespace modelslice {

// Whether the shape takes this path: AVX-512 or AVX2 + FMA, not depthwise, few output
// pixels over the batch (at most 16; at most 128 with a weight prefix of 1 MiB or more).
bool conv_small_applies(const ConvShape& s);
// Runs the forward pass if conv_small_applies(s); returns false (doing nothing) otherwise.
bool conv_small_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                        float* y, bool accumulate, const InputTransform* t);

}  // namespace modelslice
