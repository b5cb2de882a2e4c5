// The only file that knows N-API. Each function checks that every length,
// offset and leading dimension fits the buffers it was handed (the TypeScript
// ops have already checked shapes; this is the second door), then forwards raw
// pointers to a kernel. Errors surface as JavaScript TypeError / RangeError.
#include <napi.h>

#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "conv.h"
#include "elementwise.h"
#include "gemm.h"
#include "norm.h"
#include "parallel.h"
#include "pool.h"
#include "rowwise.h"

namespace ms = modelslice;

namespace {

// 2^53: every integer below is exact in a double.
constexpr double kMaxSafe = 9007199254740992.0;

struct Span {
  float* data;
  int64_t length;
};

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

Span GetFloats(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowType(env, std::string(fn) + ": " + name + " must be a Float32Array");
  auto arr = info[i].As<Napi::Float32Array>();
  return {arr.Data(), static_cast<int64_t>(arr.ElementLength())};
}

int64_t GetIndex(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber())
    ThrowType(env, std::string(fn) + ": " + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v > kMaxSafe || std::floor(v) != v)
    ThrowRange(env, std::string(fn) + ": " + name + " must be a non-negative integer, got " +
                        std::to_string(v));
  return static_cast<int64_t>(v);
}

double GetNumber(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber())
    ThrowType(env, std::string(fn) + ": " + name + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool GetBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsBoolean())
    ThrowType(env, std::string(fn) + ": " + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

Span GetOptionalFloats(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return {nullptr, 0};
  return GetFloats(info, i, fn, name);
}

// Reads `count` non-negative integers from a JavaScript array argument.
void GetIndexArray(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                   int64_t* out, uint32_t count) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray())
    ThrowType(env, std::string(fn) + ": " + name + " must be an array");
  auto arr = info[i].As<Napi::Array>();
  if (arr.Length() != count)
    ThrowRange(env,
               std::string(fn) + ": " + name + " must have " + std::to_string(count) + " entries");
  for (uint32_t d = 0; d < count; ++d) {
    Napi::Value v = arr.Get(d);
    double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x > kMaxSafe || std::floor(x) != x)
      ThrowRange(env, std::string(fn) + ": " + name + " entries must be non-negative integers");
    out[d] = static_cast<int64_t>(x);
  }
}

// Products of sizes that could overflow int64 are refused before use.
int64_t CheckedMul(Napi::Env env, int64_t a, int64_t b, const char* fn) {
  if (a != 0 && b > INT64_MAX / a) ThrowRange(env, std::string(fn) + ": size overflow");
  return a * b;
}

int64_t CheckedAdd(Napi::Env env, int64_t a, int64_t b, const char* fn) {
  if (b > INT64_MAX - a) ThrowRange(env, std::string(fn) + ": size overflow");
  return a + b;
}

// A rows x cols matrix at `offset` with leading dimension ld must fit in span.
void CheckMatrix(Napi::Env env, const Span& s, int64_t offset, int64_t rows, int64_t cols,
                 int64_t ld, const char* fn, const char* name) {
  std::string where = std::string(fn) + ": " + name;
  if (ld < cols || ld < 1)
    ThrowRange(env, where + " leading dimension " + std::to_string(ld) + " is smaller than its " +
                        std::to_string(cols) + " columns");
  if (rows == 0 || cols == 0) return;
  int64_t last = CheckedAdd(env, CheckedMul(env, rows - 1, ld, fn), cols, fn);
  if (offset > s.length || last > s.length - offset)
    ThrowRange(env, where + " of " + std::to_string(rows) + "x" + std::to_string(cols) +
                        " (leading dimension " + std::to_string(ld) + ", offset " +
                        std::to_string(offset) + ") does not fit its buffer of " +
                        std::to_string(s.length) + " elements");
}

void CheckLength(Napi::Env env, const Span& s, int64_t need, const char* fn, const char* name) {
  if (s.length < need)
    ThrowRange(env, std::string(fn) + ": " + name + " has " + std::to_string(s.length) +
                        " elements, needs " + std::to_string(need));
}

// A buffer region a kernel reads or writes: [begin, end) in memory.
struct Region {
  const char* name;
  const float* begin;
  const float* end;
};

Region Whole(const char* name, const Span& s) { return {name, s.data, s.data + s.length}; }

// A kernel writes its outputs while it reads its inputs, in blocks and on
// several threads: an output that shares memory with an input (or another
// output) would make it read values it has already overwritten. Typed arrays
// that view one ArrayBuffer can do that, so the regions are checked here.
// Elementwise kernels may write over an input exactly (the same region: in
// place), never partly.
void CheckDisjoint(Napi::Env env, const char* fn, std::initializer_list<Region> writes,
                   std::initializer_list<Region> reads, bool inPlaceAllowed = false) {
  auto overlaps = [](const Region& a, const Region& b) {
    bool empty = a.begin == nullptr || b.begin == nullptr || a.begin == a.end || b.begin == b.end;
    return !empty && a.begin < b.end && b.begin < a.end;
  };
  auto fail = [&](const Region& w, const Region& r) {
    ThrowRange(env, std::string(fn) + ": " + w.name + " shares memory with " + r.name +
                        "; a kernel's outputs must not overlap its inputs or each other");
  };
  for (auto w = writes.begin(); w != writes.end(); ++w) {
    for (auto o = w + 1; o != writes.end(); ++o)
      if (overlaps(*w, *o)) fail(*w, *o);
    for (const Region& r : reads) {
      bool inPlace = inPlaceAllowed && w->begin == r.begin && w->end == r.end;
      if (overlaps(*w, r) && !inPlace) fail(*w, r);
    }
  }
}

