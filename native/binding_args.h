// Reading and checking a kernel call's JavaScript arguments: what the
// generated binders of kernel_checks.h are made of. Every reader refuses a
// value of the wrong type (TypeError) or out of range (RangeError) with a
// message that starts with the kernel's name and names the argument; sizes are
// computed in checked int64 arithmetic, so no product of hostile sizes can
// wrap round and pass a bounds check.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "conv.h"
#include "elementwise.h"

namespace modelslice::binding {

// 2^53: every integer below is exact in a double.
constexpr double kMaxSafe = 9007199254740992.0;
// Entries an index list (a shape or strides) may have: a broadcast's dimensions.
constexpr int kMaxIndices = kMaxDims;

struct Span {
  float* data;  // may be null for an empty typed array
  int64_t length;
  bool present;  // false: an optional buffer left out
};

struct Indices {
  int64_t v[kMaxIndices];
  int64_t n;
};

// A buffer region a call touches, and whether the call writes it.
struct Region {
  const char* name;
  const float* begin;
  const float* end;
  bool written;
  // A written region that may be exactly one of the read ones (in place).
  bool inPlace;
};

// Most arguments a kernel takes (gemm's 16, with room); later ones are not read.
constexpr size_t kMaxArgs = 24;

// A call's arguments: a JavaScript call's, or the entries of an array (a call a plan recorded,
// bound once by planCompile). Both read the same way, so one binder serves both.
class ArgList {
 public:
  // Implicit: a binder takes a callback's arguments as they come.
  ArgList(const Napi::CallbackInfo& info)  // NOLINT(runtime/explicit)
      : env_(info.Env()), n_(info.Length() < kMaxArgs ? info.Length() : kMaxArgs) {
    for (size_t i = 0; i < n_; ++i) v_[i] = info[i];
  }
  ArgList(Napi::Env env, const Napi::Array& values)
      : env_(env), n_(values.Length() < kMaxArgs ? values.Length() : kMaxArgs) {
    for (size_t i = 0; i < n_; ++i) v_[i] = values.Get(static_cast<uint32_t>(i));
  }
  size_t Length() const { return n_; }
  Napi::Value operator[](size_t i) const {
    return i < n_ ? Napi::Value(env_, v_[i]) : env_.Undefined();
  }
  Napi::Env Env() const { return env_; }

 private:
  Napi::Env env_;
  size_t n_;
  napi_value v_[kMaxArgs] = {};
};

class Args {
 public:
  Args(const ArgList& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  [[noreturn]] void Fail(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void FailType(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
  }

  // Each reader below asks N-API once: a call costs ~0.1 us, and a kernel takes up to 16
  // arguments, a few microseconds' worth of which a batch-1 pass makes a hundred calls.

  // The argument, or null when it was left out.
  napi_value Raw(size_t i) const {
    return i < info_.Length() ? static_cast<napi_value>(info_[i]) : nullptr;
  }

  // The Float32Array at i (its data with its byte offset applied), or false for any other value.
  bool ReadFloats(napi_value v, Span* out) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (v == nullptr ||
        napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_float32_array)
      return false;
    *out = {static_cast<float*>(data), static_cast<int64_t>(length), true};
    return true;
  }

  Span Floats(size_t i, const char* name) const {
    Span s;
    if (!ReadFloats(Raw(i), &s)) FailType(std::string(name) + " must be a Float32Array");
    return s;
  }

  // null or undefined (or left out) is no buffer.
  Span OptionalFloats(size_t i, const char* name) const {
    const napi_value v = Raw(i);
    Span s;
    if (ReadFloats(v, &s)) return s;
    napi_valuetype t = napi_object;
    if (v == nullptr ||
        (napi_typeof(env_, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)))
      return {nullptr, 0, false};
    FailType(std::string(name) + " must be a Float32Array");
  }

  int64_t Int(size_t i, const char* name, int64_t max = INT64_MAX) const {
    const napi_value raw = Raw(i);
    double v = 0;
    if (raw == nullptr || napi_get_value_double(env_, raw, &v) != napi_ok)
      FailType(std::string(name) + " must be a number");
    if (!(v >= 0) || v > kMaxSafe || std::floor(v) != v)
      Fail(std::string(name) + " must be a non-negative integer, got " + std::to_string(v));
    auto n = static_cast<int64_t>(v);
    if (n > max) Fail(std::string(name) + " must be at most " + std::to_string(max));
    return n;
  }

  double Number(size_t i, const char* name) const {
    const napi_value raw = Raw(i);
    double v = 0;
    if (raw == nullptr || napi_get_value_double(env_, raw, &v) != napi_ok)
      FailType(std::string(name) + " must be a number");
    return v;
  }

  bool Bool(size_t i, const char* name) const {
    const napi_value raw = Raw(i);
    bool v = false;
    if (raw == nullptr || napi_get_value_bool(env_, raw, &v) != napi_ok)
      FailType(std::string(name) + " must be a boolean");
    return v;
  }

  // A trailing flag the caller may leave out (or pass undefined).
  bool OptionalBool(size_t i, const char* name, bool fallback) const {
    if (i >= info_.Length() || info_[i].IsUndefined()) return fallback;
    return Bool(i, name);
  }

  // Exactly `count` non-negative integers, each at most `max`, into out.
  void Fields(size_t i, const char* name, int64_t* out, uint32_t count, int64_t max) const {
    if (i >= info_.Length() || !info_[i].IsArray())
      FailType(std::string(name) + " must be an array");
    auto arr = info_[i].As<Napi::Array>();
    if (arr.Length() != count)
      Fail(std::string(name) + " must have " + std::to_string(count) + " entries");
    for (uint32_t d = 0; d < count; ++d) out[d] = Entry(arr, d, name);
    for (uint32_t d = 0; d < count; ++d)
      if (out[d] > max) Fail(std::string(name) + ": size too large");
  }

  // At most `maxLength` non-negative integers.
  Indices List(size_t i, const char* name, int64_t maxLength) const {
    if (i >= info_.Length() || !info_[i].IsArray())
      FailType(std::string(name) + " must be an array");
    auto arr = info_[i].As<Napi::Array>();
    if (arr.Length() > static_cast<uint32_t>(maxLength))
      Fail(std::string(name) + " has more than " + std::to_string(maxLength) + " entries");
    Indices out{};
    out.n = arr.Length();
    for (uint32_t d = 0; d < arr.Length(); ++d) out.v[d] = Entry(arr, d, name);
    return out;
  }

  // Checked arithmetic: a result past int64 is refused, never wrapped (written
  // out rather than with compiler builtins, which MSVC lacks).
  int64_t Add(int64_t a, int64_t b) const {
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) Fail("size overflow");
    return a + b;
  }
  int64_t Sub(int64_t a, int64_t b) const {
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) Fail("size overflow");
    return a - b;
  }
  int64_t Mul(int64_t a, int64_t b) const {
    if (a == 0 || b == 0) return 0;
    bool over = a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
                      : (b > 0 ? a < INT64_MIN / b : b < INT64_MAX / a);
    if (over) Fail("size overflow");
    return a * b;
  }
  int64_t Div(int64_t a, int64_t b) const {
    if (b == 0) Fail("division by zero");
    return a / b;
  }
  int64_t Mod(int64_t a, int64_t b) const {
    if (b == 0) Fail("division by zero");
    return a % b;
  }

