#!/usr/bin/env bash
# count.sh - the hot paths of moonlog counted in instructions per event under callgrind.
#
# Wall-clock figures on a shared machine move 10-30% between runs; instructions
# counted by valgrind's callgrind do not move with the load. This script builds
# what it needs, makes the logs, and runs each path twice under callgrind, over N
# and over 2N events: the difference of the two totals divided by N is the cost
# of one event, with every fixed cost (starting, opening the log, loading the
# script, printing the state, stopping) taken out.
#
#   fold    `moonlog replay` of the sum-by-stream script of `moonlog bench replay`
#           (every event reaches Lua: s[e.stream] = (s[e.stream] or 0) + e.data.amount)
#           over a log that command builds (100-byte data, 10,000 streams)
#   read    the server's side of read("$all", from, 1000), page after page with one
#           request in flight (moonlog-peerbench moonlog read, as `make bench` does),
#           over a log of the bench's events (moonlog-peerbench moonlog load)
#   append  the server's side of durable appends over the network (64 connections,
#           32 in flight on each, --fsync always); the runs are timed, so the two
#           totals are divided by the difference of the events each one acknowledged
#   apply   a node of a replicated log (docs/scale-out.md) catching up on an empty
#           data folder from a JetStream stream of the bench's events, every thread:
#           what every node spends on every event appended anywhere (decompressing,
#           the checks, the index, the write). Starts a 3-node NATS cluster
#           (tools/nats-cluster.sh) on free loopback ports and stops it after; not in
#           the default set
#   replicated  as append, on one node of a replicated log on that cluster, every
#           thread: the RPC loop, the journal entry, the publisher (zstd), and the
#           node's own apply of the entry; not in the default set
#
# Usage: bench/count.sh [--build DIR] [--events N] [--only fold,read,append,apply,replicated]
#        [--keep]
#        make count [COUNT_ARGS='--events 50000']
# Only user-space instructions are counted (not the kernel's work in system calls).
# Takes about 3 minutes with the default N = 100000 on 2 cores.
set -euo pipefail

build=build events=100000 only=fold,read,append keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--events) events=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "count.sh: unknown option $1; see bench/count.sh --help" >&2; exit 2 ;;
	esac
done
case "$events" in '' | *[!0-9]*) echo "count.sh: --events takes a number of events" >&2; exit 2 ;; esac
[ "$events" -ge 1000 ] || { echo "count.sh: --events must be at least 1000" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/deps.sh count
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(moonlog moonlog-peerbench)
case ",$only," in *,apply,* | *,replicated,*) targets+=(moonlog_jetstream) ;; esac
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >/dev/null
moonlog=$(cd "$build" && pwd)/moonlog
peerbench=$(cd "$build" && pwd)/moonlog-peerbench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/moonlog-count.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -d "$tmp/nats" ] && tools/nats-cluster.sh down --dir "$tmp/nats" >/dev/null 2>&1 || true
	if [ "$keep" = 1 ]; then echo "count.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The total of a callgrind output file (its "totals:" line).
total() { awk '/^totals:/ { print $2 }' "$1"; }
callgrind() { valgrind --tool=callgrind --callgrind-out-file="$1" "${@:2}"; }
wants() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
per_event() { echo $(((($2) - ($1) + ($3) / 2) / ($3))); }

results=()

# A server on a free port in data folder $1, under callgrind into $2 when given (and on
# the replicated log of $replicate when set): sets $port, $pid.
replicate=()
serve() {
	port=$("$peerbench" freeport)
	local cmd=("$moonlog" serve --data "$1" --listen "127.0.0.1:$port" --http off --admin off
		--fsync always --quiet "${replicate[@]}")
	if [ -n "${2:-}" ]; then
		valgrind --tool=callgrind --callgrind-out-file="$2" "${cmd[@]}" 2>>"$tmp/valgrind.log" &
	else
		"${cmd[@]}" &
	fi
	pid=$!
	pids+=("$pid")
	"$peerbench" moonlog wait --port "$port" --seconds 120 >/dev/null
}
stop() {
	kill -TERM "$pid"
	wait "$pid" || { echo "count.sh: the server in $1 did not stop cleanly" >&2; exit 1; }
}

