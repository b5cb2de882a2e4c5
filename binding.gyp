{
  "targets": [
    {
      "target_name": "modelslice",
      "sources": ["<!@(node -p \"require('./native/sources.json').join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
      "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
      "conditions": [
        ["OS=='linux'", {
          # libstdc++ and libgcc are linked in (and not re-exported), so a prebuilt binary
          # needs only libc/libm of a glibc (or musl) at least as new as the build machine's.
          # No -march anywhere: x86 kernels carry per-function target attributes and are
          # chosen from cpuid at load (native/cpu.cc); threads come from native/parallel.cc.
          # -ffp-contract=off (above): no fma the source did not ask for, so the AVX2 and
          # AVX-512 clones of cpu.h's run_isa round exactly as the portable code.
          "ldflags": ["-static-libstdc++", "-static-libgcc", "-Wl,--exclude-libs,ALL"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CFLAGS": ["-ffp-contract=off"]
          }
        }],
        ["OS=='win'", {
          "msvs_settings": {
            "VCCLCompilerTool": {"ExceptionHandling": 1, "Optimization": 2, "AdditionalOptions": ["/std:c++17"]}
          }
        }]
      ]
    }
  ]
}
