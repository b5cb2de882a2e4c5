#include "cpu.h"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef MODELSLICE_X86
#if defined(_MSC_VER) && !defined(__clang__)
#include <immintrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace modelslice {

namespace {

#ifdef MODELSLICE_X86
void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
#if defined(_MSC_VER) && !defined(__clang__)
  int v[4];
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(v[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

// Only valid when CPUID.1:ECX.OSXSAVE is set.
uint64_t xgetbv0() {
#if defined(_MSC_VER) && !defined(__clang__)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  // Raw encoding of xgetbv: works without -mxsave and with old assemblers.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}
#endif

CpuIsa detect() {
#ifdef MODELSLICE_X86
  uint32_t r[4];
  cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  if (max_leaf < 1) return CpuIsa::kGeneric;
  cpuid(1, 0, r);
  const uint32_t ecx1 = r[2];
  const bool osxsave = (ecx1 >> 27) & 1, avx = (ecx1 >> 28) & 1, fma = (ecx1 >> 12) & 1;
  if (!osxsave || !avx || !fma) return CpuIsa::kGeneric;
  const uint64_t xcr0 = xgetbv0();
  // XCR0 bit 1 = SSE state, bit 2 = AVX (upper ymm) state.
  if ((xcr0 & 0x6) != 0x6) return CpuIsa::kGeneric;
  if (max_leaf < 7) return CpuIsa::kGeneric;
  cpuid(7, 0, r);
  const uint32_t ebx7 = r[1];
  const bool avx2 = (ebx7 >> 5) & 1;
  if (!avx2) return CpuIsa::kGeneric;
  const bool avx512f = (ebx7 >> 16) & 1, avx512dq = (ebx7 >> 17) & 1, avx512vl = (ebx7 >> 31) & 1;
  // XCR0 bits 5..7 = opmask, upper half of zmm0-15, zmm16-31.
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;
  if (avx512f && avx512dq && avx512vl && os_avx512) return CpuIsa::kAvx512;
  return CpuIsa::kAvx2;
#else
  return CpuIsa::kGeneric;
#endif
}

// A value that names no instruction set is reported rather than ignored, so a
// typo cannot silently leave the fastest kernels in place of the ones asked
// for. The package's loader (src/native.ts) refuses it before the addon loads;
// this warning is for whoever loads the addon directly.
CpuIsa capped() {
  CpuIsa isa = cpu_isa_detected();
  if (const char* env = std::getenv("MODELSLICE_ISA")) {
    CpuIsa cap;
    if (!parse_cpu_isa(env, &cap)) {
      if (*env != '\0')
        std::fprintf(stderr,
                     "modelslice: MODELSLICE_ISA=%s names no instruction set (accepted: avx512, "
                     "avx2, generic); using %s\n",
                     env, cpu_isa_name(isa));
    } else if (static_cast<int>(cap) < static_cast<int>(isa)) {
      isa = cap;
    }
  }
  return isa;
}

// Detect at load time (function-local statics below keep it safe if another
// static initializer asks first).
const CpuIsa g_load_time_isa = cpu_isa();

}  // namespace

CpuIsa cpu_isa_detected() {
  static const CpuIsa isa = detect();
  return isa;
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = capped();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    default:
      return "generic";
  }
}

const char* cpu_isa_name() {
  (void)g_load_time_isa;
  return cpu_isa_name(cpu_isa());
}

bool parse_cpu_isa(const char* s, CpuIsa* out) {
  if (!s) return false;
  char buf[16];
  size_t n = std::strlen(s);
  if (n == 0 || n >= sizeof buf) return false;
  for (size_t i = 0; i <= n; ++i)
    buf[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  if (!std::strcmp(buf, "avx512"))
    *out = CpuIsa::kAvx512;
  else if (!std::strcmp(buf, "avx2"))
    *out = CpuIsa::kAvx2;
  else if (!std::strcmp(buf, "generic"))
    *out = CpuIsa::kGeneric;
  else
    return false;
  return true;
}

}  // namespace modelslice
