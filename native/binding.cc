// The only file (with the headers it includes) that knows N-API. Each entry
// point binds its call with the binder generated from the kernel's declaration
// (kernel_checks.h): every argument's type, every size, offset and leading
// dimension against the buffers it was handed, int64 overflow, and written
// regions against every other region (the TypeScript ops have already checked
// shapes; this is the second door). It then forwards raw pointers to a kernel.
// Errors surface as JavaScript TypeError / RangeError naming the kernel.
#include <napi.h>

#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "attention.h"
#include "conv.h"
#include "elementwise.h"
#include "gemm.h"
#include "kernel_checks.h"
#include "norm.h"
#include "parallel.h"
#include "pool.h"
#include "rowwise.h"

namespace ms = modelslice;
namespace mb = modelslice::binding;

namespace {

// Elements of a shape a binder has checked (its product cannot overflow).
int64_t Count(const mb::Indices& shape) {
  int64_t n = 1;
  for (int64_t d = 0; d < shape.n; ++d) n *= shape.v[d];
  return n;
}

void RunGemm(const mb::GemmCall& c) {
  if (c.M == 0 || c.N == 0) return;
  ms::sgemm(c.transA, c.transB, c.M, c.N, c.K, static_cast<float>(c.alpha), c.A.data + c.aOffset,
            c.lda, c.B.data + c.bOffset, c.ldb, static_cast<float>(c.beta), c.C.data + c.cOffset,
            c.ldc);
}

void RunBinary(const mb::BinaryCall& c) {
  if (Count(c.shape) == 0) return;
  ms::binary_broadcast(static_cast<ms::BinaryOp>(c.op), static_cast<int>(c.shape.n), c.shape.v,
                       c.a.data, c.aStrides.v, c.b.data, c.bStrides.v, c.out.data);
}

// acc[strided] += scale * g
void RunSumTo(const mb::SumToCall& c) {
  if (Count(c.shape) == 0) return;
  ms::sum_to_strided(static_cast<int>(c.shape.n), c.shape.v, c.g.data, static_cast<float>(c.scale),
                     c.acc.data, c.accStrides.v);
}

// acc[strided] += g * other[strided]
void RunMulGrad(const mb::MulGradCall& c) {
  if (Count(c.shape) == 0) return;
  ms::mul_grad_strided(static_cast<int>(c.shape.n), c.shape.v, c.g.data, c.other.data,
                       c.otherStrides.v, c.acc.data, c.accStrides.v);
}

void RunRelu(const mb::ReluCall& c) { ms::relu_forward(c.x.length, c.x.data, c.y.data); }

// gx += gy * (x > 0)
void RunReluBackward(const mb::ReluBackwardCall& c) {
  ms::relu_backward(c.x.length, c.x.data, c.gy.data, c.gx.data);
}

// dst[dstOffset:][:n] = src[srcOffset:][:n] (the regions may not overlap: the binder refuses it)
void RunCopy(const mb::CopyCall& c) {
  if (c.n > 0)
    std::memcpy(c.dst.data + c.dstOffset, c.src.data + c.srcOffset,
                static_cast<size_t>(c.n) * sizeof(float));
}

// y[:n] += alpha * x[:n]
void RunAxpy(const mb::AxpyCall& c) {
  ms::axpy(c.n, static_cast<float>(c.alpha), c.x.data, c.y.data);
}

void RunAddRowBias(const mb::AddRowBiasCall& c) {
  // Nothing to do; and the kernels would still walk a huge count of empty rows.
  if (c.rows == 0 || c.cols == 0) return;
  ms::add_row_bias(c.rows, c.cols, c.bias.data, c.y.data, c.ldy);
}

// acc[:cols] += column sums of g
void RunColumnSums(const mb::ColumnSumsCall& c) {
  if (c.rows == 0 || c.cols == 0) return;
  ms::column_sums(c.rows, c.cols, c.g.data, c.ldg, c.acc.data);
}

void RunSoftmax(const mb::SoftmaxCall& c) {
  if (c.rows == 0 || c.cols == 0) return;
  ms::softmax_rows(c.rows, c.cols, c.x.data, c.y.data, c.log);
}

void RunSoftmaxBackward(const mb::SoftmaxBackwardCall& c) {
  if (c.rows == 0 || c.cols == 0) return;
  ms::softmax_rows_backward(c.rows, c.cols, c.y.data, c.gy.data, c.gx.data, c.log);
}

void RunAttentionForward(const mb::AttentionForwardCall& c) {
  if (c.batch == 0 || c.heads == 0 || c.Tq == 0 || c.Tk == 0 || c.d == 0) return;
  ms::attention_forward(c.batch, c.heads, c.Tq, c.Tk, c.d, static_cast<float>(c.scale), c.causal,
                        c.q.data, c.k.data, c.v.data, c.probs.data, c.out.data);
}

void RunAttentionBackward(const mb::AttentionBackwardCall& c) {
  if (c.batch == 0 || c.heads == 0 || c.Tq == 0 || c.Tk == 0 || c.d == 0) return;
  ms::attention_backward(c.batch, c.heads, c.Tq, c.Tk, c.d, static_cast<float>(c.scale), c.causal,
                         c.q.data, c.k.data, c.v.data, c.probs.data, c.gout.data, c.gq.data,
                         c.gk.data, c.gv.data);
}

void RunLayerNormForward(const mb::LayerNormForwardCall& c) {
  if (c.rows == 0 || c.dim == 0) return;
  ms::layer_norm_forward(c.rows, c.dim, c.x.data, c.gamma.data, c.beta.data,
                         static_cast<float>(c.eps), c.y.data, c.mean.data, c.rstd.data);
}

void RunLayerNormBackward(const mb::LayerNormBackwardCall& c) {
  if (c.rows == 0 || c.dim == 0) return;
  ms::layer_norm_backward(c.rows, c.dim, c.x.data, c.gy.data, c.gamma.data, c.mean.data,
                          c.rstd.data, c.gx.data, c.ggamma.data, c.gbeta.data);
}

// The kernels' shape of a bound convolution call (every field checked by its binder).
template <typename Call>
ms::ConvShape ConvShapeOf(const Call& c) {
  return {c.N,    c.C,         c.H,         c.W,       c.O,
          c.kh,   c.kw,        c.strideH,   c.strideW, c.padH,
          c.padW, c.dilationH, c.dilationW, c.groups,  c.weightInPerGroup,
          c.outH, c.outW};
}

// Both forward entry points: the convolution (with its input map, if any), and with st the
// statistics of its output or with residual the sum. An empty output has nothing to compute
// (nor has groupNormStats).
template <class Call>
void ConvForward(const Call& c, const ms::OutputStats* st, const float* residual) {
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0) return;
  const ms::InputTransform t{c.inCenter.data, c.inScale.data, c.inShift.data, c.inRelu};
  ms::conv2d_forward(ConvShapeOf(c), c.x.data, c.w.data, c.bias.data, c.y.data, c.accumulate,
                     c.inScale.present && c.C > 0 ? &t : nullptr, st, residual);
}

