#!/usr/bin/env bash
# tests/install-deps.sh: installs the Debian packages mintgrad builds and
# tests with, plus any named as arguments (e.g. dataset-fashion-mnist).
# As root it runs apt-get; otherwise it prints the command and fails.
# Shared by tests/run.sh and examples/quickstart.sh.
set -euo pipefail

packages=(autoconf automake libtool pkg-config make gcc libc6-dev
          libdnnl-dev libyaml-dev libcriterion-dev libgraphviz-dev graphviz
          libjson-c-dev libpng-dev zlib1g-dev "$@")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 2
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
