#!/usr/bin/env bash
# Runs every test of the workspace: units, replay (golden) tests, end-to-end tests.
# Uses cargo-nextest (parallel, one process per test) when it is installed, cargo test otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
