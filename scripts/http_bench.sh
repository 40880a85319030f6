#!/usr/bin/env bash
# requests/second of examples/http_hello.rs next to Go's net/http hello
# server, both loaded by the same Go keep-alive client (scripts/http/load).
# Usage: scripts/http_bench.sh [connections=100] [seconds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
c=${1:-100}; secs=${2:-5}
out=$PWD/target/peers; mkdir -p "$out"
go=$(ls "$HOME"/gov/bin/go 2>/dev/null || command -v go)
export GOTOOLCHAIN=local GOPATH=$out/gopath GOCACHE=$out/gocache GO111MODULE=off
( cd scripts/http/load && "$go" build -o "$out/httpload" . )
( cd scripts/http/hello && "$go" build -o "$out/gohello" . )
cargo build -q --release --example http_hello
ulimit -n "$(ulimit -Hn)" || true
bench() { # name cmd...
  local name=$1; shift
  "$@" 127.0.0.1:18080 >/dev/null 2>&1 & local pid=$!
  sleep 0.5
  printf '%-22s ' "$name"; "$out/httpload" 127.0.0.1:18080 "$c" "$secs"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
bench "goro http_hello" target/release/examples/http_hello
bench "Go net/http ($("$go" version | awk '{print $3}'))" "$out/gohello"
