// Run-time CPU feature detection (x86-64: cpuid + xgetbv; elsewhere: generic).
//
// The ISA is detected once, at load time. The environment variable MODELSLICE_ISA
// ("avx512", "avx2" or "generic") caps the choice; it never raises it above what
// the CPU and the operating system support. Any other non-empty value is reported
// on stderr and leaves the choice uncapped.
#pragma once

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

}  // namespace modelslice
