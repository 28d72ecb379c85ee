#!/usr/bin/env bash
# Runs every test of the workspace: units, replay (golden) tests, end-to-end tests in process
# and over Kafka. The Kafka tests need the tansu broker: it is built once (about 10 minutes on
# 2 cores) and cached in ~/.cache/hubspoke/tansu; each test starts and stops its own broker.
# Uses cargo-nextest (parallel, one process per test) when it is installed, cargo test otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/broker.sh install
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
