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
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
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

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  mb::GemmCall c = mb::BindGemm(info);
  if (c.M == 0 || c.N == 0) return info.Env().Undefined();
  ms::sgemm(c.transA, c.transB, c.M, c.N, c.K, static_cast<float>(c.alpha), c.A.data + c.aOffset,
            c.lda, c.B.data + c.bOffset, c.ldb, static_cast<float>(c.beta), c.C.data + c.cOffset,
            c.ldc);
  return info.Env().Undefined();
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  mb::BinaryCall c = mb::BindBinary(info);
  if (Count(c.shape) == 0) return info.Env().Undefined();
  ms::binary_broadcast(static_cast<ms::BinaryOp>(c.op), static_cast<int>(c.shape.n), c.shape.v,
                       c.a.data, c.aStrides.v, c.b.data, c.bStrides.v, c.out.data);
  return info.Env().Undefined();
}

// acc[strided] += scale * g
Napi::Value SumTo(const Napi::CallbackInfo& info) {
  mb::SumToCall c = mb::BindSumTo(info);
  if (Count(c.shape) == 0) return info.Env().Undefined();
  ms::sum_to_strided(static_cast<int>(c.shape.n), c.shape.v, c.g.data, static_cast<float>(c.scale),
                     c.acc.data, c.accStrides.v);
  return info.Env().Undefined();
}

// acc[strided] += g * other[strided]
Napi::Value MulGrad(const Napi::CallbackInfo& info) {
  mb::MulGradCall c = mb::BindMulGrad(info);
  if (Count(c.shape) == 0) return info.Env().Undefined();
  ms::mul_grad_strided(static_cast<int>(c.shape.n), c.shape.v, c.g.data, c.other.data,
                       c.otherStrides.v, c.acc.data, c.accStrides.v);
  return info.Env().Undefined();
}

Napi::Value Relu(const Napi::CallbackInfo& info) {
  mb::ReluCall c = mb::BindRelu(info);
  ms::relu_forward(c.x.length, c.x.data, c.y.data);
  return info.Env().Undefined();
}

// gx += gy * (x > 0)
Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  mb::ReluBackwardCall c = mb::BindReluBackward(info);
  ms::relu_backward(c.x.length, c.x.data, c.gy.data, c.gx.data);
  return info.Env().Undefined();
}

// dst[dstOffset:][:n] = src[srcOffset:][:n] (the regions may not overlap: the binder refuses it)
Napi::Value Copy(const Napi::CallbackInfo& info) {
  mb::CopyCall c = mb::BindCopy(info);
  if (c.n > 0)
    std::memcpy(c.dst.data + c.dstOffset, c.src.data + c.srcOffset,
                static_cast<size_t>(c.n) * sizeof(float));
  return info.Env().Undefined();
}

// y[:n] += alpha * x[:n]
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  mb::AxpyCall c = mb::BindAxpy(info);
  ms::axpy(c.n, static_cast<float>(c.alpha), c.x.data, c.y.data);
  return info.Env().Undefined();
}

Napi::Value AddRowBias(const Napi::CallbackInfo& info) {
  mb::AddRowBiasCall c = mb::BindAddRowBias(info);
  // Nothing to do; and the kernels would still walk a huge count of empty rows.
  if (c.rows == 0 || c.cols == 0) return info.Env().Undefined();
  ms::add_row_bias(c.rows, c.cols, c.bias.data, c.y.data, c.ldy);
  return info.Env().Undefined();
}

