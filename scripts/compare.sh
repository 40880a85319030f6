#!/usr/bin/env bash
# Side-by-side: goro's workloads example vs the peers (Go 1.27 and 1.19
# built by scripts/peers.sh; may and tokio from ../shared/peers/rust, built
# into target/peers-rust), alternating, ROUNDS rounds (default 3), median ms
# and median peak RSS. Prints a markdown table; "best" is the fastest peer.
# Usage: scripts/compare.sh [workload...]
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" || true
[ -x target/peers/go127 ] && [ -x target/peers/go119 ] || scripts/peers.sh
if ! [ -x target/peers-rust/release/peers-may ] || ! [ -x target/peers-rust/release/peers-tokio ]; then
  ( cd ../shared/peers/rust && CARGO_TARGET_DIR="$OLDPWD/target/peers-rust" cargo build -q --release )
fi
cargo build -q --release --example workloads
goro=target/release/examples/workloads
bin_of() {
  case $1 in
    goro) echo "$goro" ;;
    may | tokio) echo "target/peers-rust/release/peers-$1" ;;
    *) echo "target/peers/$1" ;;
  esac
}
systems=(go127 go119 may tokio goro)
rounds=${ROUNDS:-3}
ws=("$@")
[ ${#ws[@]} -gt 0 ] || ws=(skynet pingpong mpmc select ring timers idle sieve echo deep)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # bin workload -> "ms rss_mb"
  local out
  out=$( { /usr/bin/time -f "RSS %M" "$1" "$2" 2>&1 1>&3 | grep '^RSS' ; } 3>&1 ) || true
  local ms rss
  ms=$(echo "$out" | sed -n 's/.*ms=\([0-9.]*\).*/\1/p')
  ms=${ms:-fail} # a peer that crashes (may's skynet runs out of mappings)
  rss=$(echo "$out" | awk '/^RSS/ {printf "%d", $2/1024}')
  echo "$ms $rss"
}
echo "| workload | Go 1.27 ms | Go 1.19 ms | may ms | tokio ms | goro ms | goro / best | RSS MB Go1.27 / Go1.19 / may / tokio / goro |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for w in "${ws[@]}"; do
  declare -A ms rss
  for sys in "${systems[@]}"; do ms[$sys]=""; rss[$sys]=""; done
  for _ in $(seq "$rounds"); do
    for sys in "${systems[@]}"; do
      read -r m r < <(run "$(bin_of "$sys")" "$w")
      ms[$sys]+="$m"$'\n'; rss[$sys]+="$r"$'\n'
    done
  done
  declare -A med mrss
  for sys in "${systems[@]}"; do
    med[$sys]=$(printf '%s' "${ms[$sys]}" | median)
    mrss[$sys]=$(printf '%s' "${rss[$sys]}" | median)
  done
  ratio=$(awk -v a="${med[go127]}" -v b="${med[go119]}" -v c="${med[may]}" -v d="${med[tokio]}" -v g="${med[goro]}" \
    'BEGIN { m = a; if (b < m) m = b; if (c + 0 > 0 && c + 0 < m) m = c; if (d + 0 > 0 && d + 0 < m) m = d; printf "%.2f", g / m }')
  echo "| $w | ${med[go127]} | ${med[go119]} | ${med[may]} | ${med[tokio]} | ${med[goro]} | $ratio | ${mrss[go127]} / ${mrss[go119]} / ${mrss[may]} / ${mrss[tokio]} / ${mrss[goro]} |"
done
