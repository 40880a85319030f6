#!/usr/bin/env bash
# Runs goro's loom models: the real channel lock (fence fallback), the real
# selector claims, the real wait-queue grant publication, and a model of the
# pinned park/wake protocol. They live in `#[cfg(all(test, goro_loom))]` modules
# of the lib (see src/loom.rs for why), so this is the lib's unit-test build
# with `--cfg goro_loom`, filtered to the models (every model's name starts with
# `loom_`). Its own target dir, so the cfg change does not thrash the normal
# build cache. LOOM_MAX_PREEMPTIONS overrides the models' bound (3).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg goro_loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
exec cargo test --release --lib -- loom_ "$@"
