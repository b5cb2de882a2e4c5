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

// What both ISAs' pack_patch_rows_t share: per panel row r (patch row k0 + r, at most 64) the
// offset of its channel and its tap's row and column offsets, and the panel's depth.
struct PatchRows {
  int64_t coff[64], dI[64], dJ[64];
  int depth;
};

inline void patch_rows(const PatchSource& s, const Segment* seg, int nseg, int64_t k0, int rows,
                       PatchRows* p) {
  const int64_t taps = s.kh * s.kw;
  for (int r = 0; r < rows; ++r) {
    const int64_t k = k0 + r, c = k / taps, i = (k % taps) / s.kw, j = k % s.kw;
    p->coff[r] = c * s.channelStride;
    p->dI[r] = i * s.dilationH - s.padH;
    p->dJ[r] = j * s.dilationW - s.padW;
  }
  p->depth = 0;
  for (int g = 0; g < nseg; ++g) p->depth += seg[g].len;
}

// The lanes [lo, hi) of the depth block of kn columns from column lb that segment sg fills in
// panel row r, and the input row they read from (lane b reads row[iw0 - first + b]); false
// when the tap falls outside the image or on none of the block's lanes.
struct SegmentLanes {
  int64_t lo, hi;
  const float* row;
  int64_t shift;  // iw0 - first: the row offset of lane 0
};

inline bool segment_lanes(const PatchSource& s, const PatchRows& p, const Segment& sg, int r,
                          int lb, int kn, SegmentLanes* out) {
  const int64_t ih = sg.oh * s.strideH + p.dI[r];
  if (ih < 0 || ih >= s.H) return false;
  // Block lane b holds segment column (lb + b - t0).
  const int64_t first = sg.t0 - lb;  // lane of the segment's column 0 (may be < 0)
  const int64_t iw0 = sg.ow0 + p.dJ[r];
  // Lanes b with 0 <= b - first < len, 0 <= iw0 + b - first < W, b < kn.
  int64_t lo = first, hi = first + sg.len;
  if (lo < first - iw0) lo = first - iw0;
  if (hi > first - iw0 + s.W) hi = first - iw0 + s.W;
  if (lo < 0) lo = 0;
  if (hi > kn) hi = kn;
  if (hi <= lo) return false;
  out->lo = lo;
  out->hi = hi;
  out->row = s.data + p.coff[r] + sg.n * s.imageStride + ih * s.W;
  out->shift = iw0 - first;
  return true;
}

}  // namespace conv
}  // namespace modelslice
