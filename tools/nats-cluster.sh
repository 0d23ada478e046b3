#!/usr/bin/env bash
# tools/nats-cluster.sh - a real 3-node NATS JetStream cluster on loopback ports, for trying
# moonlog's replicated log by hand (docs/scale-out.md) and for the specs that test it.
#
#   tools/nats-cluster.sh up      [--dir DIR] [--port BASE]   start the three servers, wait for JetStream
#   tools/nats-cluster.sh down    [--dir DIR]                 stop them (SIGTERM), keep their stores
#   tools/nats-cluster.sh status  [--dir DIR]                 which run, the JetStream meta leader
#   tools/nats-cluster.sh urls    [--dir DIR]                 the --replicate value for moonlog serve
#   tools/nats-cluster.sh leader  STREAM [--dir DIR]          the node (1-3) leading STREAM
#   tools/nats-cluster.sh kill    N [--dir DIR]               kill -9 node N (a crash)
#   tools/nats-cluster.sh start   N [--dir DIR]               start node N again, same store
#
# Node N (1..3) listens for clients on BASE+N-1 (default BASE 4222: 4222, 4223, 4224), for the
# other nodes on BASE+N+9, and serves its monitoring page on BASE+N+19. Each keeps its config,
# log, pid file and JetStream store in DIR/nN (default DIR ./nats-cluster). `up` on a folder that
# has a cluster's stores starts that cluster again, with its data. Needs nats-server (Debian's
# 2.9.10: tools/deps.sh installs it) and curl.
set -euo pipefail

cmd=${1:-}
[ $# -gt 0 ] && shift
arg=""
case "$cmd" in leader | kill | start) arg=${1:-}; [ $# -gt 0 ] && shift ;; esac
dir=./nats-cluster
base=""
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=$2; shift 2 ;;
	--port) base=$2; shift 2 ;;
	*) echo "nats-cluster: unknown argument '$1'; see the top of $0" >&2; exit 2 ;;
	esac
done

die() { echo "nats-cluster: $*" >&2; exit 1; }

# The base port: given, or the one the folder was made with, or 4222.
if [ -z "$base" ]; then
	if [ -f "$dir/base" ]; then base=$(cat "$dir/base"); else base=4222; fi
fi
case "$base" in '' | *[!0-9]*) die "--port takes a number (the first client port), not '$base'" ;; esac

client_port() { echo $((base + $1 - 1)); }
route_port() { echo $((base + $1 + 9)); }
http_port() { echo $((base + $1 + 19)); }
pid_of() { [ -f "$dir/n$1/nats.pid" ] && cat "$dir/n$1/nats.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

write_config() {
	local n=$1 routes="" i
	for i in 1 2 3; do routes+="    nats-route://127.0.0.1:$(route_port "$i")"$'\n'; done
	mkdir -p "$dir/n$n/store"
	cat >"$dir/n$n/nats.conf" <<EOF
# node $n of a moonlog test cluster (tools/nats-cluster.sh)
server_name: n$n
listen: 127.0.0.1:$(client_port "$n")
http: 127.0.0.1:$(http_port "$n")
pid_file: "$dir/n$n/nats.pid"
# moonlog sends the batches of one turn as one message: allow large ones
max_payload: 8MB
jetstream {
  store_dir: "$dir/n$n/store"
  max_memory_store: 64MB
  max_file_store: 4GB
}
cluster {
  name: moonlog
  listen: 127.0.0.1:$(route_port "$n")
  routes: [
$routes  ]
}
EOF
}

start_node() {
	local n=$1
	alive "$n" && return 0
	[ -f "$dir/n$n/nats.conf" ] || write_config "$n"
	rm -f "$dir/n$n/nats.pid"
	nohup nats-server -c "$dir/n$n/nats.conf" >>"$dir/n$n/nats.log" 2>&1 </dev/null &
	local i
	for i in $(seq 100); do
		[ -f "$dir/n$n/nats.pid" ] && return 0
		kill -0 $! 2>/dev/null || die "node $n did not start: $(tail -n 3 "$dir/n$n/nats.log" | tr '\n' ' ')"
		sleep 0.05
	done
	die "node $n wrote no pid file in 5 s; see $dir/n$n/nats.log"
}

# The JetStream meta leader as node n (empty until one is elected).
meta_leader() {
	local n
	for n in 1 2 3; do
		alive "$n" || continue
		curl -s -m 2 "http://127.0.0.1:$(http_port "$n")/jsz" | tr -d '\n' |
			sed -n 's/.*"meta_cluster": *{[^}]*"leader": *"\([^"]*\)".*/\1/p' | tr -d '\n' | sed 's/^n//'
		return 0
	done
}

urls() {
	echo "nats://127.0.0.1:$(client_port 1),nats://127.0.0.1:$(client_port 2),nats://127.0.0.1:$(client_port 3)"
}

case "$cmd" in
up)
	command -v nats-server >/dev/null || die "nats-server is not installed: run tools/deps.sh (or apt-get install nats-server)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	echo "$base" >"$dir/base"
	for n in 1 2 3; do start_node "$n"; done
	for i in $(seq 150); do
		l=$(meta_leader || true)
		if [ -n "$l" ]; then
			echo "nats-cluster: up in $dir, JetStream meta leader n$l; moonlog serve --replicate $(urls)" >&2
			exit 0
		fi
		sleep 0.2
	done
	die "JetStream elected no leader in 30 s; see $dir/n*/nats.log"
	;;
