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
# zstd: the replicated log compresses each JetStream message's body (plugins/jetstream/message.c).
pkgs+=(libzstd-dev)
# luacheck, with lua/moonlog/tools/luacheckrc in spec/e2e/authoring (Debian's lua-check).
pkgs+=(lua-check)
# promtool, which checks GET /metrics in spec/e2e/server_http (Debian ships it with prometheus).
pkgs+=(prometheus)
[ "${1:-}" = bench ] && pkgs+=(redis-server tarantool)
# valgrind: bench/count.sh counts instructions per event under callgrind (make count).
[ "${1:-}" = count ] && pkgs+=(valgrind)
# Wanted where the distribution has them for this machine, not needed to build: chromium,
# headless, drives the web console in spec/e2e/console_spec.lua (skipped, saying so, without).
optional=(chromium)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
want=()
for p in "${optional[@]}"; do installed "$p" || want+=("$p"); done
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; }
if [ ${#missing[@]} -eq 0 ]; then # only optional ones: no apt-get update for what is not there
	have=()
	for p in "${want[@]}"; do
		if has_candidate "$p"; then have+=("$p"); else
			echo "moonlog: $p is not available here: spec/e2e/console skips its browser test" >&2
		fi
	done
	want=("${have[@]}")
	[ ${#want[@]} -eq 0 ] && exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		[ ${#missing[@]} -eq 0 ] && exit 0 # only optional ones: build without them
		echo "moonlog: run as root or install: ${missing[*]}" >&2
		exit 1
	fi
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	echo "moonlog: installing missing Debian packages: ${missing[*]}" >&2
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${want[@]}"; do
	if ! has_candidate "$p"; then
		echo "moonlog: $p is not available here: spec/e2e/console skips its browser test" >&2
	else
		echo "moonlog: installing $p (for the web console's browser test)" >&2
		$sudo apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
			echo "moonlog: $p did not install: spec/e2e/console skips its browser test" >&2
	fi
done
