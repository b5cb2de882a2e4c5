// Fast convolution paths (see conv_implicit.h for the contract), on AVX-512 and on AVX2 +
// FMA: both use the geometry below (16-pixel vectors with prefix masks); the AVX2 pieces
// (conv_avx2.cc) hold a vector as two 8-lane halves, in 6 x 1 direct tiles, 4 x 3
// weight-gradient tiles and the 6 x 16 sgemm kernel. Four routes:
//
// Direct tiles (output rows of 12 pixels or more that 16-pixel vectors cover with at most
// a quarter of their lanes wasted, the last vector of a row masked: the 3x3 / 1x1 layers
// of CIFAR- and MNIST-size networks; horizontal stride 1, or 2 for the forward and
// weight-gradient passes). Each thread owns a run of (image, 16 * NV output
// pixels) units; per image it copies the group's channels into a zero-padded buffer
// (L2-resident; with stride 2 each row split into its even and odd columns), after which
// every kernel tap of 16 pixels of one output row is one contiguous vector. The tile kernel
// (conv_direct_avx512.cc) multiplies MR rows of the packed weight prefix (broadcast) with NV such
// vectors over all channels and taps in registers and stores into NCHW once: no im2col, no packing
// of the activations, no depth blocks. Backward-input is the same with gy as the image, the weight
// flipped in space and transposed, and padding dilation * (k - 1) - padding, accumulated into gx.
// Backward-weight uses a dot-product tile: 4 output channels x 6 patch rows, each a
// 16-lane partial sum over one image's pixels (gy rows x shifted padded-image rows),
// reduced and added to gw; threads own disjoint tiles and walk the images in order.
//
// Flat direct tiles (maps whose rows are too short for a vector each, such as 7x7 and 8x8, up
// to 64 output channels, 32 on AVX2): the same tiles over the flattened padded image, output
// position q = oh * pitch + ow, so 16 consecutive positions are one vector at every tap
// across row ends; the positions past a row's end are computed into a small tile and dropped.
// Stride 2 reads the padded image's four phase planes (even / odd rows x columns), where the
// same holds. The weight gradient runs its dot-product tile over the same flat positions (up
// to 576 patch rows), gy copied to them and each vector's mask its outputs.
//
// Implicit GEMM (other stride-1 rows). Forward: y[n, o, p] = sum_k W[o, k] patch(k, (n, p)),
//   a GEMM with M = output channels, K = input channels * kh * kw, N = batch * output pixels,
//   on the sgemm micro-kernels. The weight prefix is packed once and shared; each thread
//   owns a run of NR-column panels of N and packs their patch columns straight from x
//   (conv_pack_avx512.cc, zero where the window leaves the image); tiles inside one image
//   are stored straight into y, tiles spanning two images through a stack tile.
//   Backward-input (stride 1) is the same GEMM on gy with the flipped, transposed weight.
//   Backward-weight (output rows under 16 pixels that neither the direct nor the flat tiles
//   take, where it beats im2col):
//   gw[o, k] += sum over (n, p) of gy[n, o, p] patch(k, (n, p)), depth = the batch's
//   pixels in chunks of at most kWeightDepth pixels of one image, always in one order;
//   threads own disjoint MR x NR tiles of gw.
//
// Everything else (horizontal stride > 2, stride 2 outside the direct and flat tiles,
// backward-input with stride > 1, neither AVX-512 nor AVX2, degenerate shapes) returns false and
// conv.cc uses per-image im2col + sgemm. Every output element gets the same arithmetic
// whatever thread computes it (depth blocks and summation orders depend only on the
// shape), so results do not depend on the thread count.
#include "conv_implicit.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "conv_direct.h"
#include "conv_pack.h"
#include "cpu.h"
#include "gemm_internal.h"
#include "norm.h"
#include "parallel.h"
#include "scratch.h"

namespace modelslice {

#ifdef MODELSLICE_X86

namespace conv {

int make_segments(const PatchSource& s, int64_t q0, int count, Segment* out) {
  const int64_t plane = s.outH * s.outW;
  int n = 0;
  int t = 0;
  while (t < count) {
    const int64_t q = q0 + t;
    const int64_t img = q / plane, p = q % plane;
    const int64_t oh = p / s.outW, ow = p % s.outW;
    const int64_t room = s.outW - ow;
    const int len = static_cast<int>(room < count - t ? room : count - t);
    out[n++] = Segment{t, len, img, oh, ow};
    t += len;
  }
  return n;
}

}  // namespace conv

namespace {

using conv::PatchSource;
using conv::Segment;
using gemm::SgemmKernel;

// Depth of the forward GEMM's summation blocks (K split into equal-ish blocks of at most
// this many taps) and of backward-weight's pixel chunks.
constexpr int64_t kForwardDepth = 512;
constexpr int64_t kWeightDepth = 512;
// Weight-gradient direct tile: 4 output channels x 6 patch rows (24 accumulators). Measured
// on Zen 4 against 4x5, 3x8, 3x7, 6x4, 8x3 (fewer unaligned patch loads beat more gy loads
// only up to a point); gy is copied to aligned storage first (+5-10% at 16-32 channels).
constexpr int kWeightTileRows = 4, kWeightTilePatchRows = 6;
// Patch rows (input channels x taps) up to which the weight gradient of a flat pass beats the
// implicit GEMM (stride 1) and im2col (stride 2); one thread, batch 64, before / flat: 8x8 3x3
// 16 -> 16 channels 0.43 / 0.21 ms, 32 1.04 / 0.78, 64 2.9 / 3.1 (7x7 at batch 128: 5.4 / 5.2),
// 128 8.7 / 12.8; 1x1 64 -> 256 2.5 / 1.5, 256 -> 64 1.8 / 1.4; stride 2 to 7x7 and 8x8, 32 -> 64
// 1.7 / 1.6, 64 -> 64 4.4 / 3.7, 128 -> 128 13.1 / 17.1.
constexpr int64_t kFlatWeightRows = 576;
// Most vectors of a forward / backward-input direct tile (the 4 x 5 tile; 4 x 6, 31 of the 32
// zmm registers, spilled and ran at half speed).
constexpr int kMaxDirectNV = 5;

thread_local Scratch tl_panel_a, tl_panel_b, tl_weight, tl_padded, tl_flat;
thread_local std::vector<Segment> tl_segments;

// The pieces of the fast paths for one instruction set (AVX-512, or AVX2 + FMA with the same
// geometry: conv_avx2.cc holds each 16-pixel vector as two 8-lane halves).
struct Isa {
  bool avx512;
  conv::DirectFn (*direct_tile)(int mr, int nv);
  conv::WeightFn (*weight_tile)(int mr, int nt);
  int weightRows, weightPatchRows;  // the weight-gradient tile
  decltype(&conv::pad_copy_avx512) pad_copy;
  decltype(&conv::pad_copy_halves_avx512) pad_copy_halves;
  decltype(&conv::pack_patch_columns_avx512) pack_columns;
  decltype(&conv::pack_patch_rows_t_avx512) pack_rows_t;
};

// Null when the kernels run neither AVX-512 nor AVX2 (the callers then use im2col).
const Isa* fast_isa() {
  static const Isa k512{true,
                        &conv::direct_tile_avx512,
                        &conv::weight_tile_avx512,
                        kWeightTileRows,
                        kWeightTilePatchRows,
                        &conv::pad_copy_avx512,
                        &conv::pad_copy_halves_avx512,
                        &conv::pack_patch_columns_avx512,
                        &conv::pack_patch_rows_t_avx512};
  // 4 x 3: twelve ymm accumulators, three patch rows and one gy row in the 16 registers.
  static const Isa k256{false,
                        &conv::direct_tile_avx2,
                        &conv::weight_tile_avx2,
                        4,
                        3,
                        &conv::pad_copy_avx2,
                        &conv::pad_copy_halves_avx2,
                        &conv::pack_patch_columns_avx2,
                        &conv::pack_patch_rows_t_avx2};
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      return &k512;
    case CpuIsa::kAvx2:
      return &k256;
    default:
      return nullptr;
  }
}

// The micro-kernel for an M x N product (N: the GEMM's columns, 0 when unknown or
// large), or null when the fast path is unavailable. On AVX-512 the one of 8 x 48 and
// 6 x 64 whose tiles pad the product least: 8 x 48 fits widths that are multiples of 8,
// 6 x 64 the 64 pixels of an 8x8 map at batch 1 (a 48-wide tile computes 96 of them).
// On AVX2, the 6 x 16 kernel.
const SgemmKernel* conv_kernel(int64_t M, int64_t N = 0) {
  const Isa* isa = fast_isa();
  if (isa == nullptr) return nullptr;
  if (!isa->avx512) return &gemm::kernel_avx2();
  static const SgemmKernel k48 = gemm::avx512_variant(8, 3);
  const SgemmKernel& k64 = gemm::kernel_avx512();
  if (N <= 0 || N > 1024) return ceil_div(M, 8) * 8 <= ceil_div(M, 6) * 6 ? &k48 : &k64;
  return ceil_div(M, 8) * 8 * ceil_div(N, 48) * 48 <= ceil_div(M, 6) * 6 * ceil_div(N, 64) * 64
             ? &k48
             : &k64;
}

// Threads for a GEMM of this many multiply-adds (small problems stay on one thread).
int threads_for(double macs, int64_t units) {
  int nt = get_num_threads();
  if (macs < double(1 << 20)) nt = 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, units)));
}