void RunConv2dForward(const mb::Conv2dForwardCall& c) { ConvForward(c, nullptr, c.residual.data); }

void RunConv2dForwardNormStats(const mb::Conv2dForwardNormStatsCall& c) {
  const ms::OutputStats st{c.normGroups, c.gamma.data, c.beta.data,   static_cast<float>(c.eps),
                           c.mean.data,  c.rstd.data,  c.center.data, c.scale.data,
                           c.shift.data};
  ConvForward(c, &st, nullptr);
}

// accumulate = false writes gx without reading it.
void RunConv2dBackwardInput(const mb::Conv2dBackwardInputCall& c) {
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0 || c.C == 0 || c.H == 0 || c.W == 0)
    return;
  ms::conv2d_backward_input(ConvShapeOf(c), c.gy.data, c.w.data, c.gx.data, c.accumulate);
}

void RunConv2dBackwardWeight(const mb::Conv2dBackwardWeightCall& c) {
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0) return;
  const ms::InputTransform t{c.inCenter.data, c.inScale.data, c.inShift.data, c.inRelu};
  ms::conv2d_backward_weight(ConvShapeOf(c), c.gy.data, c.x.data, c.gw.data,
                             c.inScale.present && c.C > 0 ? &t : nullptr);
}

void RunConv2dBackwardBias(const mb::Conv2dBackwardBiasCall& c) {
  ms::conv2d_backward_bias(ConvShapeOf(c), c.gy.data, c.gb.data);
}

