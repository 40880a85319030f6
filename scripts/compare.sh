#!/usr/bin/env bash
# Side-by-side: goro's workloads example vs the Go peers (built by
# scripts/peers.sh), alternating, ROUNDS rounds (default 3), median ms and
# median peak RSS. Prints a markdown table. Usage: scripts/compare.sh [workload...]
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" || true
[ -x target/peers/go127 ] && [ -x target/peers/go119 ] || scripts/peers.sh
cargo build -q --release --example workloads
goro=target/release/examples/workloads
rounds=${ROUNDS:-3}
ws=("$@")
[ ${#ws[@]} -gt 0 ] || ws=(skynet pingpong mpmc select ring timers idle sieve echo deep)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # bin workload -> "ms rss_mb"
  local out
  out=$( { /usr/bin/time -f "RSS %M" "$1" "$2" 2>&1 1>&3 | grep '^RSS' ; } 3>&1 )
  local ms rss
  ms=$(echo "$out" | sed -n 's/.*ms=\([0-9.]*\).*/\1/p')
  rss=$(echo "$out" | awk '/^RSS/ {printf "%d", $2/1024}')
  echo "$ms $rss"
}
echo "| workload | Go 1.27 ms | Go 1.19 ms | goro ms | goro / best Go | RSS MB Go1.27 / Go1.19 / goro |"
echo "|---|---:|---:|---:|---:|---|"
for w in "${ws[@]}"; do
  declare -A ms rss
  for sys in go127 go119 goro; do ms[$sys]=""; rss[$sys]=""; done
  for _ in $(seq "$rounds"); do
    for sys in go127 go119 goro; do
      bin=target/peers/$sys; [ "$sys" = goro ] && bin=$goro
      read -r m r < <(run "$bin" "$w")
      ms[$sys]+="$m"$'\n'; rss[$sys]+="$r"$'\n'
    done
  done
  a=$(printf '%s' "${ms[go127]}" | median); b=$(printf '%s' "${ms[go119]}" | median); g=$(printf '%s' "${ms[goro]}" | median)
  ra=$(printf '%s' "${rss[go127]}" | median); rb=$(printf '%s' "${rss[go119]}" | median); rg=$(printf '%s' "${rss[goro]}" | median)
  ratio=$(awk -v a="$a" -v b="$b" -v g="$g" 'BEGIN { m = (a < b) ? a : b; printf "%.2f", g / m }')
  echo "| $w | $a | $b | $g | $ratio | $ra / $rb / $rg |"
done
