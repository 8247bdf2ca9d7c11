#!/bin/sh
# Installs the Debian packages ebsfs needs, and only those missing.
#   scripts/deps.sh build   what the daemon and the demo need
#   scripts/deps.sh test    that, plus what the test suites need
set -eu

build="gcc meson ninja-build pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev
libjansson-dev python3 jq"
test="$build libcmocka-dev python3-pytest clang libclang-rt-14-dev valgrind openssl
man-db groff-base jq clang-format procps"

case "${1:-build}" in
build) wanted=$build ;;
test) wanted=$test ;;
*) echo "usage: $0 build|test" >&2; exit 1 ;;
esac

missing=""
for p in $wanted; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
