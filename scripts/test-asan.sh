#!/bin/sh
# Builds the kernels with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the kernel tests under them:
#   1. the standalone harnesses of native/test/build-and-run.sh (gemm_check ...), sanitized;
#   2. the addon itself, compiled from native/sources.json with the same flags
#      into $ASAN_DIR/build/Release (never over build/Release), and
#      native/test/kernels_check.cc (conv, pool, norm, softmax kernels on
#      exact-size heap buffers) linked against the same objects; then the tap
#      tests that exercise the kernels with libasan preloaded into node and
#      MODELSLICE_PREBUILD pointing node-gyp-build at the sanitized addon.
# Any report stops the run with a non-zero exit.
#   scripts/test-asan.sh                 # everything
#   scripts/test-asan.sh test/ops/pool.test.ts ...   # the build, then only these tests
# Environment: CXX (g++), ASAN_DIR (build/asan), JOBS (2), TAP_REPORTER (tap: shows the
# sanitizer reports, which quieter reporters hide), NODE_INCLUDE (the Node
# headers; found next to node or in /usr/include/node by default).
# Linux with g++ or clang++; about 4 minutes on 2 cores.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CXX="${CXX:-g++}"
out="${ASAN_DIR:-$root/build/asan}"
jobs="${JOBS:-2}"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
common="-std=c++17 -O1 -g -pthread $san"
started=$(date +%s)

libasan=$($CXX -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "test-asan: $CXX has no libasan.so ($libasan); install the compiler's sanitizer runtime" >&2
  exit 2
fi

# 1. The standalone harnesses, sanitized (their guard pages stay; ASan adds redzones).
echo "== native/test harnesses (ASan + UBSan)"
OUT_DIR="$out/native-test" CXXFLAGS="$common -Wall -Wextra" sh native/test/build-and-run.sh

# 2. The addon, sanitized.
node_include="${NODE_INCLUDE:-}"
if [ -z "$node_include" ]; then
  for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_api.h" ]; then node_include="$d"; break; fi
  done
fi
if [ -z "$node_include" ] || [ ! -f "$node_include/node_api.h" ]; then
  echo "test-asan: Node headers not found; set NODE_INCLUDE to the folder holding node_api.h" >&2
  exit 2
fi
addon_api=$(node -p "require('path').resolve(require('node-addon-api').include_dir)")
objdir="$out/obj"
release="$out/build/Release"
mkdir -p "$objdir" "$release"
flags="$common -fPIC -fexceptions -fno-math-errno -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNAPI_CPP_EXCEPTIONS -I$node_include -I$addon_api"
echo "== addon (ASan + UBSan) -> $release"
sources=$(node -p "require('./native/sources.json').join(' ')")
# Compile in parallel; xargs stops with a non-zero status when a compile fails.
printf '%s\n' $sources | xargs -P "$jobs" -I{} sh -c '
  obj="$1/$(basename "$2" .cc).o"
  echo "   $2"
  $3 $4 -c "$2" -o "$obj"' sh "$objdir" {} "$CXX" "$flags"
objs=""
for s in $sources; do objs="$objs $objdir/$(basename "$s" .cc).o"; done
# shellcheck disable=SC2086
$CXX -shared $san -pthread -o "$release/modelslice.node" $objs
# The kernels harness links the same sanitized objects, without the binding: every
# operand an exact-size heap allocation, so ASan sees one element past any of them.
kernel_objs=""
for s in $sources; do
  case "$s" in *binding.cc) ;; *) kernel_objs="$kernel_objs $objdir/$(basename "$s" .cc).o" ;; esac
done
echo "== kernels_check (ASan + UBSan)"
# shellcheck disable=SC2086
$CXX $common native/test/kernels_check.cc $kernel_objs -o "$out/kernels_check"
ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$out/kernels_check"
# node-gyp-build reads <package name>_PREBUILD's build/Release first; it also needs a package.json there.
printf '{"name": "modelslice"}\n' > "$out/package.json"
built=$(date +%s)
echo "== built in $((built - started)) s"
loaded=$(MODELSLICE_PREBUILD="$out" node -p "require('node-gyp-build').path('$root')")
if [ "$loaded" != "$release/modelslice.node" ]; then
  echo "test-asan: node-gyp-build would load $loaded, not the sanitized addon" >&2
  exit 2
fi

# 3. The kernel tests under the sanitizers. Node itself is not instrumented, so
# libasan goes first via LD_PRELOAD; leaks are V8's business, not ours.
if [ "$#" -gt 0 ]; then
  tests="$*"
else
  # isa.test.ts builds the unsanitized harness itself; concurrency.test.ts runs the kernels
  # from several threads at once.
  tests=$(ls test/native/*.test.ts test/ops/*.test.ts test/nn/*.test.ts test/slicing/*.test.ts \
    test/serve/concurrency.test.ts test/train/non-finite.test.ts | grep -v 'test/native/isa.test.ts')
fi
echo "== tap under ASan + UBSan: $(echo $tests | wc -w) files"
# shellcheck disable=SC2086
env LD_PRELOAD="$libasan" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  MODELSLICE_PREBUILD="$out" \
  npx tap --disable-coverage --timeout=900 --jobs=1 -R "${TAP_REPORTER:-tap}" $tests
echo "== ASan + UBSan run passed in $(($(date +%s) - started)) s (build $((built - started)) s)"