// ---- forward and backward-input: C(r, (n, p)) = beta * C + sum_k A(r, k) patch(k, (n, p))
struct ColumnGemm {
  const Isa* isa;
  const SgemmKernel* kern;
  int64_t M, K, kcb;
  const float* Apack;  // ceil(M / MR) * MR rows, packed per depth block
  PatchSource src;
  int64_t columns;  // batch * src.outH * src.outW
  float* C;
  int64_t cImageStride;  // C(r, (n, p)) = C[n * cImageStride + r * plane + p]
  float beta;
  const float* bias;  // added after the last depth block (forward only), may be null
};

void column_panels(const ColumnGemm& g, int64_t panel0, int64_t panel1) {
  const SgemmKernel& kern = *g.kern;
  const int MR = kern.mr, NR = kern.nr;
  const int64_t plane = g.src.outH * g.src.outW;
  const int64_t Mp = ceil_div(g.M, MR) * MR;
  float* Bp = tl_panel_b.get(static_cast<size_t>(NR * g.kcb));
  Segment seg[gemm::kMaxNR];
  alignas(64) float tile[gemm::kMaxMR * gemm::kMaxNR];
  for (int64_t jp = panel0; jp < panel1; ++jp) {
    const int64_t q0 = jp * NR;
    const int filled = static_cast<int>(std::min<int64_t>(NR, g.columns - q0));
    const int nseg = conv::make_segments(g.src, q0, filled, seg);
    bool direct = filled == NR;
    for (int i = 1; i < nseg && direct; ++i) direct = seg[i].n == seg[0].n;
    float* Cdirect = g.C + seg[0].n * g.cImageStride + (q0 - seg[0].n * plane);
    for (int64_t pc = 0; pc < g.K; pc += g.kcb) {
      const int64_t kc = std::min(g.kcb, g.K - pc);
      g.isa->pack_columns(g.src, seg, nseg, filled, pc, kc, NR, Bp);
      const float beta = pc == 0 ? g.beta : 1.0f;
      for (int64_t ir = 0; ir < g.M; ir += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, g.M - ir));
        const float* Ap = g.Apack + Mp * pc + ir * kc;
        if (direct) {
          kern.micro_rows[mr](kc, Ap, Bp, Cdirect + ir * plane, plane, 1.0f, beta);
          continue;
        }
        if (beta != 0.0f) {
          for (int r = 0; r < mr; ++r)
            for (int i = 0; i < nseg; ++i) {
              const float* c = g.C + seg[i].n * g.cImageStride + (ir + r) * plane +
                               seg[i].oh * g.src.outW + seg[i].ow0;
              std::memcpy(tile + r * NR + seg[i].t0, c, sizeof(float) * seg[i].len);
            }
        }
        kern.micro_rows[mr](kc, Ap, Bp, tile, NR, 1.0f, beta);
        for (int r = 0; r < mr; ++r)
          for (int i = 0; i < nseg; ++i) {
            float* c = g.C + seg[i].n * g.cImageStride + (ir + r) * plane + seg[i].oh * g.src.outW +
                       seg[i].ow0;
            std::memcpy(c, tile + r * NR + seg[i].t0, sizeof(float) * seg[i].len);
          }
      }
    }
    if (g.bias) {
      for (int64_t r = 0; r < g.M; ++r) {
        const float b = g.bias[r];
        for (int i = 0; i < nseg; ++i) {
          float* c =
              g.C + seg[i].n * g.cImageStride + r * plane + seg[i].oh * g.src.outW + seg[i].ow0;
          for (int l = 0; l < seg[i].len; ++l) c[l] += b;
        }
      }
    }
  }
}

// Rows [r0, r1) (r0 a multiple of MR) of pack_weight_rows's packing, at their places in Ap.
void pack_weight_range(const SgemmKernel& kern, int64_t M, int64_t K, int64_t kcb, const float* A,
                       int64_t lda, int64_t r0, int64_t r1, float* Ap) {
  const int64_t Mp = ceil_div(M, kern.mr) * kern.mr;
  for (int64_t pc = 0; r0 < r1 && pc < K; pc += kcb) {
    const int64_t kc = std::min(kcb, K - pc);
    kern.pack_a(A + r0 * lda + pc, lda, true, r1 - r0, kc, Ap + Mp * pc + r0 * kc);
  }
}

// Packs the row-major M x K matrix A (leading dimension lda) into MR-row panels, one set
// per depth block of kcb; returns the buffer (the calling thread's scratch). A large matrix
// is packed by all the threads, each a range of panels: packed by the caller alone, a 512 x
// 4608 weight (9 MB) kept the other threads waiting about 1 ms a call.
const float* pack_weight_rows(const SgemmKernel& kern, int64_t M, int64_t K, int64_t kcb,
                              const float* A, int64_t lda) {
  const int64_t MR = kern.mr;
  float* Ap = tl_panel_a.get(static_cast<size_t>(ceil_div(M, MR) * MR * K));
  parallel_run(M * K < (int64_t{1} << 17) ? 1 : get_num_threads(), [&](int t, int nt) {
    int64_t r0, r1;
    split_range(M, MR, t, nt, &r0, &r1);
    pack_weight_range(kern, M, K, kcb, A, lda, r0, r1, Ap);
  });
  return Ap;
}

void run_column_gemm(ColumnGemm& g, int64_t batch) {
  const int NR = g.kern->nr;
  g.columns = batch * g.src.outH * g.src.outW;
  const int64_t blocks = ceil_div(g.K, kForwardDepth);
  g.kcb = ceil_div(g.K, blocks);
  const int64_t panels = ceil_div(g.columns, NR);
  const int nt = threads_for(double(g.M) * g.K * g.columns, panels);
  parallel_run(nt, [&](int t, int n) {
    int64_t lo, hi;
    split_range(panels, 1, t, n, &lo, &hi);
    if (lo < hi) column_panels(g, lo, hi);
  });
}

// ---- direct tiles over a padded image (horizontal stride 1 or 2) ------------------------
// The sliding-window geometry the direct kernels read (one image).
struct Window {
  int64_t H, W, padH, padW, strideH, strideW, dilationH, dilationW, kh, kw, outH, outW;
};

Window forward_window(const ConvShape& s) {
  return Window{s.inH,       s.inW,       s.padH, s.padW, s.strideH, s.strideW,
                s.dilationH, s.dilationW, s.kh,   s.kw,   s.outH,    s.outW};
}

// DirectConv and DirectWeight keep the window's fields flat (their kernels read them
// directly); this fills them in one place.
template <typename D>
void set_window(D& d, const Window& w) {
  d.H = w.H;
  d.W = w.W;
  d.padH = w.padH;
  d.padW = w.padW;
  d.strideH = w.strideH;
  d.strideW = w.strideW;
  d.dilationH = w.dilationH;
  d.dilationW = w.dilationW;
  d.kh = w.kh;
  d.kw = w.kw;
  d.outH = w.outH;
  d.outW = w.outW;
}

struct DirectConv {
  const Isa* isa;
  const SgemmKernel* kern;  // only its mr and pack_a (the weight panels' layout)
  int NV;
  // Vectors over the flattened padded image (flat_applies) instead of along output rows.
  bool flat;
  int64_t M, channels, K;
  // The M x K weights (ldw apart). Each thread packs the MR-row panels its units use into its
  // own scratch (direct_units sets Apack: ceil(M / MR) * MR rows x K, one depth block).
  const float* weights;
  int64_t ldw;
  const float* Apack;
  const float* src;  // first channel of the group, image 0
  int64_t srcImageStride, H, W, padH, padW, strideH, strideW, dilationH, dilationW, kh, kw;
  int64_t outH, outW;
  float* C;
  int64_t cImageStride;  // C(r, (n, p)) = C[n * cImageStride + r * outH * outW + p]
  const float* bias;
  bool accumulate;
  // Added to every output after the bias (laid out as C), or null: a residual add folded in.
  const float* residual;
  // Parts the output rows' MR blocks are split into, each part a unit of its own (run_direct).
  int64_t rowParts;
  // Applied to the input as it is copied (conv.h), or null: map n * tImageStride + tChannel0 + c
  // for channel c of image n.
  const InputTransform* t;
  int64_t tImageStride, tChannel0;
  // Statistics of the output to compute image by image (conv.h), or null: each thread does
  // the images whose tiles all fell to it and marks them in imageDone. When the row parts
  // are whole norm groups (statsByPart), also the parts of an image whose tiles all fell to it,
  // marked in partDone (image n's part p at n * rowParts + p).
  const OutputStats* st;
  int64_t outChannels;
  char* imageDone;
  bool statsByPart;
  char* partDone;
};

// Vectors of 16 pixels covering one output row (the last one masked when the row is not a
// multiple of 16 wide).
int64_t row_vectors(int64_t outW) { return ceil_div(outW, 16); }

// Direct tiles apply with non-negative padding and horizontal stride 1 or 2 when the
// rows' vectors waste at most a quarter of their lanes: widths 12-16, 24-32, 36-48, ...
// (28x28 and 14x14 images; 7x7 and 8x8 take the flat tiles below).
bool direct_applies(int64_t outW, int64_t padH, int64_t padW, int64_t strideW) {
  return outW > 0 && row_vectors(outW) * 16 * 3 <= outW * 4 && padH >= 0 && padW >= 0 &&
         (strideW == 1 || strideW == 2);
}

// Vectors of a flat direct pass: 16 consecutive positions of the padded image's rows, output
// row oh being positions oh * pitch .. oh * pitch + outW - 1 (pitch = the padded width, or
// with stride 2 the width of one phase plane, half of it).
int64_t flat_vectors(int64_t outH, int64_t pitch) { return ceil_div(outH * pitch, 16); }
int64_t flat_pitch(int64_t W, int64_t padW, int64_t stride) {
  return stride == 2 ? ceil_div(W + 2 * padW, 2) : W + 2 * padW;
}

