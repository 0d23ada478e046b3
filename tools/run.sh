#!/usr/bin/env bash
# `make run`: serve the bank example (examples/bank) on a data folder, with its
# scripts living in the server: the account decider and the balances projection.
# Prints how to try it with curl, then runs the server in the foreground
# (Ctrl-C stops it cleanly: snapshots are written on the way out).
set -euo pipefail
build=${1:-build}
data=${2:-./moonlog-data}
scripts=${3:-examples/bank/scripts}
ml="$build/moonlog"
http=127.0.0.1:7421

cat <<TXT
moonlog: serving the bank example ($scripts), data in $data
HTTP on $http, msgpack-RPC on 127.0.0.1:7420, admin socket $data/moonlog.sock

Open http://$http/ in a browser: the web console (docs/console.md).

Or try, in another terminal:
  curl -s -XPOST $http/commands/account/Open     -d '{"id": 1, "owner": "ada"}'
  curl -s -XPOST $http/commands/account/Deposit  -d '{"id": 1, "amount": 100}'
  curl -s -XPOST $http/commands/account/Withdraw -d '{"id": 1, "amount": 500}'   # 422: insufficient funds
  curl -s '$http/projections/balances/balance?arg=account-1'
  curl -s $http/projections/balances
  curl -s $http/streams/account-1
  curl -s $http/scripts
  $ml read --connect 127.0.0.1:7420 account-1
  (a walk-through: examples/bank/README.md)

TXT
exec "$ml" serve --data "$data" --scripts "$scripts"