// gemm(transA, transB, M, N, K, alpha, A, aOffset, lda, B, bOffset, ldb, beta, C, cOffset, ldc)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* fn = "gemm";
  Napi::Env env = info.Env();
  bool ta = GetBool(info, 0, fn, "transA"), tb = GetBool(info, 1, fn, "transB");
  int64_t M = GetIndex(info, 2, fn, "M"), N = GetIndex(info, 3, fn, "N"),
          K = GetIndex(info, 4, fn, "K");
  float alpha = static_cast<float>(GetNumber(info, 5, fn, "alpha"));
  Span A = GetFloats(info, 6, fn, "A");
  int64_t aOff = GetIndex(info, 7, fn, "aOffset"), lda = GetIndex(info, 8, fn, "lda");
  Span B = GetFloats(info, 9, fn, "B");
  int64_t bOff = GetIndex(info, 10, fn, "bOffset"), ldb = GetIndex(info, 11, fn, "ldb");
  float beta = static_cast<float>(GetNumber(info, 12, fn, "beta"));
  Span C = GetFloats(info, 13, fn, "C");
  int64_t cOff = GetIndex(info, 14, fn, "cOffset"), ldc = GetIndex(info, 15, fn, "ldc");
  if (ta)
    CheckMatrix(env, A, aOff, K, M, lda, fn, "A");
  else
    CheckMatrix(env, A, aOff, M, K, lda, fn, "A");
  if (tb)
    CheckMatrix(env, B, bOff, N, K, ldb, fn, "B");
  else
    CheckMatrix(env, B, bOff, K, N, ldb, fn, "B");
  CheckMatrix(env, C, cOff, M, N, ldc, fn, "C");
  if (M == 0 || N == 0) return env.Undefined();
  // Only the regions the call touches: operands may be views of one buffer at offsets.
  auto region = [](const char* name, const Span& s, int64_t off, int64_t rows, int64_t cols,
                   int64_t ld) -> Region {
    if (rows == 0 || cols == 0) return {name, nullptr, nullptr};
    return {name, s.data + off, s.data + off + (rows - 1) * ld + cols};
  };
  CheckDisjoint(env, fn, {region("C", C, cOff, M, N, ldc)},
                {ta ? region("A", A, aOff, K, M, lda) : region("A", A, aOff, M, K, lda),
                 tb ? region("B", B, bOff, N, K, ldb) : region("B", B, bOff, K, N, ldb)});
  ms::sgemm(ta, tb, M, N, K, alpha, A.data + aOff, lda, B.data + bOff, ldb, beta, C.data + cOff,
            ldc);
  return env.Undefined();
}

// Reads a shape and strides given as JavaScript arrays into fixed arrays and
// returns the largest element offset the strides can reach (+1).
int ReadShape(const Napi::CallbackInfo& info, size_t i, const char* fn, int64_t* shape,
              int64_t* count) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray())
    ThrowType(env, std::string(fn) + ": shape must be an array");
  auto arr = info[i].As<Napi::Array>();
  if (arr.Length() > static_cast<uint32_t>(ms::kMaxDims))
    ThrowRange(env, std::string(fn) + ": at most " + std::to_string(ms::kMaxDims) + " dimensions");
  int rank = static_cast<int>(arr.Length());
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(d));
    double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x > kMaxSafe || std::floor(x) != x)
      ThrowRange(env, std::string(fn) + ": shape entries must be non-negative integers");
    shape[d] = static_cast<int64_t>(x);
    n = CheckedMul(env, n, shape[d], fn);
  }
  *count = n;
  return rank;
}

// Strides for an operand of `rank` dims; returns the extent (max offset + 1) it
// reaches over `shape`, or 0 when the shape is empty.
int64_t ReadStrides(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                    int rank, const int64_t* shape, int64_t* strides) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray())
    ThrowType(env, std::string(fn) + ": " + name + " must be an array");
  auto arr = info[i].As<Napi::Array>();
  if (static_cast<int>(arr.Length()) != rank)
    ThrowRange(env, std::string(fn) + ": " + name + " must have one entry per dimension");
  int64_t extent = 0;
  for (int d = 0; d < rank; ++d) {
    Napi::Value v = arr.Get(static_cast<uint32_t>(d));
    double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x > kMaxSafe || std::floor(x) != x)
      ThrowRange(env, std::string(fn) + ": " + name + " entries must be non-negative integers");
    strides[d] = static_cast<int64_t>(x);
    if (shape[d] == 0) return 0;
    extent = CheckedAdd(env, extent, CheckedMul(env, strides[d], shape[d] - 1, fn), fn);
  }
  return CheckedAdd(env, extent, 1, fn);
}

// binary(op, shape, a, aStrides, b, bStrides, out)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* fn = "binary";
  Napi::Env env = info.Env();
  int64_t op = GetIndex(info, 0, fn, "op");
  if (op > 1) ThrowRange(env, "binary: unknown op");
  int64_t shape[ms::kMaxDims], sa[ms::kMaxDims], sb[ms::kMaxDims], count;
  int rank = ReadShape(info, 1, fn, shape, &count);
  Span a = GetFloats(info, 2, fn, "a");
  int64_t ea = ReadStrides(info, 3, fn, "aStrides", rank, shape, sa);
  Span b = GetFloats(info, 4, fn, "b");
  int64_t eb = ReadStrides(info, 5, fn, "bStrides", rank, shape, sb);
  Span out = GetFloats(info, 6, fn, "out");
  CheckLength(env, a, ea, fn, "a");
  CheckLength(env, b, eb, fn, "b");
  CheckLength(env, out, count, fn, "out");
  if (count == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("out", out)}, {Whole("a", a), Whole("b", b)}, true);
  ms::binary_broadcast(static_cast<ms::BinaryOp>(op), rank, shape, a.data, sa, b.data, sb,
                       out.data);
  return env.Undefined();
}