// Flat direct tiles, for stride-1 maps whose rows are too short for a vector each (7x7, 8x8,
// 10x10): with output position q = oh * pitch + ow, tap (i, j) reads the padded image at
// q + i * dilationH * pitch + j * dilationW, so 16 consecutive positions are one contiguous
// vector at every tap across row ends; the (kw - 1) * dilationW positions past each row's
// end are computed and dropped. Taken where rows do not apply and at least 70% of the lanes
// are outputs (7x7: 77%, 8x8: 80%; not 4x4 or 5x5, which the implicit GEMM handles better).
//
// Stride 2 (both ways) the same over the padded image's four phases (even / odd rows x even /
// odd columns, each a plane of its own): output (oh, ow) at tap (i, j) reads padded pixel
// (2 oh + i, 2 ow + j), which is pixel (oh + i / 2, ow + j / 2) of phase (i % 2, j % 2), so at
// every tap 16 consecutive positions q = oh * pitch + ow are again one contiguous vector of a
// phase plane (pitch = half the padded width): 14x14 -> 7x7 (88% of the lanes outputs), 16x16
// -> 8x8 (80%).
bool flat_applies(int64_t outH, int64_t outW, int64_t W, int64_t padH, int64_t padW,
                  int64_t strideH, int64_t strideW) {
  if (strideH != strideW || (strideW != 1 && strideW != 2)) return false;
  if (padH < 0 || padW < 0 || outH <= 0 || outW <= 0) return false;
  if (direct_applies(outW, padH, padW, strideW)) return false;
  const int64_t lanes = flat_vectors(outH, flat_pitch(W, padW, strideW)) * 16;
  return outH * outW * 10 >= lanes * 7;
}

// How a zero-padded image is laid out for the direct tiles. Horizontal stride 1: rows of
// `pitch` columns, the image and its padding and room for a row's last vector to read all
// 16 lanes at every tap. Stride 2: each padded row split into its even and odd columns, two
// halves of `half` values each, so the 16 outputs of a vector read 16 consecutive values
// of one half at every tap (output column ow at tap column c reads padded column 2 ow + c:
// half c % 2, position ow + c / 2). Zero wherever the image is not.
// A flat stride-2 pass lays each channel out as its four phase planes (flat_applies), each
// `phase` values long, in the order (even rows, even columns), (even, odd), (odd, even), (odd,
// odd); phase is 0 otherwise.
struct PaddedLayout {
  int64_t strideW, half, pitch, rows, plane, phase;
};

template <typename D>
PaddedLayout padded_layout(const D& g) {
  PaddedLayout L{};
  L.strideW = g.strideW;
  const int64_t lanes = row_vectors(g.outW) * 16, reach = (g.kw - 1) * g.dilationW;
  if (g.strideW == 1) {
    L.pitch = std::max(g.W + 2 * g.padW, lanes + reach);
  } else {
    L.half = std::max(ceil_div(g.W + 2 * g.padW, 2), lanes + reach / 2);
    L.pitch = 2 * L.half;
  }
  // Rows the window reaches below the image beyond padH (a phase of a stride-2 input gradient,
  // whose padding is not symmetric) are zero too.
  L.rows = std::max(g.H + 2 * g.padH, (g.outH - 1) * g.strideH + (g.kh - 1) * g.dilationH + 1);
  L.plane = L.rows * L.pitch;
  return L;
}

// Where tap (i, j) starts relative to a vector's first output pixel.
template <typename D>
int64_t tap_offset(const D& g, const PaddedLayout& L, int64_t i, int64_t j) {
  const int64_t r = i * g.dilationH, c = j * g.dilationW;
  if (L.phase > 0) return ((r % 2) * 2 + c % 2) * L.phase + (r / 2) * L.pitch + c / 2;
  return r * L.pitch + (L.strideW == 1 ? c : (c % 2) * L.half + c / 2);
}

template <typename D>
void pad_copy(const D& g, const PaddedLayout& L, const float* src, float* dst,
              const InputTransform* t = nullptr, int64_t tBase = 0) {
  if (L.strideW == 1)
    g.isa->pad_copy(src, g.channels, g.H, g.W, L.pitch, g.padH, g.padW, L.plane, dst, t, tBase);
  else if (L.phase > 0)
    g.isa->pad_copy_halves(src, g.channels, g.H, g.W,
                           conv::HalvesPlace{L.phase, 2 * L.phase, L.pitch}, g.padH, g.padW,
                           L.plane, dst, t, tBase);
  else
    g.isa->pad_copy_halves(src, g.channels, g.H, g.W,
                           conv::HalvesPlace{L.half, 2 * L.half, 4 * L.half}, g.padH, g.padW,
                           L.plane, dst, t, tBase);
}

// Vector i of an image's output: where its first pixel is in the padded source (vecOff), in
// the output plane (cOff), and which of its lanes lie in the row (mask).
template <typename D>
void vector_place(const D& g, const PaddedLayout& L, int64_t i, int64_t* vecOff, int64_t* cOff,
                  uint16_t* mask) {
  const int64_t rv = row_vectors(g.outW), oh = i / rv, ow = (i % rv) * 16;
  const int64_t len = std::min<int64_t>(16, g.outW - ow);
  *vecOff = oh * g.strideH * L.pitch + ow;
  *cOff = oh * g.outW + ow;
  *mask = static_cast<uint16_t>(len == 16 ? 0xffffu : (1u << len) - 1u);
}

// The padded layout of a direct pass: padded_layout's, or for a flat pass rows of exactly the
// padded width (stride 2: phase planes of half of it), each channel's plane (phase plane) long
// enough for the last vector to read all 16 lanes at every tap without leaving it.
template <typename D>
PaddedLayout direct_layout(const D& g) {
  PaddedLayout L = padded_layout(g);
  if (!g.flat) return L;
  L.pitch = flat_pitch(g.W, g.padW, g.strideW);
  const int64_t vectorEnd = flat_vectors(g.outH, L.pitch) * 16;
  if (g.strideW == 2) {
    L.half = L.pitch;
    const int64_t reach = (g.kh - 1) * g.dilationH / 2 * L.pitch + (g.kw - 1) * g.dilationW / 2;
    L.phase = std::max(ceil_div(L.rows, 2) * L.pitch, vectorEnd + reach);
    L.plane = 4 * L.phase;
    return L;
  }
  const int64_t reach = (g.kh - 1) * g.dilationH * L.pitch + (g.kw - 1) * g.dilationW;
  L.plane = std::max(L.rows * L.pitch, vectorEnd + reach);
  return L;
}

int64_t direct_vectors(const DirectConv& g) {
  return g.flat ? flat_vectors(g.outH, flat_pitch(g.W, g.padW, g.strideW))
                : g.outH * row_vectors(g.outW);
}

int64_t direct_tiles_per_image(const DirectConv& g) { return ceil_div(direct_vectors(g), g.NV); }

// Whether flat tiles beat the implicit GEMM for M output channels, whose patch packing weighs
// less the more rows share it. AVX-512: up to 64 (8x8 3x3 at batch 64, M -> M channels: 32
// 0.63 -> 0.50 ms, 64 even, 128 4.4-4.9 -> 5.1, 256 16.1 -> 19.5; VGG-13's 256-channel 8x8
// layers 17.0 -> 19.8). AVX2 (one 16-pixel vector a tile): up to 32 (32: 0.63 -> 0.55, 16: 0.24
// -> 0.16, 64: 1.84 -> 1.95).
bool flat_pays(const Isa& isa, int64_t M) { return M <= (isa.avx512 ? 64 : 32); }

// Rows [r0, r1) of part `part` of M rows split into `parts` parts of whole MR blocks (the last
// part to M).
void row_part(int64_t M, int64_t MR, int64_t parts, int64_t part, int64_t* r0, int64_t* r1) {
  const int64_t blocks = ceil_div(M, MR);
  *r0 = std::min(M, blocks * part / parts * MR);
  *r1 = std::min(M, blocks * (part + 1) / parts * MR);
}

// Output rows [r0, r1) of row part `part` of a direct pass.
void part_rows(const DirectConv& g, int64_t part, int64_t* r0, int64_t* r1) {
  row_part(g.M, g.kern->mr, g.rowParts, part, r0, r1);
}

// The tile `fn` (its vectors placed in a) for every block of MR output rows in [r0, r1): row r
// of the block at C + r * a.ldc, with bias[r] when bias is not null, then R's value (laid out
// as C) when R is not null.
void row_blocks(const DirectConv& g, int64_t r0, int64_t r1, conv::DirectArgs& a, conv::DirectFn fn,
                float* C, const float* bias, const float* R) {
  const int MR = g.kern->mr;
  for (int64_t ir = r0; ir < r1; ir += MR) {
    a.Ap = g.Apack + ir * g.K;
    a.C = C + ir * a.ldc;
    a.R = R ? R + ir * a.ldc : nullptr;
    a.mr = static_cast<int>(std::min<int64_t>(MR, g.M - ir));
    a.bias = bias ? bias + ir : nullptr;
    fn(a);
  }
}

