#!/bin/sh
# install_deps.sh: makes sure the Debian packages tinyrope builds against are present.
# Needed: libopenblas-openmp-dev (the OpenMP build of OpenBLAS: the pthread build's thread pool
# fights our OpenMP threads), libcjson-dev, libstb-dev. Installs them when run as root or with
# password-less sudo; otherwise prints the one command to run and fails.
set -u
arch=$(${CC:-cc} -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
pkgs="libopenblas-openmp-dev libcjson-dev libstb-dev"
missing=""
[ -f "/usr/include/$arch/openblas-openmp/cblas.h" ] || missing="$missing libopenblas-openmp-dev"
[ -f /usr/include/cjson/cJSON.h ] || missing="$missing libcjson-dev"
[ -f /usr/include/stb/stb_image_write.h ] || missing="$missing libstb-dev"
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