template <typename Call>
ms::PoolShape PoolShapeOf(const Call& c) {
  return {c.planes, c.H, c.W, c.kh, c.kw, c.strideH, c.strideW, c.padH, c.padW, c.outH, c.outW};
}

// kind 0 = max, 1 = average
void RunPoolForward(const mb::PoolForwardCall& c) {
  if (c.kind == 0)
    ms::max_pool_forward(PoolShapeOf(c), c.x.data, c.y.data);
  else
    ms::avg_pool_forward(PoolShapeOf(c), c.x.data, c.y.data);
}

// gx += the pooled gradient
void RunPoolBackward(const mb::PoolBackwardCall& c) {
  if (c.kind == 0)
    ms::max_pool_backward(PoolShapeOf(c), c.x.data, c.gy.data, c.gx.data);
  else
    ms::avg_pool_backward(PoolShapeOf(c), c.gy.data, c.gx.data);
}

void RunGlobalAvgPool(const mb::GlobalAvgPoolCall& c) {
  ms::global_avg_pool_forward(c.planes, c.size, c.x.data, c.y.data);
}

void RunGlobalAvgPoolBackward(const mb::GlobalAvgPoolBackwardCall& c) {
  ms::global_avg_pool_backward(c.planes, c.size, c.gy.data, c.gx.data);
}

void RunGroupNormForward(const mb::GroupNormForwardCall& c) {
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return;
  ms::group_norm_forward(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gamma.data,
                         c.beta.data, static_cast<float>(c.eps), c.y.data, c.mean.data, c.rstd.data,
                         c.relu);
}

void RunGroupNormStats(const mb::GroupNormStatsCall& c) {
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return;
  ms::group_norm_stats(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gamma.data,
                       c.beta.data, static_cast<float>(c.eps), c.mean.data, c.rstd.data,
                       c.center.data, c.scale.data, c.shift.data);
}

// gxAccumulate = false writes gx without reading it.
void RunGroupNormBackward(const mb::GroupNormBackwardCall& c) {
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return;
  const ms::ReluMap map{c.reluCenter.data, c.reluScale.data, c.reluShift.data};
  ms::group_norm_backward(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gy.data,
                          c.gamma.data, c.mean.data, c.rstd.data, c.gx.data, c.ggamma.data,
                          c.gbeta.data, c.reluOut.data, c.gxAccumulate,
                          c.reluScale.present ? &map : nullptr);
}

void RunChannelMoments(const mb::ChannelMomentsCall& c) {
  ms::channel_moments(c.batch, c.channels, c.spatial, c.x.data, c.mean.data, c.variance.data);
}

void RunChannelAffine(const mb::ChannelAffineCall& c) {
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return;
  ms::channel_affine(c.batch, c.channels, c.spatial, c.x.data, c.scale.data, c.shift.data,
                     c.y.data);
}