// One flat tile: vectors v0 .. v0 + nv - 1 of image n for the row blocks in [r0, r1) into T
// (plain sums), then each output they cover to C as the row tiles store it: + bias, or added
// to C.
void flat_tile(const DirectConv& g, const PaddedLayout& L, int64_t r0, int64_t r1,
               conv::DirectArgs a, conv::DirectFn fn, int64_t n, int64_t v0, int nv, float* T,
               int64_t ldT) {
  const int64_t positions = g.outH * L.pitch, plane = g.outH * g.outW;
  int64_t vecOff[kMaxDirectNV], cOff[kMaxDirectNV];
  uint16_t mask[kMaxDirectNV];
  for (int v = 0; v < nv; ++v) {
    const int64_t q = (v0 + v) * 16;
    vecOff[v] = q;
    cOff[v] = v * 16;
    const int64_t len = std::min<int64_t>(16, positions - q);
    mask[v] = static_cast<uint16_t>(len >= 16 ? 0xffffu : (1u << len) - 1u);
  }
  a.vecOff = vecOff;
  a.cOff = cOff;
  a.mask = mask;
  a.ldc = ldT;
  a.accumulate = false;
  row_blocks(g, r0, r1, a, fn, T, nullptr, nullptr);
  const int64_t q0 = v0 * 16, q1 = std::min<int64_t>(positions, (v0 + nv) * 16);
  for (int64_t r = r0; r < r1; ++r) {
    const float* t = T + r * ldT - q0;
    float* c = g.C + n * g.cImageStride + r * plane;
    const float* res = g.residual ? g.residual + n * g.cImageStride + r * plane : nullptr;
    const float b = g.bias != nullptr && !g.accumulate ? g.bias[r] : 0.0f;
    // Output row oh's positions in [q0, q1): its columns lo .. hi - 1.
    for (int64_t oh = q0 / L.pitch; oh * L.pitch < q1; ++oh) {
      const int64_t rowStart = oh * L.pitch;
      const int64_t lo = std::max<int64_t>(q0 - rowStart, 0);
      const int64_t hi = std::min<int64_t>(q1 - rowStart, g.outW);
      float* dst = c + oh * g.outW;
      const float* src = t + rowStart;
      if (g.accumulate)
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = dst[ow] + src[ow];
      else if (g.bias != nullptr)
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow] + b;
      else
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow];
      if (res != nullptr) {
        const float* rr = res + oh * g.outW;
        for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = dst[ow] + rr[ow];
      }
    }
  }
}

// The statistics (g.st) of norm groups [g0, g1) of image n of the output.
void groups_stats(const DirectConv& g, int64_t n, int64_t g0, int64_t g1) {
  const OutputStats& st = *g.st;
  group_norm_stats_groups(n, g0, g1, g.outChannels, g.outH * g.outW, st.groups, g.C, st.gamma,
                          st.beta, st.eps, st.mean, st.rstd, st.center, st.scale, st.shift);
}

void image_stats(const DirectConv& g, int64_t n) { groups_stats(g, n, 0, g.st->groups); }

// The weight panels of the output rows units [u0, u1) use, packed by this thread into its
// scratch (at their places in the whole packing): at batch 1, where threads split the rows,
// each packs its half in parallel instead of the caller packing all of them while the other
// threads wait (64 -> 64 3x3 on 8x8: 147 KB of weights a layer).
const float* pack_own_rows(const DirectConv& g, int64_t u0, int64_t u1) {
  const int64_t MR = g.kern->mr, Mp = ceil_div(g.M, MR) * MR;
  const int64_t perImage = direct_tiles_per_image(g) * g.rowParts, perPart = perImage / g.rowParts;
  int64_t p0 = 0, p1 = g.rowParts - 1;
  if (u1 - u0 < perImage && u0 / perImage == (u1 - 1) / perImage) {
    p0 = (u0 % perImage) / perPart;
    p1 = ((u1 - 1) % perImage) / perPart;
  }
  int64_t r0, r1, unused;
  part_rows(g, p0, &r0, &unused);
  part_rows(g, p1, &unused, &r1);
  float* Ap = tl_panel_a.get(static_cast<size_t>(Mp * g.K));
  pack_weight_range(*g.kern, g.M, g.K, g.K, g.weights, g.ldw, r0, r1, Ap);
  return Ap;
}

// The statistics of the norm groups in row part `part` of image n.
void part_stats(const DirectConv& g, int64_t n, int64_t part) {
  const int64_t perGroup = g.outChannels / g.st->groups;
  int64_t r0, r1;
  part_rows(g, part, &r0, &r1);
  groups_stats(g, n, r0 / perGroup, r1 / perGroup);
}

void direct_units(const DirectConv& shared, int64_t u0, int64_t u1) {
  DirectConv g = shared;
  g.Apack = pack_own_rows(g, u0, u1);
  const int MR = g.kern->mr;
  const PaddedLayout L = direct_layout(g);
  const int64_t padded = L.plane;
  const int64_t plane = g.outH * g.outW, vectors = direct_vectors(g);
  // A flat tile's vectors go to a tile of M rows x NV vectors first (ldT apart), then their
  // outputs to C row by row.
  const int64_t ldT = int64_t{kMaxDirectNV} * 16;
  float* flatTile =
      g.flat ? tl_flat.get(static_cast<size_t>(ceil_div(g.M, MR) * MR * ldT)) : nullptr;
  const int64_t perImage = direct_tiles_per_image(g) * g.rowParts;
  float* xp = tl_padded.get(static_cast<size_t>(g.channels * padded));
  std::memset(xp, 0, sizeof(float) * g.channels * padded);  // borders stay zero
  const int64_t taps = g.kh * g.kw;
  int64_t tapOff[64];
  std::vector<int64_t> tapBig;
  int64_t* tapOffp = tapOff;
  if (taps > 64) {
    tapBig.resize(static_cast<size_t>(taps));
    tapOffp = tapBig.data();
  }
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j) tapOffp[i * g.kw + j] = tap_offset(g, L, i, j);
  int64_t vecOff[kMaxDirectNV], cOff[kMaxDirectNV];
  uint16_t mask[kMaxDirectNV];
  conv::DirectArgs a{};
  a.channels = g.channels;
  a.taps = taps;
  a.tapOff = tapOffp;
  a.chanStride = padded;
  a.src = xp;
  a.vecOff = vecOff;
  a.ldc = plane;
  a.cOff = cOff;
  a.mask = mask;
  a.accumulate = g.accumulate;
  int64_t current = -1;
  // An image's output is final once its last tile is written: its statistics then, while
  // it is in this core's cache, when all its tiles were this thread's.
  const int64_t perPart = perImage / g.rowParts;
  const auto finish = [&](int64_t n) {
    if (g.st == nullptr || n < 0) return;
    if (n * perImage >= u0 && (n + 1) * perImage <= u1) {
      image_stats(g, n);
      g.imageDone[n] = 1;
      return;
    }
    if (!g.statsByPart) return;
    // The parts of image n all of whose tiles were this thread's.
    for (int64_t part = 0; part < g.rowParts; ++part) {
      const int64_t first = n * perImage + part * perPart;
      if (first < u0 || first + perPart > u1) continue;
      part_stats(g, n, part);
      g.partDone[n * g.rowParts + part] = 1;
    }
  };
  for (int64_t u = u0; u < u1; ++u) {
    // An image's units: its row parts, each over all its vector tiles.
    const int64_t n = u / perImage, part = (u % perImage) / (perImage / g.rowParts),
                  tile = u % (perImage / g.rowParts);
    int64_t r0, r1;
    part_rows(g, part, &r0, &r1);
    if (n != current) {
      finish(current);
      current = n;
      pad_copy(g, L, g.src + n * g.srcImageStride, xp, g.t, n * g.tImageStride + g.tChannel0);
    }
    const int64_t v0 = tile * g.NV;
    const int nv = static_cast<int>(std::min<int64_t>(g.NV, vectors - v0));
    const conv::DirectFn fn = g.isa->direct_tile(MR, nv);
    if (g.flat) {
      flat_tile(g, L, r0, r1, a, fn, n, v0, nv, flatTile, ldT);
      continue;
    }
    for (int v = 0; v < nv; ++v) vector_place(g, L, v0 + v, &vecOff[v], &cOff[v], &mask[v]);
    row_blocks(g, r0, r1, a, fn, g.C + n * g.cImageStride, g.bias,
               g.residual ? g.residual + n * g.cImageStride : nullptr);
  }
  finish(current);
}

void run_direct(const DirectConv& direct, int64_t batch) {
  DirectConv g = direct;
  const int64_t tiles = batch * direct_tiles_per_image(g), rowBlocks = ceil_div(g.M, g.kern->mr);
  const int nt = threads_for(double(g.M) * g.K * batch * g.outH * g.outW, tiles * rowBlocks);
  // Too few vector tiles to keep the threads even (a small image at batch 1: one tile for an
  // 8x8 map) also split the output rows, one part a thread; no output's arithmetic changes.
  // With statistics and an image split between the threads, the rows are split too when the
  // parts are whole norm groups: each thread then computes its groups' statistics while they
  // are in its cache, instead of the caller reading the whole output afterwards (16 -> 16 on
  // 32x32 at batch 1, a chain of 18 layers: 26.0 -> 23.5 us a layer).
  const int64_t MR = g.kern->mr, parts = std::min<int64_t>(rowBlocks, nt);
  const auto groupAligned = [&](int64_t k) {
    if (g.st == nullptr || g.outChannels != g.M || g.M % g.st->groups != 0) return false;
    for (int64_t p = 1; p < k; ++p) {
      int64_t r0, r1;
      row_part(g.M, MR, k, p, &r0, &r1);
      if (r0 % (g.M / g.st->groups) != 0) return false;
    }
    return true;
  };
  g.rowParts = tiles < 4 * nt || (batch % nt != 0 && parts > 1 && groupAligned(parts)) ? parts : 1;
  g.statsByPart = g.rowParts > 1 && groupAligned(g.rowParts);
  std::vector<char> partDone(g.statsByPart ? static_cast<size_t>(batch * g.rowParts) : 0, 0);
  g.partDone = partDone.data();
  const int64_t perImage = direct_tiles_per_image(g) * g.rowParts;
  const int64_t units = batch * perImage;
  // With statistics to compute and whole images for every thread, split at image boundaries
  // (no image is then left for the caller to finish); with statistics by parts, at parts.
  const int64_t align = g.st != nullptr && batch % nt == 0 ? perImage
                        : g.statsByPart                    ? perImage / g.rowParts
                                                           : 1;
  parallel_run(nt, [&](int t, int n) {
    int64_t lo, hi;
    split_range(units, align, t, n, &lo, &hi);
    if (lo < hi) direct_units(g, lo, hi);
  });
  if (g.st == nullptr) return;
  // Images split between threads: their statistics now, on this thread (by parts when the
  // threads did some of them).
  for (int64_t n = 0; n < batch; ++n) {
    if (g.imageDone[n]) continue;
    if (!g.statsByPart) {
      image_stats(g, n);
      continue;
    }
    for (int64_t part = 0; part < g.rowParts; ++part)
      if (!g.partDone[n * g.rowParts + part]) part_stats(g, n, part);
  }
}

