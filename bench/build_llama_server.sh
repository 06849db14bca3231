#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` from the llama.cpp sources vendored in the llama-cpp-python sdist of
# the exact version installed in the venv, with the same CPU flags as our llama-cpp-python build, so that
# bench/llamacpp_servers.sh compares vllama with llama.cpp's server on the same kernels.
#
#     bench/build_llama_server.sh                     # builds into /tmp/llama-server-build
#     BUILD_DIR=/some/dir PYTHON=.venv/bin/python bench/build_llama_server.sh
#
# Prints the path of the binary on its last line (also written to $BUILD_DIR/llama-server.path).
# Takes ~10-20 min on 2 cores. Needs cmake, a C/C++ compiler, and PyPI reachable (pip download of the sdist).
# Nothing is written inside the repository.
#
# Flags: -DGGML_NATIVE=OFF mirrors our llama-cpp-python build (CMAKE_ARGS="-DGGML_NATIVE=OFF"; a native build
# crashes in the AMX kernels on Sapphire Rapids); OpenMP stays on (default) as in the wheel; Release build as
# scikit-build-core does. The web UI is not downloaded (LLAMA_USE_PREBUILT_UI=OFF) and HTTPS is off
# (LLAMA_OPENSSL=OFF): the server is only used on loopback. LLAMA_CURL is deprecated in this tree (no-op).
# Extra cmake arguments can be passed in $EXTRA_CMAKE_ARGS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
BUILD_DIR="${BUILD_DIR:-/tmp/llama-server-build}"
JOBS="${JOBS:-$(nproc)}"

version="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
echo "llama-cpp-python installed: $version"
mkdir -p "$BUILD_DIR"
src="$BUILD_DIR/llama_cpp_python-$version"
if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
    sdist="$BUILD_DIR/llama_cpp_python-$version.tar.gz"
    if [ ! -f "$sdist" ]; then
        "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$BUILD_DIR"
    fi
    tar -xzf "$sdist" -C "$BUILD_DIR"
fi
llama="$src/vendor/llama.cpp"
echo "llama.cpp sources: $llama"

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# shellcheck disable=SC2086
cmake -S "$llama" -B "$llama/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF \
    ${EXTRA_CMAKE_ARGS:-}
cmake --build "$llama/build" --target llama-server -j"$JOBS"

bin="$llama/build/bin/llama-server"
test -x "$bin"
"$bin" --version 2>&1 | head -n 3 || true
echo "$bin" > "$BUILD_DIR/llama-server.path"
echo "$bin"
