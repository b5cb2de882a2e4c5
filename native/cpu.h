// Run-time CPU feature detection (x86-64: cpuid + xgetbv; elsewhere: generic).
//
// The ISA is detected once, at load time. The environment variable MODELSLICE_ISA
// ("avx512", "avx2" or "generic") caps the choice; it never raises it above what
// the CPU and the operating system support. Any other non-empty value is reported
// on stderr and leaves the choice uncapped.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define MODELSLICE_X86 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MS_INLINE inline __attribute__((always_inline))
#define MS_INLINE_LAMBDA __attribute__((always_inline))
#define MS_RESTRICT __restrict__
// Per-function ISA (the build uses no -march flag; callers check cpu_isa() first).
#define MS_TARGET(isa) __attribute__((target(isa)))
#else
#define MS_INLINE inline
#define MS_INLINE_LAMBDA
#define MS_RESTRICT
#define MS_TARGET(isa)  // MSVC: intrinsics are usable without per-function targets
#endif
#define MS_TGT256 MS_TARGET("avx2,fma")
#define MS_TGT512 MS_TARGET("avx512f,avx512vl,avx512dq,avx2,fma")

namespace modelslice {

// Ordered: a higher value implies every lower one.
enum class CpuIsa : int {
  kGeneric = 0,  // portable C++ (SSE2 on x86-64, NEON on arm64 via auto-vectorization)
  kAvx2 = 1,     // AVX2 + FMA (x86-64 only)
  kAvx512 = 2,   // AVX-512 F/DQ/VL + FMA (x86-64 only)
};

// What the CPU and OS support, ignoring MODELSLICE_ISA.
CpuIsa cpu_isa_detected();

// The ISA kernels should use: cpu_isa_detected() capped by MODELSLICE_ISA.
CpuIsa cpu_isa();

// "avx512", "avx2" or "generic".
const char* cpu_isa_name(CpuIsa isa);
const char* cpu_isa_name();

// Parses "avx512" / "avx2" / "generic" (case-insensitive); returns false if unknown.
bool parse_cpu_isa(const char* s, CpuIsa* out);

// Runs body() compiled for the widest instruction set cpu_isa() allows. The body is a lambda
// marked MS_INLINE_LAMBDA whose loops the compiler vectorises once per ISA (AVX-512, AVX2,
// the portable baseline). The build does not contract a multiply and an add into an fma
// (-ffp-contract=off, binding.gyp), so every clone rounds exactly as the portable code: the
// ISA changes the speed, never the result.
template <typename Body>
MS_TGT512 void run_isa_avx512(Body& body) {
  body();
}
template <typename Body>
MS_TGT256 void run_isa_avx2(Body& body) {
  body();
}
template <typename Body>
void run_isa(Body&& body) {
#ifdef MODELSLICE_X86
  switch (cpu_isa()) {
    case CpuIsa::kAvx512:
      return run_isa_avx512(body);
    case CpuIsa::kAvx2:
      return run_isa_avx2(body);
    default:
      break;
  }
#endif
  body();
}

}  // namespace modelslice