// sumTo(shape, g, scale, acc, accStrides): acc[strided] += scale * g
Napi::Value SumTo(const Napi::CallbackInfo& info) {
  const char* fn = "sumTo";
  Napi::Env env = info.Env();
  int64_t shape[ms::kMaxDims], sacc[ms::kMaxDims], count;
  int rank = ReadShape(info, 0, fn, shape, &count);
  Span g = GetFloats(info, 1, fn, "g");
  float scale = static_cast<float>(GetNumber(info, 2, fn, "scale"));
  Span acc = GetFloats(info, 3, fn, "acc");
  int64_t e = ReadStrides(info, 4, fn, "accStrides", rank, shape, sacc);
  CheckLength(env, g, count, fn, "g");
  CheckLength(env, acc, e, fn, "acc");
  if (count == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("acc", acc)}, {Whole("g", g)});
  ms::sum_to_strided(rank, shape, g.data, scale, acc.data, sacc);
  return env.Undefined();
}

// mulGrad(shape, g, other, otherStrides, acc, accStrides): acc[strided] += g * other[strided]
Napi::Value MulGrad(const Napi::CallbackInfo& info) {
  const char* fn = "mulGrad";
  Napi::Env env = info.Env();
  int64_t shape[ms::kMaxDims], so[ms::kMaxDims], sacc[ms::kMaxDims], count;
  int rank = ReadShape(info, 0, fn, shape, &count);
  Span g = GetFloats(info, 1, fn, "g");
  Span other = GetFloats(info, 2, fn, "other");
  int64_t eo = ReadStrides(info, 3, fn, "otherStrides", rank, shape, so);
  Span acc = GetFloats(info, 4, fn, "acc");
  int64_t ea = ReadStrides(info, 5, fn, "accStrides", rank, shape, sacc);
  CheckLength(env, g, count, fn, "g");
  CheckLength(env, other, eo, fn, "other");
  CheckLength(env, acc, ea, fn, "acc");
  if (count == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("acc", acc)}, {Whole("g", g), Whole("other", other)});
  ms::mul_grad_strided(rank, shape, g.data, other.data, so, acc.data, sacc);
  return env.Undefined();
}

// relu(x, y)
Napi::Value Relu(const Napi::CallbackInfo& info) {
  const char* fn = "relu";
  Napi::Env env = info.Env();
  Span x = GetFloats(info, 0, fn, "x"), y = GetFloats(info, 1, fn, "y");
  CheckLength(info.Env(), y, x.length, fn, "y");
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x)}, true);
  ms::relu_forward(x.length, x.data, y.data);
  return info.Env().Undefined();
}

// reluBackward(x, gy, gx): gx += gy * (x > 0)
Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const char* fn = "reluBackward";
  Napi::Env env = info.Env();
  Span x = GetFloats(info, 0, fn, "x"), gy = GetFloats(info, 1, fn, "gy"),
       gx = GetFloats(info, 2, fn, "gx");
  CheckLength(info.Env(), gy, x.length, fn, "gy");
  CheckLength(info.Env(), gx, x.length, fn, "gx");
  CheckDisjoint(env, fn, {Whole("gx", gx)}, {Whole("x", x), Whole("gy", gy)}, true);
  ms::relu_backward(x.length, x.data, gy.data, gx.data);
  return info.Env().Undefined();
}

// axpy(n, alpha, x, y): y[:n] += alpha * x[:n]
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* fn = "axpy";
  Napi::Env env = info.Env();
  int64_t n = GetIndex(info, 0, fn, "n");
  float alpha = static_cast<float>(GetNumber(info, 1, fn, "alpha"));
  Span x = GetFloats(info, 2, fn, "x"), y = GetFloats(info, 3, fn, "y");
  CheckLength(info.Env(), x, n, fn, "x");
  CheckLength(info.Env(), y, n, fn, "y");
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x)}, true);
  ms::axpy(n, alpha, x.data, y.data);
  return info.Env().Undefined();
}

// addRowBias(rows, cols, bias, y, ldy)
Napi::Value AddRowBias(const Napi::CallbackInfo& info) {
  const char* fn = "addRowBias";
  Napi::Env env = info.Env();
  int64_t rows = GetIndex(info, 0, fn, "rows"), cols = GetIndex(info, 1, fn, "cols");
  Span bias = GetFloats(info, 2, fn, "bias"), y = GetFloats(info, 3, fn, "y");
  int64_t ldy = GetIndex(info, 4, fn, "ldy");
  CheckLength(env, bias, cols, fn, "bias");
  CheckMatrix(env, y, 0, rows, cols, ldy, fn, "y");
  // Nothing to do; and the kernels would still walk a huge count of empty rows.
  if (rows == 0 || cols == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("bias", bias)});
  ms::add_row_bias(rows, cols, bias.data, y.data, ldy);
  return env.Undefined();
}

// columnSums(rows, cols, g, ldg, acc): acc[:cols] += column sums of g
Napi::Value ColumnSums(const Napi::CallbackInfo& info) {
  const char* fn = "columnSums";
  Napi::Env env = info.Env();
  int64_t rows = GetIndex(info, 0, fn, "rows"), cols = GetIndex(info, 1, fn, "cols");
  Span g = GetFloats(info, 2, fn, "g");
  int64_t ldg = GetIndex(info, 3, fn, "ldg");
  Span acc = GetFloats(info, 4, fn, "acc");
  CheckMatrix(env, g, 0, rows, cols, ldg, fn, "g");
  CheckLength(env, acc, cols, fn, "acc");
  if (rows == 0 || cols == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("acc", acc)}, {Whole("g", g)});
  ms::column_sums(rows, cols, g.data, ldg, acc.data);
  return env.Undefined();
}

