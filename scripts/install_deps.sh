#!/bin/sh
# install_deps.sh: makes sure the Debian packages tinyrope builds against are present.
# Needed: libopenblas-openmp-dev (the OpenMP build of OpenBLAS: the pthread build's thread pool
# fights our OpenMP threads), libcjson-dev, libstb-dev. Installs them when run as root or with
# password-less sudo; otherwise prints the one command to run and fails.
# `install_deps.sh fuzz` does the same for make fuzz: clang able to build libFuzzer targets with
# ASan + UBSan ($FUZZ_CC, default clang), which needs clang, libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes) and llvm (llvm-symbolizer, for readable stack traces).
set -u
fuzzer_builds() {
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' |
        "${FUZZ_CC:-clang}" -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1
}
if [ "${1:-}" = fuzz ]; then
    pkgs="clang libclang-rt-14-dev llvm"
    missing=""
    fuzzer_builds || missing=" $pkgs"
else
    arch=$(${CC:-cc} -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    pkgs="libopenblas-openmp-dev libcjson-dev libstb-dev"
    missing=""
    [ -f "/usr/include/$arch/openblas-openmp/cblas.h" ] || missing="$missing libopenblas-openmp-dev"
    [ -f /usr/include/cjson/cJSON.h ] || missing="$missing libcjson-dev"
    [ -f /usr/include/stb/stb_image_write.h ] || missing="$missing libstb-dev"
fi
[ -z "$missing" ] && exit 0

echo "installing missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "error: missing Debian packages:$missing; run: sudo apt-get install -y $pkgs" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq $pkgs >/dev/null || {
    echo "error: apt-get could not install$missing; run: sudo apt-get install -y $pkgs" >&2
    exit 1
}
if [ "${1:-}" = fuzz ] && ! fuzzer_builds; then
    echo "error: ${FUZZ_CC:-clang} still cannot build libFuzzer targets (-fsanitize=fuzzer)" >&2
    exit 1
fi
