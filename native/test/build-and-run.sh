#!/bin/sh
# Builds and runs the standalone thread-pool and GEMM checks (and, with `bench`,
# the GEMM benchmark).
#   native/test/build-and-run.sh            # correctness check
#   native/test/build-and-run.sh bench      # check, then benchmark (add --json etc. after)
# Uses g++ -O3 -std=c++17 -pthread and no -march flag (kernels pick their ISA at run time).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
native="$here/.."
root="$native/.."
out="${OUT_DIR:-$root/build/native-test}"
CXX="${CXX:-g++}"
CXXFLAGS="${CXXFLAGS:--O3 -std=c++17 -pthread -Wall -Wextra}"
mkdir -p "$out"
srcs="$native/gemm.cc $native/gemm_kernel_avx512.cc $native/gemm_kernel_avx2.cc $native/gemm_kernel_generic.cc $native/cpu.cc $native/parallel.cc"

# Compile the library sources once into objects (each is a separate translation unit, as
# in the real build).
objs=""
for s in $srcs; do
  o="$out/$(basename "$s" .cc).o"
  $CXX $CXXFLAGS -c "$s" -o "$o"
  objs="$objs $o"
done
$CXX $CXXFLAGS "$here/pool_check.cc" "$out/parallel.o" -o "$out/pool_check"
echo "== pool_check"
"$out/pool_check"
$CXX $CXXFLAGS "$here/gemm_check.cc" $objs -o "$out/gemm_check"
echo "== gemm_check"
"$out/gemm_check"

if [ "${1:-}" = "bench" ]; then
  shift
  $CXX $CXXFLAGS "$root/bench/native/gemm_bench.cc" $objs -o "$out/gemm_bench" -ldl
  echo "== gemm_bench"
  "$out/gemm_bench" "$@"
fi