// softmax(rows, cols, x, y, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  const char* fn = "softmax";
  Napi::Env env = info.Env();
  int64_t rows = GetIndex(info, 0, fn, "rows"), cols = GetIndex(info, 1, fn, "cols");
  Span x = GetFloats(info, 2, fn, "x"), y = GetFloats(info, 3, fn, "y");
  bool log = GetBool(info, 4, fn, "log");
  int64_t n = CheckedMul(env, rows, cols, fn);
  CheckLength(env, x, n, fn, "x");
  CheckLength(env, y, n, fn, "y");
  if (n == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x)});
  ms::softmax_rows(rows, cols, x.data, y.data, log);
  return env.Undefined();
}

// softmaxBackward(rows, cols, y, gy, gx, log)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* fn = "softmaxBackward";
  Napi::Env env = info.Env();
  int64_t rows = GetIndex(info, 0, fn, "rows"), cols = GetIndex(info, 1, fn, "cols");
  Span y = GetFloats(info, 2, fn, "y"), gy = GetFloats(info, 3, fn, "gy"),
       gx = GetFloats(info, 4, fn, "gx");
  bool log = GetBool(info, 5, fn, "log");
  int64_t n = CheckedMul(env, rows, cols, fn);
  CheckLength(env, y, n, fn, "y");
  CheckLength(env, gy, n, fn, "gy");
  CheckLength(env, gx, n, fn, "gx");
  if (n == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("gx", gx)}, {Whole("y", y), Whole("gy", gy)});
  ms::softmax_rows_backward(rows, cols, y.data, gy.data, gx.data, log);
  return env.Undefined();
}

// Conv params: [N, C, H, W, O, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW,
// groups, weightInPerGroup]. Validates them against every buffer.
ms::ConvShape ReadConvShape(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  int64_t p[15];
  GetIndexArray(info, 0, fn, "params", p, 15);
  ms::ConvShape s{p[0], p[1],  p[2],  p[3],  p[4],  p[5],  p[6], p[7], p[8],
                  p[9], p[10], p[11], p[12], p[13], p[14], 0,    0};
  if (s.kh < 1 || s.kw < 1 || s.strideH < 1 || s.strideW < 1 || s.dilationH < 1 ||
      s.dilationW < 1 || s.groups < 1 || s.weightInPerGroup < 1)
    ThrowRange(env, std::string(fn) + ": kernel, stride, dilation and groups must be >= 1");
  if (s.inChannels % s.groups != 0 || s.outChannels % s.groups != 0)
    ThrowRange(env, std::string(fn) + ": channels must be divisible by groups");
  if (s.inChannels / s.groups > s.weightInPerGroup)
    ThrowRange(env, std::string(fn) + ": more input channels per group than the weight has");
  // Bound every size first so conv_out_size and the products below cannot overflow.
  for (int64_t v : p)
    if (v > (int64_t{1} << 31)) ThrowRange(env, std::string(fn) + ": size too large");
  s.outH = ms::conv_out_size(s.inH, s.kh, s.strideH, s.padH, s.dilationH);
  s.outW = ms::conv_out_size(s.inW, s.kw, s.strideW, s.padW, s.dilationW);
  if (s.outH < 0 || s.outW < 0)
    ThrowRange(env, std::string(fn) + ": kernel larger than the padded input");
  return s;
}

int64_t ConvWeightNeed(Napi::Env env, const ms::ConvShape& s, const char* fn) {
  if (s.outChannels == 0) return 0;
  int64_t ldw = CheckedMul(env, s.weightInPerGroup, CheckedMul(env, s.kh, s.kw, fn), fn);
  return CheckedAdd(env, CheckedMul(env, s.outChannels - 1, ldw, fn),
                    CheckedMul(env, s.inChannels / s.groups, CheckedMul(env, s.kh, s.kw, fn), fn),
                    fn);
}

int64_t ConvInputSize(Napi::Env env, const ms::ConvShape& s, const char* fn) {
  return CheckedMul(env, CheckedMul(env, s.batch, s.inChannels, fn),
                    CheckedMul(env, s.inH, s.inW, fn), fn);
}

int64_t ConvOutputSize(Napi::Env env, const ms::ConvShape& s, const char* fn) {
  return CheckedMul(env, CheckedMul(env, s.batch, s.outChannels, fn),
                    CheckedMul(env, s.outH, s.outW, fn), fn);
}

// conv2dForward(params, x, w, bias | null, y)
Napi::Value Conv2dForward(const Napi::CallbackInfo& info) {
  const char* fn = "conv2dForward";
  Napi::Env env = info.Env();
  ms::ConvShape s = ReadConvShape(info, fn);
  Span x = GetFloats(info, 1, fn, "x"), w = GetFloats(info, 2, fn, "w");
  Span bias = GetOptionalFloats(info, 3, fn, "bias");
  Span y = GetFloats(info, 4, fn, "y");
  const bool accumulate =
      info.Length() > 5 && !info[5].IsUndefined() && GetBool(info, 5, fn, "accumulate");
  CheckLength(env, x, ConvInputSize(env, s, fn), fn, "x");
  CheckLength(env, w, ConvWeightNeed(env, s, fn), fn, "w");
  if (bias.data) CheckLength(env, bias, s.outChannels, fn, "bias");
  CheckLength(env, y, ConvOutputSize(env, s, fn), fn, "y");
  if (accumulate && (s.groups != 1 || bias.data))
    ThrowRange(env, "conv2dForward: accumulate needs groups 1 and no bias");
  if (ConvOutputSize(env, s, fn) == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x), Whole("w", w), Whole("bias", bias)});
  ms::conv2d_forward(s, x.data, w.data, bias.data, y.data, accumulate);
  return env.Undefined();
}

