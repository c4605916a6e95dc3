#!/usr/bin/env bash
# Builds pyimgcls in a variant and runs the native-kernel test files against it, beside the normal
# install (the variant goes to its own folder, first on PYTHONPATH):
#   tools/native_variant_tests.sh nosimd     # the portable scalar kernels (PYIMGCLS_NO_SIMD)
#   tools/native_variant_tests.sh sanitize   # AddressSanitizer + UndefinedBehaviorSanitizer
# Needs the test dependencies installed (pip install ".[test]"). Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?nosimd or sanitize}
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
tests=(tests/preprocessing tests/ops tests/metrics tests/runtime/test_threads.py tests/io/test_png_native.py tests/test_native_boundary.py
       tests/jobs/test_softmax_head.py tests/test_guarded_reads.py)
case "$variant" in
  nosimd)
    pip install --no-deps -q . --target "$target" \
      -C cmake.define.PYIMGCLS_NO_SIMD=ON -C cmake.define.PYIMGCLS_WERROR=ON -C build-dir=build/variant-nosimd
    (cd / && PYTHONPATH="$target" python -c "import pyimgcls; assert pyimgcls.__file__.startswith('$target'), pyimgcls.__file__")
    # (the tests that check the build reaches its SIMD paths on this CPU skip on this variant)
    PYIMGCLS_BUILD_VARIANT=nosimd PYTHONPATH="$target" pytest -q -p no:cacheprovider "${tests[@]}"
    ;;
  sanitize)
    pip install --no-deps -q . --target "$target" \
      -C cmake.define.PYIMGCLS_SANITIZE=address,undefined -C cmake.build-type=RelWithDebInfo \
      -C build-dir=build/variant-sanitize
    asan=$(g++ -print-file-name=libasan.so)
    ubsan=$(g++ -print-file-name=libubsan.so)
    # the sanitizer runtimes must be loaded before the interpreter's libraries; leaks are not
    # checked (the interpreter and its extension modules keep memory to the end)
    export LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    (cd / && PYTHONPATH="$target" python -c "import pyimgcls; assert pyimgcls.__file__.startswith('$target'), pyimgcls.__file__")
    PYTHONPATH="$target" pytest -q -p no:cacheprovider "${tests[@]}"
    ;;
  *) echo "unknown variant $variant" >&2; exit 2 ;;
esac
