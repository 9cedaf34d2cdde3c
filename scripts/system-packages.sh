#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are missing: through apt-get as root
# (package lists refreshed only when the first try fails), else fails naming them.
set -euo pipefail

if ! command -v dpkg-query > /dev/null; then
    echo "make: needs the Debian/Ubuntu packages: $* (no dpkg here; install their equivalents)" >&2
    exit 1
fi
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2> /dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "make: missing Debian packages: ${missing[*]}" >&2
    echo "make: install them as root: apt-get install ${missing[*]}" >&2
    exit 1
fi
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null; }
install || { apt-get update -qq && install; }