// acc[:cols] += column sums of g
Napi::Value ColumnSums(const Napi::CallbackInfo& info) {
  mb::ColumnSumsCall c = mb::BindColumnSums(info);
  if (c.rows == 0 || c.cols == 0) return info.Env().Undefined();
  ms::column_sums(c.rows, c.cols, c.g.data, c.ldg, c.acc.data);
  return info.Env().Undefined();
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  mb::SoftmaxCall c = mb::BindSoftmax(info);
  if (c.rows == 0 || c.cols == 0) return info.Env().Undefined();
  ms::softmax_rows(c.rows, c.cols, c.x.data, c.y.data, c.log);
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  mb::SoftmaxBackwardCall c = mb::BindSoftmaxBackward(info);
  if (c.rows == 0 || c.cols == 0) return info.Env().Undefined();
  ms::softmax_rows_backward(c.rows, c.cols, c.y.data, c.gy.data, c.gx.data, c.log);
  return info.Env().Undefined();
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  mb::AttentionForwardCall c = mb::BindAttentionForward(info);
  if (c.causal && c.Tk < c.Tq)
    throw Napi::RangeError::New(info.Env(), "attentionForward: causal attention needs Tk >= Tq");
  if (c.batch == 0 || c.heads == 0 || c.Tq == 0 || c.Tk == 0 || c.d == 0)
    return info.Env().Undefined();
  ms::attention_forward(c.batch, c.heads, c.Tq, c.Tk, c.d, static_cast<float>(c.scale), c.causal,
                        c.q.data, c.k.data, c.v.data, c.probs.data, c.out.data);
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  mb::AttentionBackwardCall c = mb::BindAttentionBackward(info);
  if (c.causal && c.Tk < c.Tq)
    throw Napi::RangeError::New(info.Env(), "attentionBackward: causal attention needs Tk >= Tq");
  if (c.batch == 0 || c.heads == 0 || c.Tq == 0 || c.Tk == 0 || c.d == 0)
    return info.Env().Undefined();
  ms::attention_backward(c.batch, c.heads, c.Tq, c.Tk, c.d, static_cast<float>(c.scale), c.causal,
                         c.q.data, c.k.data, c.v.data, c.probs.data, c.gout.data, c.gq.data,
                         c.gk.data, c.gv.data);
  return info.Env().Undefined();
}

Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  mb::LayerNormForwardCall c = mb::BindLayerNormForward(info);
  if (c.rows == 0 || c.dim == 0) return info.Env().Undefined();
  ms::layer_norm_forward(c.rows, c.dim, c.x.data, c.gamma.data, c.beta.data,
                         static_cast<float>(c.eps), c.y.data, c.mean.data, c.rstd.data);
  return info.Env().Undefined();
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  mb::LayerNormBackwardCall c = mb::BindLayerNormBackward(info);
  if (c.rows == 0 || c.dim == 0) return info.Env().Undefined();
  ms::layer_norm_backward(c.rows, c.dim, c.x.data, c.gy.data, c.gamma.data, c.mean.data,
                          c.rstd.data, c.gx.data, c.ggamma.data, c.gbeta.data);
  return info.Env().Undefined();
}

// The kernels' shape of a bound convolution call (every field checked by its binder).
template <typename Call>
ms::ConvShape ConvShapeOf(const Call& c) {
  return {c.N,    c.C,         c.H,         c.W,       c.O,
          c.kh,   c.kw,        c.strideH,   c.strideW, c.padH,
          c.padW, c.dilationH, c.dilationW, c.groups,  c.weightInPerGroup,
          c.outH, c.outW};
}

Napi::Value Conv2dForward(const Napi::CallbackInfo& info) {
  mb::Conv2dForwardCall c = mb::BindConv2dForward(info);
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0) return info.Env().Undefined();
  const ms::InputTransform t{c.inCenter.data, c.inScale.data, c.inShift.data, c.inRelu};
  ms::conv2d_forward(ConvShapeOf(c), c.x.data, c.w.data, c.bias.data, c.y.data, c.accumulate,
                     c.inScale.present && c.C > 0 ? &t : nullptr);
  return info.Env().Undefined();
}

// accumulate = false writes gx without reading it.
Napi::Value Conv2dBackwardInput(const Napi::CallbackInfo& info) {
  mb::Conv2dBackwardInputCall c = mb::BindConv2dBackwardInput(info);
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0 || c.C == 0 || c.H == 0 || c.W == 0)
    return info.Env().Undefined();
  ms::conv2d_backward_input(ConvShapeOf(c), c.gy.data, c.w.data, c.gx.data, c.accumulate);
  return info.Env().Undefined();
}

Napi::Value Conv2dBackwardWeight(const Napi::CallbackInfo& info) {
  mb::Conv2dBackwardWeightCall c = mb::BindConv2dBackwardWeight(info);
  if (c.N == 0 || c.O == 0 || c.outH == 0 || c.outW == 0) return info.Env().Undefined();
  ms::conv2d_backward_weight(ConvShapeOf(c), c.gy.data, c.x.data, c.gw.data);
  return info.Env().Undefined();
}

Napi::Value Conv2dBackwardBias(const Napi::CallbackInfo& info) {
  mb::Conv2dBackwardBiasCall c = mb::BindConv2dBackwardBias(info);
  ms::conv2d_backward_bias(ConvShapeOf(c), c.gy.data, c.gb.data);
  return info.Env().Undefined();
}

template <typename Call>
ms::PoolShape PoolShapeOf(const Call& c) {
  return {c.planes, c.H, c.W, c.kh, c.kw, c.strideH, c.strideW, c.padH, c.padW, c.outH, c.outW};
}

// kind 0 = max, 1 = average
Napi::Value PoolForward(const Napi::CallbackInfo& info) {
  mb::PoolForwardCall c = mb::BindPoolForward(info);
  if (c.kind == 0)
    ms::max_pool_forward(PoolShapeOf(c), c.x.data, c.y.data);
  else
    ms::avg_pool_forward(PoolShapeOf(c), c.x.data, c.y.data);
  return info.Env().Undefined();
}

// gx += the pooled gradient
Napi::Value PoolBackward(const Napi::CallbackInfo& info) {
  mb::PoolBackwardCall c = mb::BindPoolBackward(info);
  if (c.kind == 0)
    ms::max_pool_backward(PoolShapeOf(c), c.x.data, c.gy.data, c.gx.data);
  else
    ms::avg_pool_backward(PoolShapeOf(c), c.gy.data, c.gx.data);
  return info.Env().Undefined();
}