down)
	for n in 1 2 3; do
		p=$(pid_of "$n")
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
	done
	for n in 1 2 3; do
		for i in $(seq 100); do alive "$n" || break; sleep 0.1; done
		alive "$n" && kill -KILL "$(pid_of "$n")" 2>/dev/null || true
		rm -f "$dir/n$n/nats.pid"
	done
	exit 0
	;;
status)
	up=0
	for n in 1 2 3; do
		if alive "$n"; then
			echo "n$n running (pid $(pid_of "$n")), clients on 127.0.0.1:$(client_port "$n")"
			up=$((up + 1))
		else
			echo "n$n stopped"
		fi
	done
	l=$(meta_leader || true)
	if [ -n "$l" ]; then echo "JetStream meta leader: n$l"; else echo "JetStream meta leader: none"; fi
	[ "$up" -eq 3 ]
	;;
urls)
	urls
	;;
leader)
	[ -n "$arg" ] || die "leader takes a stream name: tools/nats-cluster.sh leader MOONLOG"
	for n in 1 2 3; do
		alive "$n" || continue
		l=$(curl -s -m 2 "http://127.0.0.1:$(http_port "$n")/jsz?streams=true" |
			tr -d ' \n' | grep -o "\"name\":\"$arg\",[^]]*\"leader\":\"n[0-9]\"" |
			sed -n 's/.*"leader":"n\([0-9]\)".*/\1/p' | head -n 1)
		[ -n "$l" ] && { echo "$l"; exit 0; }
	done
	die "no running node reports a leader for stream $arg"
	;;
kill)
	case "$arg" in 1 | 2 | 3) ;; *) die "kill takes a node number, 1 to 3" ;; esac
	p=$(pid_of "$arg")
	[ -n "$p" ] || die "node $arg is not running"
	kill -KILL "$p" 2>/dev/null || true
	for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	rm -f "$dir/n$arg/nats.pid"
	;;
start)
	case "$arg" in 1 | 2 | 3) ;; *) die "start takes a node number, 1 to 3" ;; esac
	dir=$(cd "$dir" && pwd)
	start_node "$arg"
	;;
*)
	echo "usage: tools/nats-cluster.sh up|down|status|urls [--dir DIR] [--port BASE]" >&2
	echo "       tools/nats-cluster.sh leader STREAM | kill N | start N [--dir DIR]" >&2
	exit 2
	;;
esac