// conv2dBackwardInput(params, gy, w, gx, accumulate = true): false writes gx without reading it.
Napi::Value Conv2dBackwardInput(const Napi::CallbackInfo& info) {
  const char* fn = "conv2dBackwardInput";
  Napi::Env env = info.Env();
  ms::ConvShape s = ReadConvShape(info, fn);
  Span gy = GetFloats(info, 1, fn, "gy"), w = GetFloats(info, 2, fn, "w"),
       gx = GetFloats(info, 3, fn, "gx");
  const bool accumulate =
      info.Length() <= 4 || info[4].IsUndefined() || GetBool(info, 4, fn, "accumulate");
  CheckLength(env, gy, ConvOutputSize(env, s, fn), fn, "gy");
  CheckLength(env, w, ConvWeightNeed(env, s, fn), fn, "w");
  CheckLength(env, gx, ConvInputSize(env, s, fn), fn, "gx");
  if (ConvOutputSize(env, s, fn) == 0 || ConvInputSize(env, s, fn) == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("gx", gx)}, {Whole("gy", gy), Whole("w", w)});
  ms::conv2d_backward_input(s, gy.data, w.data, gx.data, accumulate);
  return env.Undefined();
}

// conv2dBackwardWeight(params, gy, x, gw)
Napi::Value Conv2dBackwardWeight(const Napi::CallbackInfo& info) {
  const char* fn = "conv2dBackwardWeight";
  Napi::Env env = info.Env();
  ms::ConvShape s = ReadConvShape(info, fn);
  Span gy = GetFloats(info, 1, fn, "gy"), x = GetFloats(info, 2, fn, "x"),
       gw = GetFloats(info, 3, fn, "gw");
  CheckLength(env, gy, ConvOutputSize(env, s, fn), fn, "gy");
  CheckLength(env, x, ConvInputSize(env, s, fn), fn, "x");
  CheckLength(env, gw, ConvWeightNeed(env, s, fn), fn, "gw");
  if (ConvOutputSize(env, s, fn) == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("gw", gw)}, {Whole("gy", gy), Whole("x", x)});
  ms::conv2d_backward_weight(s, gy.data, x.data, gw.data);
  return env.Undefined();
}

// conv2dBackwardBias(params, gy, gb)
Napi::Value Conv2dBackwardBias(const Napi::CallbackInfo& info) {
  const char* fn = "conv2dBackwardBias";
  Napi::Env env = info.Env();
  ms::ConvShape s = ReadConvShape(info, fn);
  Span gy = GetFloats(info, 1, fn, "gy"), gb = GetFloats(info, 2, fn, "gb");
  CheckLength(env, gy, ConvOutputSize(env, s, fn), fn, "gy");
  CheckLength(env, gb, s.outChannels, fn, "gb");
  CheckDisjoint(env, fn, {Whole("gb", gb)}, {Whole("gy", gy)});
  ms::conv2d_backward_bias(s, gy.data, gb.data);
  return env.Undefined();
}

// Pool params at argument `index`: [planes, H, W, kh, kw, strideH, strideW, padH, padW].
ms::PoolShape ReadPoolShape(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Env env = info.Env();
  int64_t p[9];
  GetIndexArray(info, index, fn, "params", p, 9);
  for (int64_t v : p)
    if (v > (int64_t{1} << 31)) ThrowRange(env, std::string(fn) + ": size too large");
  ms::PoolShape s{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], 0, 0};
  if (s.kh < 1 || s.kw < 1 || s.strideH < 1 || s.strideW < 1)
    ThrowRange(env, std::string(fn) + ": kernel and stride must be >= 1");
  if (s.padH * 2 > s.kh || s.padW * 2 > s.kw)
    ThrowRange(env, std::string(fn) + ": padding must be at most half the kernel");
  s.outH = ms::conv_out_size(s.inH, s.kh, s.strideH, s.padH, 1);
  s.outW = ms::conv_out_size(s.inW, s.kw, s.strideW, s.padW, 1);
  if (s.outH < 0 || s.outW < 0)
    ThrowRange(env, std::string(fn) + ": kernel larger than the padded input");
  return s;
}

// poolForward(kind, params, x, y): kind 0 = max, 1 = average
Napi::Value PoolForward(const Napi::CallbackInfo& info) {
  const char* fn = "poolForward";
  Napi::Env env = info.Env();
  int64_t kind = GetIndex(info, 0, fn, "kind");
  if (kind > 1) ThrowRange(env, std::string(fn) + ": unknown kind");
  ms::PoolShape s = ReadPoolShape(info, 1, fn);
  Span x = GetFloats(info, 2, fn, "x"), y = GetFloats(info, 3, fn, "y");
  CheckLength(env, x, CheckedMul(env, s.planes, s.inH * s.inW, fn), fn, "x");
  CheckLength(env, y, CheckedMul(env, s.planes, s.outH * s.outW, fn), fn, "y");
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x)});
  if (kind == 0)
    ms::max_pool_forward(s, x.data, y.data);
  else
    ms::avg_pool_forward(s, x.data, y.data);
  return env.Undefined();
}

// poolBackward(kind, params, x, gy, gx): gx += the pooled gradient
Napi::Value PoolBackward(const Napi::CallbackInfo& info) {
  const char* fn = "poolBackward";
  Napi::Env env = info.Env();
  int64_t kind = GetIndex(info, 0, fn, "kind");
  if (kind > 1) ThrowRange(env, std::string(fn) + ": unknown kind");
  ms::PoolShape s = ReadPoolShape(info, 1, fn);
  Span x = GetFloats(info, 2, fn, "x"), gy = GetFloats(info, 3, fn, "gy"),
       gx = GetFloats(info, 4, fn, "gx");
  int64_t inSize = CheckedMul(env, s.planes, s.inH * s.inW, fn);
  CheckLength(env, x, inSize, fn, "x");
  CheckLength(env, gy, CheckedMul(env, s.planes, s.outH * s.outW, fn), fn, "gy");
  CheckLength(env, gx, inSize, fn, "gx");
  CheckDisjoint(env, fn, {Whole("gx", gx)}, {Whole("x", x), Whole("gy", gy)});
  if (kind == 0)
    ms::max_pool_backward(s, x.data, gy.data, gx.data);
  else
    ms::avg_pool_backward(s, gy.data, gx.data);
  return env.Undefined();
}