Napi::Value GlobalAvgPool(const Napi::CallbackInfo& info) {
  mb::GlobalAvgPoolCall c = mb::BindGlobalAvgPool(info);
  ms::global_avg_pool_forward(c.planes, c.size, c.x.data, c.y.data);
  return info.Env().Undefined();
}

Napi::Value GlobalAvgPoolBackward(const Napi::CallbackInfo& info) {
  mb::GlobalAvgPoolBackwardCall c = mb::BindGlobalAvgPoolBackward(info);
  ms::global_avg_pool_backward(c.planes, c.size, c.gy.data, c.gx.data);
  return info.Env().Undefined();
}

Napi::Value GroupNormForward(const Napi::CallbackInfo& info) {
  mb::GroupNormForwardCall c = mb::BindGroupNormForward(info);
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return info.Env().Undefined();
  ms::group_norm_forward(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gamma.data,
                         c.beta.data, static_cast<float>(c.eps), c.y.data, c.mean.data, c.rstd.data,
                         c.relu);
  return info.Env().Undefined();
}

Napi::Value GroupNormStats(const Napi::CallbackInfo& info) {
  mb::GroupNormStatsCall c = mb::BindGroupNormStats(info);
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return info.Env().Undefined();
  ms::group_norm_stats(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gamma.data,
                       c.beta.data, static_cast<float>(c.eps), c.mean.data, c.rstd.data,
                       c.center.data, c.scale.data, c.shift.data);
  return info.Env().Undefined();
}

// gxAccumulate = false writes gx without reading it.
Napi::Value GroupNormBackward(const Napi::CallbackInfo& info) {
  mb::GroupNormBackwardCall c = mb::BindGroupNormBackward(info);
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return info.Env().Undefined();
  ms::group_norm_backward(c.batch, c.channels, c.spatial, c.groups, c.x.data, c.gy.data,
                          c.gamma.data, c.mean.data, c.rstd.data, c.gx.data, c.ggamma.data,
                          c.gbeta.data, c.reluOut.data, c.gxAccumulate);
  return info.Env().Undefined();
}

Napi::Value ChannelMoments(const Napi::CallbackInfo& info) {
  mb::ChannelMomentsCall c = mb::BindChannelMoments(info);
  ms::channel_moments(c.batch, c.channels, c.spatial, c.x.data, c.mean.data, c.variance.data);
  return info.Env().Undefined();
}

Napi::Value ChannelAffine(const Napi::CallbackInfo& info) {
  mb::ChannelAffineCall c = mb::BindChannelAffine(info);
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return info.Env().Undefined();
  ms::channel_affine(c.batch, c.channels, c.spatial, c.x.data, c.scale.data, c.shift.data,
                     c.y.data);
  return info.Env().Undefined();
}

Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  mb::BatchNormBackwardCall c = mb::BindBatchNormBackward(info);
  if (c.batch == 0 || c.channels == 0 || c.spatial == 0) return info.Env().Undefined();
  ms::batch_norm_backward(c.batch, c.channels, c.spatial, c.x.data, c.gy.data, c.mean.data,
                          c.rstd.data, c.gamma.data, c.training, c.gx.data, c.ggamma.data,
                          c.gbeta.data);
  return info.Env().Undefined();
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
  Export<Gemm>(env, exports, "gemm");
  Export<Binary>(env, exports, "binary");
  Export<SumTo>(env, exports, "sumTo");
  Export<MulGrad>(env, exports, "mulGrad");
  Export<Relu>(env, exports, "relu");
  Export<ReluBackward>(env, exports, "reluBackward");
  Export<Axpy>(env, exports, "axpy");
  Export<Copy>(env, exports, "copy");
  Export<AddRowBias>(env, exports, "addRowBias");
  Export<ColumnSums>(env, exports, "columnSums");
  Export<Softmax>(env, exports, "softmax");
  Export<SoftmaxBackward>(env, exports, "softmaxBackward");
  Export<AttentionForward>(env, exports, "attentionForward");
  Export<AttentionBackward>(env, exports, "attentionBackward");
  Export<LayerNormForward>(env, exports, "layerNormForward");
  Export<LayerNormBackward>(env, exports, "layerNormBackward");
  Export<Conv2dForward>(env, exports, "conv2dForward");
  Export<Conv2dBackwardInput>(env, exports, "conv2dBackwardInput");
  Export<Conv2dBackwardWeight>(env, exports, "conv2dBackwardWeight");
  Export<Conv2dBackwardBias>(env, exports, "conv2dBackwardBias");
  Export<PoolForward>(env, exports, "poolForward");
  Export<PoolBackward>(env, exports, "poolBackward");
  Export<GlobalAvgPool>(env, exports, "globalAvgPool");
  Export<GlobalAvgPoolBackward>(env, exports, "globalAvgPoolBackward");
  Export<GroupNormForward>(env, exports, "groupNormForward");
  Export<GroupNormStats>(env, exports, "groupNormStats");
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