// Weight gradient by direct tiles: threads own disjoint MR x NT tiles of gw (all images).
struct DirectWeight {
  const Isa* isa;
  int MR, NT;
  // Vectors over the flattened padded image (flat_applies), as the forward pass's flat tiles.
  bool flat;
  int64_t M, N, channels;  // output channels, patch rows, input channels
  const float* gy;
  int64_t gyImageStride;
  const float* src;
  int64_t srcImageStride, H, W, padH, padW, strideH, strideW, dilationH, dilationW, kh, kw, outH,
      outW;
  // Applied to the input as it is copied, or null (as DirectConv's).
  const InputTransform* t;
  int64_t tImageStride, tChannel0;
  int64_t batch;
  float* gw;
  int64_t ldw;
};

// Images one pass of a weight tile sums before reducing its lanes into gw. A small output
// (7x7: 7 vectors, 14x14: 14) would otherwise spend about as long in the lane reductions and
// gw updates closing each image as in its fmas. About 64 vectors a pass, at most 16 images;
// it depends on the shape only, so a gw element's sum order does not depend on the threads.
int64_t weight_image_group(int64_t vectors, int64_t batch) {
  return std::max<int64_t>(1, std::min<int64_t>({batch, 16, 64 / std::max<int64_t>(1, vectors)}));
}

// An unpadded 1x1 window with horizontal stride 1 reads each output vector's pixels where
// they are (the tile's loads are masked to the row), so the image needs no padded copy.
bool weight_reads_in_place(const DirectWeight& g) {
  return g.kh == 1 && g.kw == 1 && g.padH == 0 && g.padW == 0 && g.strideW == 1;
}

void direct_weight_tiles(const DirectWeight& g, int64_t u0, int64_t u1) {
  // An unpadded 1x1 window keeps the image's own layout; with a map the image is mapped into
  // a copy of that layout (the same vectors, so the same sums as without the map).
  const bool unpadded = !g.flat && weight_reads_in_place(g);
  const bool xInPlace = unpadded && g.t == nullptr;
  PaddedLayout L = direct_layout(g);
  if (unpadded) {
    L.pitch = g.W;
    L.plane = g.H * g.W;
  }
  const int64_t padded = L.plane;
  const int64_t plane = g.outH * g.outW, taps = g.kh * g.kw;
  const int64_t vectors = g.flat ? flat_vectors(g.outH, L.pitch) : g.outH * row_vectors(g.outW);
  // A flat pass copies gy's rows to the flat positions (output row oh at oh * pitch), whose
  // lanes past a row's end the vectors' masks leave out.
  const int64_t gyPlane = g.flat ? vectors * 16 : plane;
  const int64_t tBlocks = ceil_div(g.N, g.NT), oBlocks = ceil_div(g.M, g.MR);
  const int64_t group = weight_image_group(vectors, g.batch);
  // Unit u's blocks of gw rows and of patch rows. Where the input is copied (and with a map
  // always), units run through the patch-row blocks first (unit u is rows u % oBlocks, patch
  // rows u / oBlocks), so a thread's units read a slice of the channels and it copies only
  // those: both threads copied every channel before (64 -> 32 1x1 stride 2 on 32x32, batch
  // 128: 3.1 -> 2.1 ms). Not for flat passes without a map, whose gy copies would grow.
  const bool patchMajor = g.t != nullptr || (!xInPlace && !g.flat);
  const auto rowBlock = [&](int64_t u) { return patchMajor ? u % oBlocks : u / tBlocks; };
  const auto patchBlock = [&](int64_t u) { return patchMajor ? u / oBlocks : u % tBlocks; };
  // The thread's rows of gy, and the input channels its patch rows read.
  int64_t r0 = 0, r1 = g.M, c0 = 0, c1 = g.channels;
  if (!patchMajor) {
    r0 = rowBlock(u0) * g.MR;
    r1 = std::min(g.M, (rowBlock(u1 - 1) + 1) * g.MR);
  } else {
    if (u1 - u0 < oBlocks && rowBlock(u0) <= rowBlock(u1 - 1)) {
      r0 = rowBlock(u0) * g.MR;
      r1 = std::min(g.M, (rowBlock(u1 - 1) + 1) * g.MR);
    }
    c0 = patchBlock(u0) * g.NT / taps;
    c1 = ceil_div(std::min(g.N, (patchBlock(u1 - 1) + 1) * g.NT), taps);
  }
  const int64_t xImage = xInPlace ? g.srcImageStride : g.channels * padded;
  DirectWeight slice = g;  // the channels [c0, c1) the copies hold
  slice.channels = c1 - c0;
  // gy rows are copied into 64-byte aligned storage when many tiles read them (+5-10% at
  // 16-32 channels, 3x3); read by a few (1x1 with few input channels: 16->64 at 32x32, one
  // thread, 64 -> 77-85 GFLOP/s in place), the copy costs more than the aligned loads save.
  const bool gyInPlace = !g.flat && tBlocks < 8;
  const int64_t gyImage = gyInPlace ? g.gyImageStride : (r1 - r0) * gyPlane;
  float* xp = nullptr;
  if (!xInPlace) {
    xp = tl_padded.get(static_cast<size_t>(group * xImage));
    std::memset(xp, 0, sizeof(float) * group * xImage);  // borders stay zero
  }
  float* gyc = gyInPlace ? nullptr : tl_panel_b.get(static_cast<size_t>(group * gyImage));
  // Vector v of image i of a pass: offsets into that image's copies.
  std::vector<int64_t> vecOff(static_cast<size_t>(group * vectors)),
      gyOff(static_cast<size_t>(group * vectors)), rowOff(static_cast<size_t>(g.N));
  std::vector<uint16_t> mask(static_cast<size_t>(group * vectors));
  for (int64_t v = 0; v < vectors; ++v) {
    if (!g.flat) {
      vector_place(g, L, v, &vecOff[v], &gyOff[v], &mask[v]);
      continue;
    }
    vecOff[v] = gyOff[v] = v * 16;
    mask[v] = 0;
    for (int64_t l = 0; l < 16; ++l) {
      const int64_t q = v * 16 + l;
      if (q < g.outH * L.pitch && q % L.pitch < g.outW) mask[v] |= static_cast<uint16_t>(1u << l);
    }
  }
  for (int64_t i = 1; i < group; ++i)
    for (int64_t v = 0; v < vectors; ++v) {
      vecOff[i * vectors + v] = i * xImage + vecOff[v];
      gyOff[i * vectors + v] = i * gyImage + gyOff[v];
      mask[i * vectors + v] = mask[v];
    }
  for (int64_t k = 0; k < g.N; ++k) {
    const int64_t c = k / taps, i = (k % taps) / g.kw, j = k % g.kw;
    rowOff[k] = c * padded + tap_offset(g, L, i, j);
  }
  const conv::WeightFn fn = g.isa->weight_tile(g.MR, g.NT);
  conv::WeightArgs a{};
  a.vecOff = vecOff.data();
  a.gyOff = gyOff.data();
  a.mask = mask.data();
  a.plane = gyPlane;
  a.ldw = g.ldw;
  for (int64_t n0 = 0; n0 < g.batch; n0 += group) {
    const int64_t images = std::min(group, g.batch - n0);
    for (int64_t i = 0; i < images; ++i) {
      const float* gyn = g.gy + (n0 + i) * g.gyImageStride + r0 * plane;
      if (g.flat) {
        for (int64_t r = 0; r < r1 - r0; ++r)
          for (int64_t oh = 0; oh < g.outH; ++oh)
            std::memcpy(gyc + i * gyImage + r * gyPlane + oh * L.pitch,
                        gyn + r * plane + oh * g.outW, sizeof(float) * g.outW);
      } else if (!gyInPlace) {
        std::memcpy(gyc + i * gyImage, gyn, sizeof(float) * gyImage);
      }
      if (!xInPlace)
        pad_copy(slice, L, g.src + (n0 + i) * g.srcImageStride + c0 * g.H * g.W,
                 xp + i * xImage + c0 * padded, g.t, (n0 + i) * g.tImageStride + g.tChannel0 + c0);
    }
    a.xp = xInPlace ? g.src + n0 * g.srcImageStride : xp;
    a.vectors = images * vectors;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t o0 = rowBlock(u) * g.MR, k0 = patchBlock(u) * g.NT;
      a.gy = gyInPlace ? g.gy + n0 * g.gyImageStride + o0 * plane : gyc + (o0 - r0) * gyPlane;
      a.rowOff = rowOff.data() + k0;
      a.mr = static_cast<int>(std::min<int64_t>(g.MR, g.M - o0));
      a.nt = static_cast<int>(std::min<int64_t>(g.NT, g.N - k0));
      a.gw = g.gw + o0 * g.ldw + k0;
      fn(a);
    }
  }
}

