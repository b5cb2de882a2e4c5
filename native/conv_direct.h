// Direct convolution tiles for rows of horizontal stride 1, or 2 (see conv_implicit.cc), in
// AVX-512 (conv_direct_avx512.cc) and AVX2 (conv_avx2.cc) versions with the same geometry.
//
// The source image is a zero-padded copy (channels x Hp x Wp; with horizontal stride 2
// each row split into its even and odd columns), so every kernel tap of a run of 16
// output pixels inside one output row is one contiguous (unaligned) vector:
// no im2col, no per-tap masks. A row whose width is not a multiple of 16 ends in a
// vector whose lanes past the row are computed (from the zero padding, which is wide
// enough) and not stored. A tile is MR channels produced x NV such vectors:
//   C[r * ldc + cOff[v] + l] (=, +=, or = ... + bias[r], then + R[...]) for the lanes l set in
//   mask[v]
//     sum over c < channels, t < taps of Ap[(c * taps + t) * MR + r]
//                                       * src[c * chanStride + tapOff[t] + vecOff[v] + l]
// Ap is an MR-row panel of the packed weight (gemm pack_a layout, rows beyond mr zero);
// only the first mr rows are stored.
#pragma once
#include <cstdint>

#include "conv.h"

namespace modelslice {
namespace conv {

struct DirectArgs {
  int64_t channels, taps;
  const int64_t* tapOff;
  int64_t chanStride;
  const float* src;
  const int64_t* vecOff;  // NV entries
  const float* Ap;
  float* C;
  int64_t ldc;
  const int64_t* cOff;   // NV entries
  const uint16_t* mask;  // NV entries: the lanes stored (0xffff: all 16)
  int mr;
  const float* bias;  // per row, or null (ignored when accumulating)
  bool accumulate;
  // Added to each stored value after the bias, or null: laid out as C (R[r * ldc + cOff[v] + l]).
  const float* R;
};

using DirectFn = void (*)(const DirectArgs&);

// The tile kernel for (MR, NV) in {8} x {1..3}, {6} x {1..4} or {4} x {1..5}; null otherwise.
DirectFn direct_tile_avx512(int mr, int nv);
// AVX2 (conv_avx2.cc, each 16-pixel vector as two 8-lane halves): (MR, NV) = (6, 1) only.
DirectFn direct_tile_avx2(int mr, int nv);

// Copies channels x H x W (contiguous) into the interior of a padded buffer: channel c,
// row ih lands at dst[c * padded + (ih + padH) * Wp + padW]; the borders are not touched.
// With t, channel c's values go through t's map number tBase + c on the way (conv.h).
void pad_copy_avx512(const float* src, int64_t channels, int64_t H, int64_t W, int64_t Wp,
                     int64_t padH, int64_t padW, int64_t padded, float* dst,
                     const InputTransform* t = nullptr, int64_t tBase = 0);
void pad_copy_avx2(const float* src, int64_t channels, int64_t H, int64_t W, int64_t Wp,
                   int64_t padH, int64_t padW, int64_t padded, float* dst,
                   const InputTransform* t = nullptr, int64_t tBase = 0);

// Where pad_copy_halves puts a padded row's even and odd columns: padded row pr starts at
// (pr / 2) * rowPair + (pr % 2) * oddRow, its odd columns `odd` after its even ones. The
// halves layout of horizontal stride 2 (rows of 2 * half): {half, 2 * half, 4 * half}; a flat
// stride-2 pass's four phase planes of `phase` values and rows of `pitch`: {phase, 2 * phase,
// pitch}.
struct HalvesPlace {
  int64_t odd, oddRow, rowPair;
};

// The same split into even and odd columns: row ih's padded column pc (= iw + padW) of channel c
// lands at dst[c * padded + row(ih + padH) + (pc % 2) * odd + pc / 2].
void pad_copy_halves_avx512(const float* src, int64_t channels, int64_t H, int64_t W,
                            const HalvesPlace& at, int64_t padH, int64_t padW, int64_t padded,
                            float* dst, const InputTransform* t = nullptr, int64_t tBase = 0);
void pad_copy_halves_avx2(const float* src, int64_t channels, int64_t H, int64_t W,
                          const HalvesPlace& at, int64_t padH, int64_t padW, int64_t padded,
                          float* dst, const InputTransform* t = nullptr, int64_t tBase = 0);

// Weight gradient over one padded image: for r < mr, t < nt,
//   gw[r * ldw + t] += sum over v < vectors, lanes l set in mask[v] of
//                      gy[r * plane + gyOff[v] + l] * xp[rowOff[t] + vecOff[v] + l]
// (rowOff: a patch row's channel and tap offset in the padded image; lanes outside the
// mask are not read).
struct WeightArgs {
  int64_t vectors;
  const int64_t* vecOff;
  const int64_t* gyOff;
  const uint16_t* mask;
  const float* gy;
  int64_t plane;
  const float* xp;
  const int64_t* rowOff;
  int mr, nt;
  float* gw;
  int64_t ldw;
};

using WeightFn = void (*)(const WeightArgs&);

// (MR, NT) in {(4, 6), (6, 4), (8, 3), (4, 5)}; null otherwise.
WeightFn weight_tile_avx512(int mr, int nt);
// AVX2: (MR, NT) = (4, 3) only (12 accumulators of the 16 ymm registers).
WeightFn weight_tile_avx2(int mr, int nt);

}  // namespace conv
}  // namespace modelslice
