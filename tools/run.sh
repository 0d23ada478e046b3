#!/usr/bin/env bash
# `make run`: show moonlog at work on a fresh data folder.
# While the server and the examples are being built, this walks through the log
# from the command line: appends, an optimistic-concurrency refusal, an
# idempotent retry, reads, and a check.
set -euo pipefail
build=${1:-build}
data=${2:-./moonlog-data}
ml="$build/moonlog"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@" || echo "(exit status $?)"; }

echo "moonlog demo: a durable event log, data in $data"
run "$ml" append --data "$data" account-1 Opened '{"owner": "ada"}' --expect no_stream
run "$ml" append --data "$data" account-1 Deposited '{"amount": 100}' --expect 1
run "$ml" append --data "$data" account-1 Withdrawn '{"amount": 30}' --expect 2 --id withdraw-1
say "# the same request again (a client retry): stored once"
run "$ml" append --data "$data" account-1 Withdrawn '{"amount": 30}' --expect 2 --id withdraw-1
say "# a writer that read an old version is refused"
run "$ml" append --data "$data" account-1 Withdrawn '{"amount": 500}' --expect 1
run "$ml" read --data "$data" account-1
run "$ml" read --data "$data" '$all' --json
run "$ml" check --data "$data"
echo
echo "Try: $ml help"