# The two append runs of $1 (a row's name) on servers started with $replicate; adds its row.
count_appends() {
	declare -A acked
	for s in 2 6; do
		[ ${#replicate[@]} -eq 0 ] || replicate[3]="COUNTA$s"
		serve "$tmp/$2.$s" "$tmp/$2.$s.out"
		line=$("$peerbench" moonlog append --port "$port" --conns 64 --window 32 --seconds "$s")
		acked[$s]=$(echo "$line" | sed -n 's/.*events=\([0-9]*\).*/\1/p')
		stop "$tmp/$2.$s"
	done
	d=$((acked[6] - acked[2]))
	[ "$d" -gt 0 ] || { echo "count.sh: the longer $2 run acknowledged no more events" >&2; exit 1; }
	results+=("$1|$(per_event "$(total "$tmp/$2.2.out")" "$(total "$tmp/$2.6.out")" "$d")")
}

if wants fold; then
	echo "count.sh: fold: building a log of $((2 * events)) events..." >&2
	"$moonlog" bench replay --events $((2 * events)) --baseline 1000 --keep --dir "$tmp/fold" >/dev/null 2>&1
	for n in "$events" $((2 * events)); do
		callgrind "$tmp/fold.$n.out" "$moonlog" replay --data "$tmp/fold" --until "$n" \
			"$tmp/fold/sum.lua" >/dev/null 2>>"$tmp/valgrind.log"
	done
	results+=("fold (moonlog replay, sum data.amount by stream)|$(per_event "$(total "$tmp/fold.$events.out")" "$(total "$tmp/fold.$((2 * events)).out")" "$events")")
fi

if wants read; then
	echo "count.sh: read: loading $((2 * events)) events into a server..." >&2
	serve "$tmp/read"
	"$peerbench" moonlog load --port "$port" --count $((2 * events)) --conns 4 >/dev/null
	stop "$tmp/read"
	for n in "$events" $((2 * events)); do
		serve "$tmp/read" "$tmp/read.$n.out"
		"$peerbench" moonlog read --port "$port" --count "$n" --chunk 1000 >/dev/null
		stop "$tmp/read"
	done
	results+=("read (\$all in pages of 1000, server side)|$(per_event "$(total "$tmp/read.$events.out")" "$(total "$tmp/read.$((2 * events)).out")" "$events")")
fi

if wants append; then
	echo "count.sh: append: two timed runs of 64 connections x 32 in flight..." >&2
	count_appends "append (64 conns x 32 in flight, durable, server side)" append
fi

if wants apply || wants replicated; then
	base=$("$peerbench" freeport --span 23)
	echo "count.sh: starting a 3-node NATS cluster on 127.0.0.1:$base..." >&2
	tools/nats-cluster.sh up --dir "$tmp/nats" --port "$base" >/dev/null
	urls=$(tools/nats-cluster.sh urls --dir "$tmp/nats")
fi

if wants apply; then
	echo "count.sh: apply: streams of $events and $((2 * events)) events..." >&2
	for n in "$events" $((2 * events)); do # one stream each: the same fixed costs
		replicate=(--replicate "$urls" --replicate-stream "COUNT$n")
		serve "$tmp/apply.load.$n"
		"$peerbench" moonlog load --port "$port" --count "$n" --conns 4 >/dev/null
		stop "$tmp/apply.load.$n"
		serve "$tmp/apply.$n" "$tmp/apply.$n.out" # listens once caught up
		stop "$tmp/apply.$n"
	done
	replicate=()
	results+=("apply (a node catching up from JetStream, all threads)|$(per_event "$(total "$tmp/apply.$events.out")" "$(total "$tmp/apply.$((2 * events)).out")" "$events")")
fi

if wants replicated; then
	echo "count.sh: replicated: two timed runs of 64 connections x 32 in flight on one node..." >&2
	replicate=(--replicate "$urls" --replicate-stream COUNTA)
	count_appends "append on a replicated node (as append, all threads)" replicated
	replicate=()
fi

if wants apply || wants replicated; then
	tools/nats-cluster.sh down --dir "$tmp/nats" >/dev/null
fi

printf '%-56s %s\n' "path ($events and $((2 * events)) events; difference / events)" "instructions/event"
for r in "${results[@]}"; do printf '%-56s %18s\n' "${r%%|*}" "${r##*|}"; done