// globalAvgPool(planes, size, x, y)
Napi::Value GlobalAvgPool(const Napi::CallbackInfo& info) {
  const char* fn = "globalAvgPool";
  Napi::Env env = info.Env();
  int64_t planes = GetIndex(info, 0, fn, "planes"), size = GetIndex(info, 1, fn, "size");
  Span x = GetFloats(info, 2, fn, "x"), y = GetFloats(info, 3, fn, "y");
  if (size == 0) ThrowRange(env, std::string(fn) + ": planes must not be empty");
  CheckLength(env, x, CheckedMul(env, planes, size, fn), fn, "x");
  CheckLength(env, y, planes, fn, "y");
  CheckDisjoint(env, fn, {Whole("y", y)}, {Whole("x", x)});
  ms::global_avg_pool_forward(planes, size, x.data, y.data);
  return env.Undefined();
}

// globalAvgPoolBackward(planes, size, gy, gx)
Napi::Value GlobalAvgPoolBackward(const Napi::CallbackInfo& info) {
  const char* fn = "globalAvgPoolBackward";
  Napi::Env env = info.Env();
  int64_t planes = GetIndex(info, 0, fn, "planes"), size = GetIndex(info, 1, fn, "size");
  Span gy = GetFloats(info, 2, fn, "gy"), gx = GetFloats(info, 3, fn, "gx");
  if (size == 0) ThrowRange(env, std::string(fn) + ": planes must not be empty");
  CheckLength(env, gy, planes, fn, "gy");
  CheckLength(env, gx, CheckedMul(env, planes, size, fn), fn, "gx");
  CheckDisjoint(env, fn, {Whole("gx", gx)}, {Whole("gy", gy)});
  ms::global_avg_pool_backward(planes, size, gy.data, gx.data);
  return env.Undefined();
}

// Norm dims at arguments 0..2: batch, channels, spatial; returns their product.
int64_t ReadNormDims(const Napi::CallbackInfo& info, const char* fn, int64_t* n, int64_t* c,
                     int64_t* sp) {
  Napi::Env env = info.Env();
  *n = GetIndex(info, 0, fn, "batch");
  *c = GetIndex(info, 1, fn, "channels");
  *sp = GetIndex(info, 2, fn, "spatial");
  return CheckedMul(env, CheckedMul(env, *n, *c, fn), *sp, fn);
}

// groupNormForward(N, C, S, G, x, gamma|null, beta|null, eps, y, mean, rstd, relu?)
Napi::Value GroupNormForward(const Napi::CallbackInfo& info) {
  const char* fn = "groupNormForward";
  Napi::Env env = info.Env();
  int64_t n, c, sp;
  int64_t total = ReadNormDims(info, fn, &n, &c, &sp);
  int64_t g = GetIndex(info, 3, fn, "groups");
  if (g < 1 || c % g != 0) ThrowRange(env, std::string(fn) + ": groups must divide channels");
  Span x = GetFloats(info, 4, fn, "x");
  Span gamma = GetOptionalFloats(info, 5, fn, "gamma"),
       beta = GetOptionalFloats(info, 6, fn, "beta");
  float eps = static_cast<float>(GetNumber(info, 7, fn, "eps"));
  Span y = GetFloats(info, 8, fn, "y"), mean = GetFloats(info, 9, fn, "mean"),
       rstd = GetFloats(info, 10, fn, "rstd");
  const bool relu = info.Length() > 11 && !info[11].IsUndefined() && GetBool(info, 11, fn, "relu");
  CheckLength(env, x, total, fn, "x");
  CheckLength(env, y, total, fn, "y");
  if (gamma.data) CheckLength(env, gamma, c, fn, "gamma");
  if (beta.data) CheckLength(env, beta, c, fn, "beta");
  CheckLength(env, mean, CheckedMul(env, n, g, fn), fn, "mean");
  CheckLength(env, rstd, CheckedMul(env, n, g, fn), fn, "rstd");
  if (total == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("y", y), Whole("mean", mean), Whole("rstd", rstd)},
                {Whole("x", x), Whole("gamma", gamma), Whole("beta", beta)});
  ms::group_norm_forward(n, c, sp, g, x.data, gamma.data, beta.data, eps, y.data, mean.data,
                         rstd.data, relu);
  return env.Undefined();
}

