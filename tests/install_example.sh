#!/usr/bin/env bash
# The installed package works for a project of its own: install ManualCNN into a temporary prefix,
# then configure, build and run examples/custom_model against it twice, once with the consumer's
# CMAKE_CXX_FLAGS empty and once with -march=native (the library's ABI must not depend on them).
# Usage: tests/install_example.sh BUILD_DIR EXAMPLE_DIR [CXX_COMPILER] [COMPILER_LAUNCHER]
set -euo pipefail
build_dir=$1
example_dir=$2
compiler=${3:-}
launcher=${4:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcnn-install-example.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== install $build_dir into $tmp/prefix"
cmake --install "$build_dir" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
for header in mcnn/mcnn.hpp mcnn/tensor.hpp; do
  [ -f "$tmp/prefix/include/$header" ] || { echo "install: include/$header missing"; exit 1; }
done

configure_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix")
[ -n "$compiler" ] && configure_args+=(-DCMAKE_CXX_COMPILER="$compiler")
[ -n "$launcher" ] && configure_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")

for flags in "" "-march=native"; do
  name=example${flags:+-native}
  echo "== $name: CMAKE_CXX_FLAGS='$flags'"
  cmake -S "$example_dir" -B "$tmp/$name" "${configure_args[@]}" -DCMAKE_CXX_FLAGS="$flags" >"$tmp/$name.log" 2>&1 \
    || { cat "$tmp/$name.log"; echo "FAILED: configure $name"; exit 1; }
  cmake --build "$tmp/$name" >>"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; echo "FAILED: build $name"; exit 1; }
  "$tmp/$name/custom_model" || { echo "FAILED: run $name (exit $?)"; exit 1; }
done
echo "install_example: passed"
