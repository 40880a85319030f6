#!/usr/bin/env bash
# goro at GORO_WORKERS=n beside Go 1.27 and Go 1.19 at GOMAXPROCS=n, for
# n in $NS (default 1 2 3 4 8), every workload, interleaved (for each
# workload and n: go127, go119, goro, ROUNDS times; median ms). Prints a
# markdown table: each cell is "best Go / goro" in ms, then goro's n=8 / n=2
# ratio beside Go's. Usage: scripts/workers.sh [workload...]
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" || true
[ -x target/peers/go127 ] && [ -x target/peers/go119 ] || scripts/peers.sh
cargo build -q --release --example workloads
goro=target/release/examples/workloads
rounds=${ROUNDS:-1}
read -r -a ns <<<"${NS:-1 2 3 4 8}"
ws=("$@")
[ ${#ws[@]} -gt 0 ] || ws=(skynet pingpong mpmc select ring timers idle sieve echo deep)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms_of() { sed -n 's/.*ms=\([0-9.]*\).*/\1/p' | head -1; }
hdr="| workload |"
sep="|---|"
for n in "${ns[@]}"; do hdr+=" n=$n Go / goro |"; sep+="---|"; done
echo "$hdr goro n=8/n=2 | Go n=8/n=2 |"
echo "$sep---|---|"
for w in "${ws[@]}"; do
  row="| $w |"
  declare -A best gr
  for n in "${ns[@]}"; do
    a="" b="" g=""
    for _ in $(seq "$rounds"); do
      a+="$(GOMAXPROCS=$n target/peers/go127 "$w" 2>/dev/null | ms_of)"$'\n'
      b+="$(GOMAXPROCS=$n target/peers/go119 "$w" 2>/dev/null | ms_of)"$'\n'
      g+="$(GORO_WORKERS=$n "$goro" "$w" 2>/dev/null | ms_of)"$'\n'
    done
    ma=$(printf '%s' "$a" | median); mb=$(printf '%s' "$b" | median); mg=$(printf '%s' "$g" | median)
    best[$n]=$(awk -v a="$ma" -v b="$mb" 'BEGIN { print (a + 0 < b + 0 ? a : b) }')
    gr[$n]=$mg
    mark=""
    if awk -v g="$mg" -v b="${best[$n]}" 'BEGIN { exit !(g + 0 > b + 0) }'; then mark=" **!**"; fi
    row+=" ${best[$n]} / ${mg}${mark} |"
  done
  if [ -n "${gr[8]:-}" ] && [ -n "${gr[2]:-}" ]; then
    row+=" $(awk -v a="${gr[8]}" -v b="${gr[2]}" 'BEGIN { printf "%.2f", a / b }') | $(awk -v a="${best[8]}" -v b="${best[2]}" 'BEGIN { printf "%.2f", a / b }') |"
  else
    row+=" - | - |"
  fi
  echo "$row"
  unset best gr
done
