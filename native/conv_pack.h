// Packing GEMM panels straight from NCHW activations (see conv_implicit.h); AVX-512
// (conv_pack_avx512.cc) and AVX2 (conv_avx2.cc) versions, the same contract.
//
// A "patch matrix" is the im2col matrix of one group of a batch, never stored: row
// k = (c * kh + i) * kw + j (a channel and a kernel tap), column q = (n * outH + oh) *
// outW + ow (an image and an output pixel), value
//   src[n * imageStride + c * channelStride + ih * W + iw],
//   ih = oh * strideH - padH + i * dilationH, iw = ow * strideW - padW + j * dilationW,
// and 0 where (ih, iw) falls outside the H x W image.
#pragma once
#include <cstdint>

namespace modelslice {
namespace conv {

struct PatchSource {
  const float* data;  // first channel of the group, image 0
  int64_t imageStride, channelStride, H, W;
  int64_t kh, kw, strideH, strideW, padH, padW, dilationH, dilationW;
  int64_t outH, outW;
};

// A run of panel columns inside one output row of one image: panel columns
// [t0, t0 + len) are pixels (oh, ow0 .. ow0 + len) of image n.
struct Segment {
  int32_t t0, len;
  int64_t n, oh, ow0;
};

// Splits the panel columns [q0, q0 + count) into segments; returns how many (<= count).
int make_segments(const PatchSource& s, int64_t q0, int count, Segment* out);

// Column panel for the forward GEMM ("B" operand, NR columns, kc rows from k0):
// dst[kk * NR + t] = patch(k0 + kk, column of panel slot t); slots >= filled are zero.
// Requires strideW == 1. NR <= 64.
void pack_patch_columns_avx512(const PatchSource& s, const Segment* seg, int nseg, int filled,
                               int64_t k0, int64_t kc, int NR, float* dst);
void pack_patch_columns_avx2(const PatchSource& s, const Segment* seg, int nseg, int filled,
                             int64_t k0, int64_t kc, int NR, float* dst);

// Transposed panel for the weight gradient: rows k0 .. k0 + rows of the patch matrix
// (zero beyond `rows`, up to NR) over the columns of the segments (their total length is
// the depth): dst[l * NR + r] = patch(k0 + r, l-th column). Requires strideW == 1.
// NR is a multiple of 16.
void pack_patch_rows_t_avx512(const PatchSource& s, const Segment* seg, int nseg, int64_t k0,
                              int rows, int NR, float* dst);
void pack_patch_rows_t_avx2(const PatchSource& s, const Segment* seg, int nseg, int64_t k0,
                            int rows, int NR, float* dst);

}  // namespace conv
}  // namespace modelslice