// groupNormBackward(N, C, S, G, x, gy, gamma|null, mean, rstd, gx|null, ggamma|null, gbeta|null,
//                   reluOut|null, gxAccumulate = true): false writes gx without reading it.
Napi::Value GroupNormBackward(const Napi::CallbackInfo& info) {
  const char* fn = "groupNormBackward";
  Napi::Env env = info.Env();
  int64_t n, c, sp;
  int64_t total = ReadNormDims(info, fn, &n, &c, &sp);
  int64_t g = GetIndex(info, 3, fn, "groups");
  if (g < 1 || c % g != 0) ThrowRange(env, std::string(fn) + ": groups must divide channels");
  Span x = GetFloats(info, 4, fn, "x"), gy = GetFloats(info, 5, fn, "gy");
  Span gamma = GetOptionalFloats(info, 6, fn, "gamma");
  Span mean = GetFloats(info, 7, fn, "mean"), rstd = GetFloats(info, 8, fn, "rstd");
  Span gx = GetOptionalFloats(info, 9, fn, "gx"),
       ggamma = GetOptionalFloats(info, 10, fn, "ggamma"),
       gbeta = GetOptionalFloats(info, 11, fn, "gbeta");
  Span reluOut = GetOptionalFloats(info, 12, fn, "reluOut");
  const bool gxAccumulate =
      info.Length() <= 13 || info[13].IsUndefined() || GetBool(info, 13, fn, "gxAccumulate");
  if (reluOut.data) CheckLength(env, reluOut, total, fn, "reluOut");
  CheckLength(env, x, total, fn, "x");
  CheckLength(env, gy, total, fn, "gy");
  if (gamma.data) CheckLength(env, gamma, c, fn, "gamma");
  CheckLength(env, mean, CheckedMul(env, n, g, fn), fn, "mean");
  CheckLength(env, rstd, CheckedMul(env, n, g, fn), fn, "rstd");
  if (gx.data) CheckLength(env, gx, total, fn, "gx");
  if (ggamma.data) CheckLength(env, ggamma, c, fn, "ggamma");
  if (gbeta.data) CheckLength(env, gbeta, c, fn, "gbeta");
  if (total == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("gx", gx), Whole("ggamma", ggamma), Whole("gbeta", gbeta)},
                {Whole("x", x), Whole("gy", gy), Whole("gamma", gamma), Whole("mean", mean),
                 Whole("rstd", rstd), Whole("reluOut", reluOut)});
  ms::group_norm_backward(n, c, sp, g, x.data, gy.data, gamma.data, mean.data, rstd.data, gx.data,
                          ggamma.data, gbeta.data, reluOut.data, gxAccumulate);
  return env.Undefined();
}

// channelMoments(N, C, S, x, mean, var)
Napi::Value ChannelMoments(const Napi::CallbackInfo& info) {
  const char* fn = "channelMoments";
  Napi::Env env = info.Env();
  int64_t n, c, sp;
  int64_t total = ReadNormDims(info, fn, &n, &c, &sp);
  Span x = GetFloats(info, 3, fn, "x"), mean = GetFloats(info, 4, fn, "mean"),
       var = GetFloats(info, 5, fn, "var");
  if (CheckedMul(env, n, sp, fn) == 0) ThrowRange(env, std::string(fn) + ": no values per channel");
  CheckLength(env, x, total, fn, "x");
  CheckLength(env, mean, c, fn, "mean");
  CheckLength(env, var, c, fn, "var");
  CheckDisjoint(env, fn, {Whole("mean", mean), Whole("var", var)}, {Whole("x", x)});
  ms::channel_moments(n, c, sp, x.data, mean.data, var.data);
  return env.Undefined();
}

// channelAffine(N, C, S, x, scale, shift, y)
Napi::Value ChannelAffine(const Napi::CallbackInfo& info) {
  const char* fn = "channelAffine";
  Napi::Env env = info.Env();
  int64_t n, c, sp;
  int64_t total = ReadNormDims(info, fn, &n, &c, &sp);
  Span x = GetFloats(info, 3, fn, "x"), scale = GetFloats(info, 4, fn, "scale"),
       shift = GetFloats(info, 5, fn, "shift"), y = GetFloats(info, 6, fn, "y");
  CheckLength(env, x, total, fn, "x");
  CheckLength(env, scale, c, fn, "scale");
  CheckLength(env, shift, c, fn, "shift");
  CheckLength(env, y, total, fn, "y");
  if (total == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("y", y)},
                {Whole("x", x), Whole("scale", scale), Whole("shift", shift)}, true);
  ms::channel_affine(n, c, sp, x.data, scale.data, shift.data, y.data);
  return env.Undefined();
}

// batchNormBackward(N, C, S, x, gy, mean, rstd, gamma|null, training, gx|null, ggamma|null,
// gbeta|null)
Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  const char* fn = "batchNormBackward";
  Napi::Env env = info.Env();
  int64_t n, c, sp;
  int64_t total = ReadNormDims(info, fn, &n, &c, &sp);
  Span x = GetFloats(info, 3, fn, "x"), gy = GetFloats(info, 4, fn, "gy"),
       mean = GetFloats(info, 5, fn, "mean"), rstd = GetFloats(info, 6, fn, "rstd");
  Span gamma = GetOptionalFloats(info, 7, fn, "gamma");
  bool training = GetBool(info, 8, fn, "training");
  Span gx = GetOptionalFloats(info, 9, fn, "gx"),
       ggamma = GetOptionalFloats(info, 10, fn, "ggamma"),
       gbeta = GetOptionalFloats(info, 11, fn, "gbeta");
  CheckLength(env, x, total, fn, "x");
  CheckLength(env, gy, total, fn, "gy");
  CheckLength(env, mean, c, fn, "mean");
  CheckLength(env, rstd, c, fn, "rstd");
  if (gamma.data) CheckLength(env, gamma, c, fn, "gamma");
  if (gx.data) CheckLength(env, gx, total, fn, "gx");
  if (ggamma.data) CheckLength(env, ggamma, c, fn, "ggamma");
  if (gbeta.data) CheckLength(env, gbeta, c, fn, "gbeta");
  if (total == 0) return env.Undefined();
  CheckDisjoint(env, fn, {Whole("gx", gx), Whole("ggamma", ggamma), Whole("gbeta", gbeta)},
                {Whole("x", x), Whole("gy", gy), Whole("mean", mean), Whole("rstd", rstd),
                 Whole("gamma", gamma)});
  ms::batch_norm_backward(n, c, sp, x.data, gy.data, mean.data, rstd.data, gamma.data, training,
                          gx.data, ggamma.data, gbeta.data);
  return env.Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ms::get_num_threads());
}