  // Elements a rows x cols matrix with leading dimension ld reaches.
  int64_t MatrixSpan(int64_t rows, int64_t cols, int64_t ld) const {
    if (rows == 0 || cols == 0) return 0;
    return Add(Mul(rows - 1, ld), cols);
  }
  int64_t Prod(const Indices& shape) const {
    int64_t n = 1;
    for (int64_t d = 0; d < shape.n; ++d) n = Mul(n, shape.v[d]);
    return n;
  }
  // Elements a strided view of `shape` reaches (0 when the shape is empty).
  int64_t Extent(const Indices& shape, const Indices& strides) const {
    if (strides.n != shape.n) Fail("strides must have one entry per dimension");
    for (int64_t d = 0; d < shape.n; ++d)
      if (shape.v[d] == 0) return 0;
    int64_t n = 1;
    for (int64_t d = 0; d < shape.n; ++d) n = Add(n, Mul(shape.v[d] - 1, strides.v[d]));
    return n;
  }
  static int64_t ConvOut(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
    return conv_out_size(in, k, stride, pad, dilation);
  }

  // The region of `size` elements from `offset` that a buffer must hold.
  Region Fits(const Span& s, const char* name, int64_t offset, int64_t size, bool written,
              bool inPlace = false) const {
    if (!s.present) return {name, nullptr, nullptr, written, inPlace};
    if (offset > s.length || size > s.length - offset)
      Fail(std::string(name) + " has " + std::to_string(s.length) + " elements, needs " +
           std::to_string(Add(offset, size)) +
           (offset > 0
                ? " (" + std::to_string(size) + " from offset " + std::to_string(offset) + ")"
                : std::string()));
    if (size == 0) return {name, nullptr, nullptr, written, inPlace};
    return {name, s.data + offset, s.data + offset + size, written, inPlace};
  }

  // A kernel writes its outputs while it reads its inputs, in blocks and on
  // several threads: an output that shares memory with an input (or another
  // output) would make it read values it has already overwritten. Typed arrays
  // that view one ArrayBuffer can do that. A region declared in place may be
  // exactly one of the inputs, never partly.
  void Disjoint(std::initializer_list<Region> regions) const {
    for (auto w = regions.begin(); w != regions.end(); ++w) {
      if (!w->written || w->begin == w->end) continue;
      for (auto o = regions.begin(); o != regions.end(); ++o) {
        if (o == w || o->begin == o->end || (o->written && o < w)) continue;
        if (!(w->begin < o->end && o->begin < w->end)) continue;
        if (w->inPlace && !o->written && w->begin == o->begin && w->end == o->end) continue;
        Fail(std::string(w->name) + " shares memory with " + o->name +
             "; a kernel's outputs must not overlap its inputs or each other");
      }
    }
  }

 private:
  int64_t Entry(const Napi::Array& arr, uint32_t d, const char* name) const {
    Napi::Value v = arr.Get(d);
    double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x > kMaxSafe || std::floor(x) != x)
      Fail(std::string(name) + " entries must be non-negative integers");
    return static_cast<int64_t>(x);
  }

  const ArgList info_;  // a copy: an Args may outlive the callback's temporary list
  Napi::Env env_;
  const char* fn_;
};

}  // namespace modelslice::binding
