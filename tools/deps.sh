#!/usr/bin/env bash
# Installs the Debian packages moonlog needs to build and test, if any are missing.
# Used by `make run`, `make test` and `make bench`; safe to run again (it does nothing then).
set -euo pipefail

# libclang-rt-14-dev: clang's sanitizer runtimes and libFuzzer (clang only recommends it).
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev liblua5.4-dev lua5.4 libevent-dev
      libmsgpack-dev libedit-dev lua-busted lua-messagepack lua-cjson lua-socket
      lua-posix curl tmux)
# The replicated log (plugins/jetstream, tools/nats-cluster.sh, spec/e2e/scale_*): the NATS
# server and its C client, Debian's versions (nats-server 2.9.10, nats.c 3.4.1; docs/scale-out.md).
pkgs+=(nats-server libnats-dev)
# luacheck, with lua/moonlog/tools/luacheckrc in spec/e2e/authoring (Debian's lua-check).
pkgs+=(lua-check)
# promtool, which checks GET /metrics in spec/e2e/server_http (Debian ships it with prometheus).
pkgs+=(prometheus)
[ "${1:-}" = bench ] && pkgs+=(redis-server tarantool)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "moonlog: installing missing Debian packages: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "moonlog: run as root or install: ${missing[*]}" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