void RunBatchNormBackward(const mb::BatchNormBackwardCall& c) {
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return;
  ms::batch_norm_backward(c.batch, c.channels, c.spatial, c.x.data, c.gy.data, c.mean.data,
                          c.rstd.data, c.gamma.data, c.training, c.gx.data, c.ggamma.data,
                          c.gbeta.data);
}

// Every kernel entry point: its binder (kernel_checks.h), its Run function above, its name.
#define MODELSLICE_KERNELS(X)                         \
  X(Gemm, "gemm")                                     \
  X(Binary, "binary")                                 \
  X(SumTo, "sumTo")                                   \
  X(MulGrad, "mulGrad")                               \
  X(Relu, "relu")                                     \
  X(ReluBackward, "reluBackward")                     \
  X(Copy, "copy")                                     \
  X(Axpy, "axpy")                                     \
  X(AddRowBias, "addRowBias")                         \
  X(ColumnSums, "columnSums")                         \
  X(Softmax, "softmax")                               \
  X(SoftmaxBackward, "softmaxBackward")               \
  X(AttentionForward, "attentionForward")             \
  X(AttentionBackward, "attentionBackward")           \
  X(LayerNormForward, "layerNormForward")             \
  X(LayerNormBackward, "layerNormBackward")           \
  X(Conv2dForward, "conv2dForward")                   \
  X(Conv2dForwardNormStats, "conv2dForwardNormStats") \
  X(Conv2dBackwardInput, "conv2dBackwardInput")       \
  X(Conv2dBackwardWeight, "conv2dBackwardWeight")     \
  X(Conv2dBackwardBias, "conv2dBackwardBias")         \
  X(PoolForward, "poolForward")                       \
  X(PoolBackward, "poolBackward")                     \
  X(GlobalAvgPool, "globalAvgPool")                   \
  X(GlobalAvgPoolBackward, "globalAvgPoolBackward")   \
  X(GroupNormForward, "groupNormForward")             \
  X(GroupNormStats, "groupNormStats")                 \
  X(GroupNormBackward, "groupNormBackward")           \
  X(ChannelMoments, "channelMoments")                 \
  X(ChannelAffine, "channelAffine")                   \
  X(BatchNormBackward, "batchNormBackward")

// A kernel called from JavaScript: bind (check) the arguments, run.
template <class Call, Call (*Bind)(const mb::ArgList&), void (*Run)(const Call&)>
Napi::Value Entry(const Napi::CallbackInfo& info) {
  Run(Bind(info));
  return info.Env().Undefined();
}

// ---- Programs: a plan's native calls bound once ------------------------------------------
// A plan replays the same calls on the same buffers every time; binding each call from
// JavaScript costs a microsecond of N-API and checks, as much as a narrow kernel. planCompile
// binds (and checks) a list of calls once and keeps them as closures; planRun runs a range of
// them in one N-API call. The closures hold the buffers' data pointers: the JavaScript side
// keeps the arrays alive with the program and checks before every run that no ArrayBuffer it
// names has been detached (src/program.ts).
struct Program {
  std::vector<std::function<void()>> calls;
};

using Prepare = std::function<void()> (*)(const mb::ArgList&);

template <class Call, Call (*Bind)(const mb::ArgList&), void (*Run)(const Call&)>
std::function<void()> PrepareCall(const mb::ArgList& args) {
  const Call c = Bind(args);
  return [c] { Run(c); };
}

const std::unordered_map<std::string, Prepare>& Preparers() {
#define MODELSLICE_PREPARER(N, name) {name, &PrepareCall<mb::N##Call, mb::Bind##N, Run##N>},
  static const std::unordered_map<std::string, Prepare> table{
      MODELSLICE_KERNELS(MODELSLICE_PREPARER)};
#undef MODELSLICE_PREPARER
  return table;
}

// Tells a Program's External from any other External a caller might pass.
const napi_type_tag kProgramTag = {0x6d6f64656c736c69ULL, 0x636550726f677261ULL};