// Vectors per direct tile: AVX-512 8 x 3, 6 x 4 or 4 x 5 (see direct_kernel); AVX2 6 x 1
// (twelve ymm accumulators).
int direct_nv(const Isa& isa, const SgemmKernel& kern) {
  if (!isa.avx512) return 1;
  return kern.mr == 8 ? 3 : kern.mr == 6 ? 4 : kMaxDirectNV;
}

// The kernel whose weight panels (pack_a layout, MR rows) the direct tiles read. AVX-512:
// 8 rows x 3 vectors (the 8x48 kernel's layout), 6 x 4 (the 6x64 kernel's) or 4 x 5 (the 4x64
// kernel's panels; the tile's 5 vectors are its own); pick the one computing the fewest
// padding rows and vectors (ties: 8 x 3, measured faster, then 6 x 4). A lone vector at the
// end of an image runs at well under half speed, so e.g. 16x16 outputs (16 vectors) prefer
// 6 x 4; 4 channels (a sliced 16) waste a third of 6 x 4 and none of 4 x 5 (28x28 at batch 32,
// one thread: 0.09 -> 0.08 ms). AVX2: the 6 x 16 kernel's panels.
const SgemmKernel* direct_kernel(const Isa& isa, int64_t M, int64_t vectors) {
  if (!isa.avx512) return &gemm::kernel_avx2();
  static const SgemmKernel k48 = gemm::avx512_variant(8, 3);
  static const SgemmKernel k4 = gemm::avx512_variant(4, 4);
  const SgemmKernel& k64 = gemm::kernel_avx512();
  const double w8 = double(ceil_div(M, 8) * 8) * double(ceil_div(vectors, 3) * 3);
  const double w6 = double(ceil_div(M, 6) * 6) * double(ceil_div(vectors, 4) * 4);
  const double w4 =
      double(ceil_div(M, 4) * 4) * double(ceil_div(vectors, kMaxDirectNV) * kMaxDirectNV);
  if (w8 <= w6 && w8 <= w4) return &k48;
  return w6 <= w4 ? &k64 : &k4;
}

// ---- backward-weight --------------------------------------------------------------------
struct WeightGemm {
  const Isa* isa;
  const SgemmKernel* kern;
  int64_t M, N;  // output channels, taps
  const float* gy;
  int64_t gyImageStride, plane;  // gy(r, (n, p)) = gy[n * gyImageStride + r * plane + p]
  PatchSource src;
  int64_t batch, chunk;  // pixels per depth chunk (the last chunk of an image may be shorter)
  float* gw;
  int64_t ldw;
};

// Tiles [t0, t1) in panel-major order (tile = panel * rowTiles + rowTile).
void weight_tiles(const WeightGemm& g, int64_t t0, int64_t t1) {
  const SgemmKernel& kern = *g.kern;
  const int MR = kern.mr, NR = kern.nr;
  const int64_t rowTiles = ceil_div(g.M, MR);
  const int64_t firstPanel = t0 / rowTiles, lastPanel = (t1 - 1) / rowTiles;
  // Rows of gy this thread needs.
  const int64_t r0 = firstPanel == lastPanel ? (t0 % rowTiles) * MR : 0;
  const int64_t r1 = firstPanel == lastPanel ? std::min(g.M, ((t1 - 1) % rowTiles + 1) * MR) : g.M;
  float* Ap = tl_panel_a.get(static_cast<size_t>(ceil_div(r1 - r0, MR) * MR * g.chunk));
  float* Bp = tl_panel_b.get(static_cast<size_t>(NR * g.chunk));
  std::vector<Segment>& seg = tl_segments;
  seg.resize(static_cast<size_t>(g.chunk + 1));
  alignas(64) float tile[gemm::kMaxMR * gemm::kMaxNR];
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t p0 = 0; p0 < g.plane; p0 += g.chunk) {
      const int64_t L = std::min(g.chunk, g.plane - p0);
      kern.pack_a(g.gy + n * g.gyImageStride + r0 * g.plane + p0, g.plane, true, r1 - r0, L, Ap);
      const int nseg =
          conv::make_segments(g.src, n * g.plane + p0, static_cast<int>(L), seg.data());
      for (int64_t jp = firstPanel; jp <= lastPanel; ++jp) {
        const int rows = static_cast<int>(std::min<int64_t>(NR, g.N - jp * NR));
        g.isa->pack_rows_t(g.src, seg.data(), nseg, jp * NR, rows, NR, Bp);
        const int64_t ir0 = jp == firstPanel ? t0 % rowTiles : 0;
        const int64_t ir1 = jp == lastPanel ? (t1 - 1) % rowTiles + 1 : rowTiles;
        for (int64_t it = ir0; it < ir1; ++it) {
          const int64_t ir = it * MR;
          const int mr = static_cast<int>(std::min<int64_t>(MR, g.M - ir));
          const float* A = Ap + (ir - r0) * L;
          float* C = g.gw + ir * g.ldw + jp * NR;
          if (rows == NR) {
            kern.micro_rows[mr](L, A, Bp, C, g.ldw, 1.0f, 1.0f);
          } else {
            for (int r = 0; r < mr; ++r)
              std::memcpy(tile + r * NR, C + r * g.ldw, sizeof(float) * rows);
            kern.micro_rows[mr](L, A, Bp, tile, NR, 1.0f, 1.0f);
            for (int r = 0; r < mr; ++r)
              std::memcpy(C + r * g.ldw, tile + r * NR, sizeof(float) * rows);
          }
        }
      }
    }
}

bool is_depthwise(const ConvShape& s) {
  return s.groups == s.inChannels && s.groups == s.outChannels && s.groups > 1;
}

// 1x1, stride 1, no padding: each image is already a plain GEMM operand, and conv.cc's
// per-image sgemm measured faster than these paths (64->256 / 256->64 channels at 32x32:
// 93 / 81 GFLOP/s forward on one core against 68 / 84 here, 80-87 against 65-82 backward).
bool is_plain_pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.strideH == 1 && s.strideW == 1 && s.padH == 0 && s.padW == 0;
}

PatchSource patch_source(const float* data, int64_t imageStride, int64_t H, int64_t W,
                         const ConvShape& s, int64_t padH, int64_t padW, int64_t strideH,
                         int64_t outH, int64_t outW) {
  PatchSource p{};
  p.data = data;
  p.imageStride = imageStride;
  p.channelStride = H * W;
  p.H = H;
  p.W = W;
  p.kh = s.kh;
  p.kw = s.kw;
  p.strideH = strideH;
  p.strideW = 1;
  p.padH = padH;
  p.padW = padW;
  p.dilationH = s.dilationH;
  p.dilationW = s.dilationW;
  p.outH = outH;
  p.outW = outW;
  return p;
}

// A 1x1 convolution is a plain GEMM per image, but the per-image sgemm of
// conv.cc packs the whole image each call; the whole-batch paths here read it
// in place and beat it by 1.3-1.8x (the 1x1 ResNet-164 layers at 16 images,
// 16 to 256 channels, from an arena: 35-51 -> 58-111 GFLOP/s) once there are
// about 2M multiply-adds. Below that their setup (weight packing, waking the
// pool) costs more than it saves.
bool small_pointwise(const ConvShape& s) {
  return is_plain_pointwise(s) &&
         s.batch * s.outChannels * (s.inChannels / s.groups) * s.outH * s.outW < (int64_t{1} << 21);
}

// What the paths here take: not depthwise, not a small 1x1, horizontal stride 1
// (or 2, for the direct tiles of the forward and weight-gradient passes);
// degenerate shapes (nothing to sum or nothing to write) stay on the im2col path.
//
// On AVX2 no plain 1x1 does: the per-image sgemm beat the direct and implicit paths there
// (ResNet-164's 1x1 layers at batch 64, 16 to 256 channels: 272 against 315 ms over the
// network; bench/RESULTS.md, "Convolution fast paths on AVX2"). Nothing does without
// AVX-512 or AVX2.
bool fast_applies(const ConvShape& s) {
  const Isa* isa = fast_isa();
  if (isa == nullptr) return false;
  if (is_depthwise(s) || small_pointwise(s) || (s.strideW != 1 && s.strideW != 2)) return false;
  if (is_plain_pointwise(s) && !isa->avx512) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  return cg > 0 && og > 0 && s.batch > 0 && s.outH * s.outW > 0 && s.inH * s.inW > 0;
}

bool implicit_applies(const ConvShape& s) { return fast_applies(s) && s.strideW == 1; }

// Whether flat tiles apply to the shape's forward window. Stride 2 not for 1x1 kernels, where
// copying the four phases costs more than the one tap saves (14x14 -> 7x7, 32 -> 64 channels,
// one thread: 0.22 ms through im2col, 0.45 flat).
bool flat_window(const ConvShape& s) {
  return flat_applies(s.outH, s.outW, s.inW, s.padH, s.padW, s.strideH, s.strideW) &&
         (s.strideW == 1 || s.kh * s.kw > 1);
}

// Whether the forward pass takes flat tiles.
bool flat_forward(const ConvShape& s) {
  return flat_window(s) && flat_pays(*fast_isa(), s.outChannels / s.groups);
}

}  // namespace