// Sets the calling thread's kernel thread count (each Node worker thread has its own).
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = GetIndex(info, 0, "setNumThreads", "n");
  const int limit = ms::max_threads();
  if (n < 1 || n > limit)
    ThrowRange(info.Env(), "setNumThreads: n must be in [1, " + std::to_string(limit) + "] (" +
                               std::to_string(limit) + " = 4 threads per available core, at most " +
                               std::to_string(ms::kMaxThreadsCap) + "), got " + std::to_string(n));
  ms::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value KernelInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemm", ms::sgemm_kernel_name());
  o.Set("threads", ms::get_num_threads());
  o.Set("maxThreads", ms::max_threads());
  return o;
}

// The OS thread ids that ran the calling thread's last parallel kernel section.
Napi::Value LastParallelThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint64_t> ids = ms::last_parallel_threads();
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (uint32_t i = 0; i < ids.size(); ++i) out.Set(i, static_cast<double>(ids[i]));
  return out;
}

// The path the calling thread's last convolution of each pass took.
Napi::Value ConvPaths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("forward", ms::conv_last_path(ms::ConvPass::kForward));
  o.Set("backwardInput", ms::conv_last_path(ms::ConvPass::kBackwardInput));
  o.Set("backwardWeight", ms::conv_last_path(ms::ConvPass::kBackwardWeight));
  return o;
}

// For tests of the error path only: runs a two-thread job whose second share
// throws `kind` on a pool thread, as a failing kernel would.
Napi::Value TestThrowInKernel(const Napi::CallbackInfo& info) {
  const char* fn = "testThrowInKernel";
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString())
    ThrowType(env, std::string(fn) + ": kind must be a string");
  const std::string kind = info[0].As<Napi::String>().Utf8Value();
  if (kind != "bad_alloc" && kind != "system_error" && kind != "logic_error" && kind != "int")
    ThrowRange(env, std::string(fn) + ": unknown kind " + kind);
  ms::parallel_run(2, [&](int t, int) {
    if (t != 1) return;
    if (kind == "bad_alloc") throw std::bad_alloc();
    if (kind == "system_error")
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "thread");
    if (kind == "logic_error") throw std::logic_error("share 1 failed");
    throw 42;
  });
  return env.Undefined();
}

// Tensor buffers are large and short-lived. glibc serves every allocation
// above 32 MiB with a fresh mmap, and the page faults of first touching it cost
// more than the kernels (a 1x1 convolution 64 -> 256 at batch 64: 44 ms, of
// which the kernel is 12). Serving them from the heap lets freed buffers be
// reused. MODELSLICE_MALLOC=system keeps glibc's defaults.
void TuneAllocator() {
#if defined(__GLIBC__)
  const char* choice = std::getenv("MODELSLICE_MALLOC");
  if (choice != nullptr && std::strcmp(choice, "system") == 0) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif
}

// Every entry point runs inside Guarded: a C++ exception escaping a Node-API
// callback would end the process, so each becomes a JavaScript error naming
// the entry point (its name rides along as the function's data). A failed
// allocation (scratch space, or the checks' own strings) is a RangeError; a
// thread the system refused to start (std::system_error, say under a process
// thread or memory limit) and anything else an Error.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string fn = static_cast<const char*>(info.Data());
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, fn + ": out of memory for the kernel's scratch space");
  } catch (const std::system_error& e) {
    throw Napi::Error::New(env, fn + ": the system refused a kernel resource (" + e.what() +
                                    "); with fewer threads (setNumThreads) it may fit");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, fn + ": kernel failed: " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, fn + ": kernel failed with an unknown exception");
  }
}

// Every entry point goes out through Guarded, so none can let a C++ exception escape.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void Export(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, Guarded<F>, name,
                                        const_cast<void*>(static_cast<const void*>(name))));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TuneAllocator();
  // A worker thread's environment is torn down before its OS thread exits:
  // join its kernel threads now, so none outlive it.
  env.AddCleanupHook([] { ms::release_thread_pool(); });
  Export<Gemm>(env, exports, "gemm");
  Export<Binary>(env, exports, "binary");
  Export<SumTo>(env, exports, "sumTo");
  Export<MulGrad>(env, exports, "mulGrad");
  Export<Relu>(env, exports, "relu");
  Export<ReluBackward>(env, exports, "reluBackward");
  Export<Axpy>(env, exports, "axpy");
  Export<AddRowBias>(env, exports, "addRowBias");
  Export<ColumnSums>(env, exports, "columnSums");
  Export<Softmax>(env, exports, "softmax");
  Export<SoftmaxBackward>(env, exports, "softmaxBackward");
  Export<Conv2dForward>(env, exports, "conv2dForward");
  Export<Conv2dBackwardInput>(env, exports, "conv2dBackwardInput");
  Export<Conv2dBackwardWeight>(env, exports, "conv2dBackwardWeight");
  Export<Conv2dBackwardBias>(env, exports, "conv2dBackwardBias");
  Export<PoolForward>(env, exports, "poolForward");
  Export<PoolBackward>(env, exports, "poolBackward");
  Export<GlobalAvgPool>(env, exports, "globalAvgPool");
  Export<GlobalAvgPoolBackward>(env, exports, "globalAvgPoolBackward");
  Export<GroupNormForward>(env, exports, "groupNormForward");
  Export<GroupNormBackward>(env, exports, "groupNormBackward");
  Export<ChannelMoments>(env, exports, "channelMoments");
  Export<ChannelAffine>(env, exports, "channelAffine");
  Export<BatchNormBackward>(env, exports, "batchNormBackward");
  Export<GetNumThreads>(env, exports, "getNumThreads");
  Export<SetNumThreads>(env, exports, "setNumThreads");
  Export<KernelInfo>(env, exports, "kernelInfo");
  Export<LastParallelThreads>(env, exports, "lastParallelThreads");
  Export<ConvPaths>(env, exports, "convPaths");
  Export<TestThrowInKernel>(env, exports, "testThrowInKernel");
  return exports;
}

}  // namespace

NODE_API_MODULE(modelslice, Init)