// planCompile(calls: [name, args[]][]) -> program
Napi::Value PlanCompile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mb::Args args(info, "planCompile");
  if (info.Length() < 1 || !info[0].IsArray())
    args.FailType("calls must be an array of [name, args]");
  const Napi::Array calls = info[0].As<Napi::Array>();
  auto program = std::make_unique<Program>();
  program->calls.reserve(calls.Length());
  for (uint32_t i = 0; i < calls.Length(); ++i) {
    const Napi::Value entry = calls.Get(i);
    if (!entry.IsArray() || entry.As<Napi::Array>().Length() != 2)
      args.FailType("call " + std::to_string(i) + " must be [name, args]");
    const Napi::Array pair = entry.As<Napi::Array>();
    const Napi::Value name = pair.Get(0u), list = pair.Get(1u);
    if (!name.IsString() || !list.IsArray())
      args.FailType("call " + std::to_string(i) + " must be [name, args]");
    const std::string kernel = name.As<Napi::String>().Utf8Value();
    const auto found = Preparers().find(kernel);
    if (found == Preparers().end())
      args.Fail("call " + std::to_string(i) + ": no kernel " + kernel);
    program->calls.push_back(found->second(mb::ArgList(env, list.As<Napi::Array>())));
  }
  auto external =
      Napi::External<Program>::New(env, program.release(), [](Napi::Env, Program* p) { delete p; });
  if (napi_type_tag_object(env, external, &kProgramTag) != napi_ok)
    throw Napi::Error::New(env, "planCompile: could not tag the program");
  return external;
}

// planRun(program, from, to): runs calls [from, to) of the program.
Napi::Value PlanRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  mb::Args args(info, "planRun");
  bool tagged = false;
  if (info.Length() < 1 || !info[0].IsExternal() ||
      napi_check_object_type_tag(env, info[0], &kProgramTag, &tagged) != napi_ok || !tagged)
    args.FailType("program must be what planCompile returned");
  Program* p = info[0].As<Napi::External<Program>>().Data();
  const int64_t from = args.Int(1, "from"), to = args.Int(2, "to");
  if (from > to || to > static_cast<int64_t>(p->calls.size()))
    args.Fail("range [" + std::to_string(from) + ", " + std::to_string(to) +
              ") is outside the program's " + std::to_string(p->calls.size()) + " calls");
  for (int64_t i = from; i < to; ++i) p->calls[static_cast<size_t>(i)]();
  return env.Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ms::get_num_threads());
}

// Sets the calling thread's kernel thread count (each Node worker thread has its own).
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = mb::Args(info, "setNumThreads").Int(0, "n");
  const int limit = ms::max_threads();
  if (n < 1 || n > limit)
    throw Napi::RangeError::New(
        info.Env(), "setNumThreads: n must be in [1, " + std::to_string(limit) + "] (" +
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
  mb::Args args(info, "testThrowInKernel");
  if (info.Length() < 1 || !info[0].IsString()) args.FailType("kind must be a string");
  const std::string kind = info[0].As<Napi::String>().Utf8Value();
  if (kind != "bad_alloc" && kind != "system_error" && kind != "logic_error" && kind != "int")
    args.Fail("unknown kind " + kind);
  ms::parallel_run(2, [&](int t, int) {
    if (t != 1) return;
    if (kind == "bad_alloc") throw std::bad_alloc();
    if (kind == "system_error")
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "thread");
    if (kind == "logic_error") throw std::logic_error("share 1 failed");
    throw 42;
  });
  return info.Env().Undefined();
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
#define MODELSLICE_EXPORT(N, name) \
  Export<Entry<mb::N##Call, mb::Bind##N, Run##N>>(env, exports, name);
  MODELSLICE_KERNELS(MODELSLICE_EXPORT)
#undef MODELSLICE_EXPORT
  Export<PlanCompile>(env, exports, "planCompile");
  Export<PlanRun>(env, exports, "planRun");
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