bool conv_implicit_forward_runs(const ConvShape& s) {
  if (!fast_applies(s) || conv_kernel(s.outChannels / s.groups) == nullptr) return false;
  return direct_applies(s.outW, s.padH, s.padW, s.strideW) || s.strideW == 1 || flat_forward(s);
}

bool conv_implicit_forward(const ConvShape& s, const float* x, const float* w, const float* bias,
                           float* y, bool accumulate, const InputTransform* t,
                           const OutputStats* st, bool* statsDone, const float* residual,
                           bool* residualDone) {
  if (!fast_applies(s)) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const SgemmKernel* kern = conv_kernel(og, s.batch * s.outH * s.outW);
  if (!kern) return false;
  const int64_t K = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t inPlane = s.inH * s.inW, plane = s.outH * s.outW;
  const bool flat = flat_forward(s);
  const bool direct = flat || direct_applies(s.outW, s.padH, s.padW, s.strideW);
  if (t != nullptr && !direct) return false;
  if (direct) {
    for (int64_t g = 0; g < s.groups; ++g) {
      DirectConv d{};
      d.isa = fast_isa();
      d.flat = flat;
      set_window(d, forward_window(s));
      d.kern = direct_kernel(*d.isa, og, direct_vectors(d));
      d.NV = direct_nv(*d.isa, *d.kern);
      d.M = og;
      d.channels = cg;
      d.K = K;
      d.weights = w + g * og * ldw;
      d.ldw = ldw;
      d.src = x + g * cg * inPlane;
      d.srcImageStride = s.inChannels * inPlane;
      d.C = y + g * og * plane;
      d.cImageStride = s.outChannels * plane;
      d.bias = bias ? bias + g * og : nullptr;  // null when accumulating (conv2d_forward)
      d.accumulate = accumulate;
      d.residual = residual ? residual + g * og * plane : nullptr;
      d.t = t;
      d.tImageStride = s.inChannels;
      d.tChannel0 = g * cg;
      // An image's statistics need all its channels: only one group writes them all.
      std::vector<char> imageDone;
      if (st != nullptr && s.groups == 1) {
        imageDone.assign(static_cast<size_t>(s.batch), 0);
        d.st = st;
        d.outChannels = s.outChannels;
        d.imageDone = imageDone.data();
        *statsDone = true;
      }
      run_direct(d, s.batch);
    }
    if (residual != nullptr) *residualDone = true;
    note_conv_path(ConvPass::kForward, flat ? "flat" : "direct");
    return true;
  }
  if (s.strideW != 1) return false;
  note_conv_path(ConvPass::kForward, "implicit");
  for (int64_t g = 0; g < s.groups; ++g) {
    ColumnGemm cg_{};
    cg_.isa = fast_isa();
    cg_.kern = kern;
    cg_.M = og;
    cg_.K = K;
    cg_.src = patch_source(x + g * cg * inPlane, s.inChannels * inPlane, s.inH, s.inW, s, s.padH,
                           s.padW, s.strideH, s.outH, s.outW);
    cg_.C = y + g * og * plane;
    cg_.cImageStride = s.outChannels * plane;
    cg_.beta = accumulate ? 1.0f : 0.0f;
    cg_.bias = bias ? bias + g * og : nullptr;
    const int64_t blocks = ceil_div(K, kForwardDepth);
    cg_.Apack = pack_weight_rows(*kern, og, K, ceil_div(K, blocks), w + g * og * ldw, ldw);
    run_column_gemm(cg_, s.batch);
  }
  return true;
}

namespace {

// A direct pass of an input gradient: gy of group g as the image, the flipped, transposed
// weight At (cg rows of K) as its weights, over `win`; the caller sets where it writes.
DirectConv input_gradient_pass(const ConvShape& s, int64_t g, const Window& win, bool flat,
                               const float* At, int64_t K, const float* gy) {
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const int64_t plane = s.outH * s.outW;
  DirectConv d{};
  d.isa = fast_isa();
  d.flat = flat;
  set_window(d, win);
  d.kern = direct_kernel(*d.isa, cg, direct_vectors(d));
  d.NV = direct_nv(*d.isa, *d.kern);
  d.M = cg;
  d.channels = og;
  d.K = K;
  d.weights = At;
  d.ldw = K;
  d.src = gy + g * og * plane;
  d.srcImageStride = s.outChannels * plane;
  return d;
}

// Stride-2 input gradient by phases. gx's pixels (ih, iw) with (ih + padH) % 2 == a and
// (iw + padW) % 2 == b take only the taps i = a + 2u, j = b + 2v, each at gy (ph - u, pw - v)
// where ih = 2 ph + a - padH: a stride-1 convolution of gy with that sub-kernel, flipped and
// transposed, whose outputs are every other pixel of gx in both directions. Each of the four
// phases runs on the direct tiles into a buffer, then one pass over gx interleaves them;
// im2col instead multiplied into patch columns and added them back tap by tap.
struct Phase {
  int64_t a, b;      // the phase: parities of ih + padH and iw + padW
  int64_t U, V;      // its taps: rows a, a + 2, .. < kh; columns b, b + 2, .. < kw
  int64_t ph0, pw0;  // its first pixel: ih = 2 ph0 + a - padH, the first >= 0
  int64_t PH, PW;    // its pixels in gx
  int64_t padH, padW;
  bool empty() const { return U == 0 || V == 0 || PH == 0 || PW == 0; }
};

// The phase's geometry, or false when its tiles do not apply (im2col then runs them all).
bool phase_of(const ConvShape& s, int64_t a, int64_t b, Phase* p) {
  const auto count = [](int64_t k, int64_t first) { return k > first ? (k - first + 1) / 2 : 0; };
  const auto start = [](int64_t pad, int64_t first) {
    return pad > first ? (pad - first + 1) / 2 : 0;
  };
  const auto pixels = [](int64_t in, int64_t pad, int64_t first, int64_t p0) {
    const int64_t last = in - 1 + pad - first;  // 2 * (last phase pixel) <= last
    return last < 0 ? 0 : std::max<int64_t>(0, last / 2 - p0 + 1);
  };
  *p = Phase{};
  p->a = a;
  p->b = b;
  p->U = count(s.kh, a);
  p->V = count(s.kw, b);
  p->ph0 = start(s.padH, a);
  p->pw0 = start(s.padW, b);
  p->PH = pixels(s.inH, s.padH, a, p->ph0);
  p->PW = pixels(s.inW, s.padW, b, p->pw0);
  if (p->empty()) return true;
  // Output pixel q of the phase reads gy row q + ph0 - (U - 1) + u': padding U - 1 - ph0.
  p->padH = p->U - 1 - p->ph0;
  p->padW = p->V - 1 - p->pw0;
  if (p->padH < 0 || p->padW < 0) return false;
  // Rows of direct tiles only: on flat tiles (7x7 and 8x8 phases) the tiles' wasted lanes, the
  // copy out of their buffer and the spread into gx cost what im2col costs (one thread,
  // 32 -> 64 channels to 7x7 at batch 128: 3.57 ms im2col, 3.52 flat; 64 -> 64 to 8x8 at 64:
  // 3.73, 3.85).
  return direct_applies(p->PW, p->padH, p->padW, 1);
}

thread_local Scratch tl_phase;

bool backward_input_phases(const ConvShape& s, const float* gy, const float* w, float* gx,
                           bool accumulate) {
  if (s.strideH != 2 || s.strideW != 2 || s.dilationH != 1 || s.dilationW != 1) return false;
  // Not 1x1: one phase of the four has all the work, and the spread into gx costs more than
  // im2col's GEMM saves (16 -> 32 channels on 28x28 at batch 128, one thread: 0.85 -> 1.08 ms).
  if (s.kh * s.kw == 1 || !fast_applies(s) || s.padH < 0 || s.padW < 0) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  if (conv_kernel(cg) == nullptr) return false;
  Phase phases[4];
  for (int64_t k = 0; k < 4; ++k)
    if (!phase_of(s, k / 2, k % 2, &phases[k])) return false;
  const int64_t taps = s.kh * s.kw, ldw = s.weightInPerGroup * taps;
  const int64_t inPlane = s.inH * s.inW;
  // Per image the phases one after another, each its cg planes of PH x PW (at[k] * cg on).
  int64_t at[4], perPlane = 0;
  for (int64_t k = 0; k < 4; ++k) {
    at[k] = perPlane;
    if (!phases[k].empty()) perPlane += phases[k].PH * phases[k].PW;
  }
  float* buf = tl_phase.get(static_cast<size_t>(s.batch * cg * perPlane));
  for (int64_t g = 0; g < s.groups; ++g) {
    for (int64_t k = 0; k < 4; ++k) {
      const Phase& P = phases[k];
      if (P.empty()) continue;
      const int64_t sub = P.U * P.V, K = og * sub;
      // A(c, (o, u', v')) = w[o, c, a + 2 (U - 1 - u'), b + 2 (V - 1 - v')].
      float* At = tl_weight.get(static_cast<size_t>(cg * K));
      const float* wg = w + g * og * ldw;
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t o = 0; o < og; ++o)
          for (int64_t u = 0; u < P.U; ++u)
            for (int64_t v = 0; v < P.V; ++v)
              At[c * K + o * sub + u * P.V + v] =
                  wg[o * ldw + c * taps + (P.a + 2 * (P.U - 1 - u)) * s.kw +
                     (P.b + 2 * (P.V - 1 - v))];
      DirectConv d = input_gradient_pass(
          s, g, Window{s.outH, s.outW, P.padH, P.padW, 1, 1, 1, 1, P.U, P.V, P.PH, P.PW}, false, At,
          K, gy);
      // Image n's planes of phase k at buf + n * cg * perPlane + at[k] * cg, channel by channel.
      d.C = buf + at[k] * cg;
      d.cImageStride = cg * perPlane;
      run_direct(d, s.batch);
    }
    // One pass over gx: each row from the two phases of its parity, interleaved (zeros for a
    // phase no tap reaches).
    const int64_t planes = s.batch * cg;
    parallel_run(planes * inPlane < (1 << 15) ? 1 : get_num_threads(), [&](int t, int n) {
      int64_t lo, hi;
      split_range(planes, 1, t, n, &lo, &hi);
      for (int64_t pl = lo; pl < hi; ++pl) {
        const int64_t img = pl / cg, c = pl % cg;
        float* dst = gx + img * s.inChannels * inPlane + (g * cg + c) * inPlane;
        const float* base = buf + img * cg * perPlane;
        for (int64_t ih = 0; ih < s.inH; ++ih) {
          const int64_t a = (ih + s.padH) % 2;
          float* row = dst + ih * s.inW;
          for (int64_t b = 0; b < 2; ++b) {
            const Phase& P = phases[2 * a + b];
            const int64_t col0 = 2 * P.pw0 + b - s.padW;  // 0 or 1
            if (P.PW == 0) continue;
            const int64_t q = (ih - (2 * P.ph0 + a - s.padH)) / 2;
            const float* from =
                P.empty() ? nullptr : base + at[2 * a + b] * cg + c * P.PH * P.PW + q * P.PW;
            float* out = row + col0;
            if (from == nullptr) {
              if (!accumulate)
                for (int64_t r = 0; r < P.PW; ++r) out[2 * r] = 0.0f;
            } else if (accumulate) {
              for (int64_t r = 0; r < P.PW; ++r) out[2 * r] = out[2 * r] + from[r];
            } else {
              for (int64_t r = 0; r < P.PW; ++r) out[2 * r] = from[r];
            }
          }
        }
      }
    });
  }
  note_conv_path(ConvPass::kBackwardInput, "direct");
  return true;
}

}  // namespace

bool conv_implicit_backward_input(const ConvShape& s, const float* gy, const float* w, float* gx,
                                  bool accumulate) {
  if (backward_input_phases(s, gy, w, gx, accumulate)) return true;
  if (!implicit_applies(s) || s.strideH != 1) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const SgemmKernel* kern = conv_kernel(cg, s.batch * s.inH * s.inW);
  if (!kern) return false;
  const int64_t taps = s.kh * s.kw, K = og * taps, ldw = s.weightInPerGroup * taps;
  const int64_t inPlane = s.inH * s.inW, plane = s.outH * s.outW;
  for (int64_t g = 0; g < s.groups; ++g) {
    // A(c, (o, i, j)) = w[o, c, kh - 1 - i, kw - 1 - j]: flipped in space, transposed.
    float* At = tl_weight.get(static_cast<size_t>(cg * K));
    const float* wg = w + g * og * ldw;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t o = 0; o < og; ++o)
        for (int64_t t = 0; t < taps; ++t)
          At[c * K + o * taps + t] = wg[o * ldw + c * taps + (taps - 1 - t)];
    const int64_t padH = s.dilationH * (s.kh - 1) - s.padH,
                  padW = s.dilationW * (s.kw - 1) - s.padW;
    const bool flat =
        flat_applies(s.inH, s.inW, s.outW, padH, padW, 1, 1) && flat_pays(*fast_isa(), cg);
    if (flat || direct_applies(s.inW, padH, padW, 1)) {
      // The input gradient is a stride-1 convolution of gy with the flipped weight.
      DirectConv d = input_gradient_pass(s, g,
                                         Window{s.outH, s.outW, padH, padW, 1, 1, s.dilationH,
                                                s.dilationW, s.kh, s.kw, s.inH, s.inW},
                                         flat, At, K, gy);
      d.C = gx + g * cg * inPlane;
      d.cImageStride = s.inChannels * inPlane;
      d.bias = nullptr;
      d.accumulate = accumulate;
      run_direct(d, s.batch);
      note_conv_path(ConvPass::kBackwardInput, flat ? "flat" : "direct");
      continue;
    }
    note_conv_path(ConvPass::kBackwardInput, "implicit");
    ColumnGemm cg_{};
    cg_.isa = fast_isa();
    cg_.kern = kern;
    cg_.M = cg;
    cg_.K = K;
    cg_.src = patch_source(gy + g * og * plane, s.outChannels * plane, s.outH, s.outW, s,
                           s.dilationH * (s.kh - 1) - s.padH, s.dilationW * (s.kw - 1) - s.padW, 1,
                           s.inH, s.inW);
    cg_.C = gx + g * cg * inPlane;
    cg_.cImageStride = s.inChannels * inPlane;
    cg_.beta = accumulate ? 1.0f : 0.0f;
    cg_.bias = nullptr;
    const int64_t blocks = ceil_div(K, kForwardDepth);
    cg_.Apack = pack_weight_rows(*kern, cg, K, ceil_div(K, blocks), At, K);
    run_column_gemm(cg_, s.batch);
  }
  return true;
}

bool conv_implicit_backward_weight(const ConvShape& s, const float* gy, const float* x, float* gw,
                                   const InputTransform* t) {
  if (!fast_applies(s)) return false;
  const int64_t cg = s.inChannels / s.groups, og = s.outChannels / s.groups;
  const SgemmKernel* kern = conv_kernel(og);
  if (!kern) return false;
  const int64_t N = cg * s.kh * s.kw, ldw = s.weightInPerGroup * s.kh * s.kw;
  const int64_t inPlane = s.inH * s.inW, plane = s.outH * s.outW;
  const bool flat = flat_window(s) && N <= kFlatWeightRows;
  if (flat || direct_applies(s.outW, s.padH, s.padW, s.strideW)) {
    for (int64_t g = 0; g < s.groups; ++g) {
      DirectWeight d{};
      d.isa = fast_isa();
      d.flat = flat;
      d.MR = d.isa->weightRows;
      d.NT = d.isa->weightPatchRows;
      d.M = og;
      d.N = N;
      d.channels = cg;
      d.gy = gy + g * og * plane;
      d.gyImageStride = s.outChannels * plane;
      d.src = x + g * cg * inPlane;
      d.srcImageStride = s.inChannels * inPlane;
      d.t = t;
      d.tImageStride = s.inChannels;
      d.tChannel0 = g * cg;
      set_window(d, forward_window(s));
      d.batch = s.batch;
      d.gw = gw + g * og * ldw;
      d.ldw = ldw;
      const int64_t tiles = ceil_div(og, d.MR) * ceil_div(N, d.NT);
      const int nt = threads_for(double(og) * N * s.batch * plane, tiles);
      parallel_run(nt, [&](int t, int n) {
        int64_t lo, hi;
        split_range(tiles, 1, t, n, &lo, &hi);
        if (lo < hi) direct_weight_tiles(d, lo, hi);
      });
    }
    note_conv_path(ConvPass::kBackwardWeight, flat ? "flat" : "direct");
    return true;
  }
  if (s.strideW != 1 || t != nullptr) return false;
  // The transposed patch packing below costs more than the per-image im2col GEMMs once
  // output rows are 16 pixels or longer (measured at 14x14: 55 vs 74 GFLOP/s at 64
  // channels); it wins on narrow images (8x8: 56 vs 48).
  if (s.outW >= 16) return false;
  if (kern->nr % 16 != 0) return false;
  note_conv_path(ConvPass::kBackwardWeight, "implicit");
  const int64_t depth = kWeightDepth;
  const int64_t chunks = ceil_div(plane, depth);
  const int64_t chunk = ceil_div(ceil_div(plane, chunks), 16) * 16;
  for (int64_t g = 0; g < s.groups; ++g) {
    WeightGemm wg{};
    wg.isa = fast_isa();
    wg.kern = kern;
    wg.M = og;
    wg.N = N;
    wg.gy = gy + g * og * plane;
    wg.gyImageStride = s.outChannels * plane;
    wg.plane = plane;
    wg.src = patch_source(x + g * cg * inPlane, s.inChannels * inPlane, s.inH, s.inW, s, s.padH,
                          s.padW, s.strideH, s.outH, s.outW);
    wg.batch = s.batch;
    wg.chunk = std::min(chunk, plane);
    wg.gw = gw + g * og * ldw;
    wg.ldw = ldw;
    const int64_t tiles = ceil_div(N, kern->nr) * ceil_div(og, kern->mr);
    const int nt = threads_for(double(og) * N * s.batch * plane, tiles);
    parallel_run(nt, [&](int t, int n) {
      int64_t lo, hi;
      split_range(tiles, 1, t, n, &lo, &hi);
      if (lo < hi) weight_tiles(wg, lo, hi);
    });
  }
  return true;
}

#else  // not x86: the im2col path only

bool conv_implicit_forward_runs(const ConvShape&) { return false; }
bool conv_implicit_forward(const ConvShape&, const float*, const float*, const float*, float*, bool,
                           const InputTransform*, const OutputStats*, bool*, const float*, bool*) {
  return false;
}
bool conv_implicit_backward_input(const ConvShape&, const float*, const float*, float*, bool) {
  return false;
}
bool conv_implicit_backward_weight(const ConvShape&, const float*, const float*, float*,
                                   const InputTransform*) {
  return false;
}

#endif  // MODELSLICE_X86

}  // namespace modelslice
