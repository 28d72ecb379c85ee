#!/usr/bin/env bash
# The Kafka-protocol broker for tests and CI: tansu, built from crates.io once and cached.
#   scripts/broker.sh install        build tansu into $TANSU_ROOT (default ~/.cache/hubspoke/tansu) if missing
#   scripts/broker.sh start [PORT]   start it on loopback (a free port if none given), memory storage;
#                                    prints PORT; pid in $TANSU_STATE/tansu.pid
#   scripts/broker.sh stop           stop the broker this script started
# Idempotent: install does nothing when the binary is there; start on a running broker prints its port.
set -euo pipefail
TANSU_VERSION="${TANSU_VERSION:-0.6}"
TANSU_ROOT="${TANSU_ROOT:-$HOME/.cache/hubspoke/tansu}"
TANSU_STATE="${TANSU_STATE:-${TMPDIR:-/tmp}/hubspoke-tansu}"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

install() {
  if [ -x "$TANSU_BIN" ]; then return 0; fi
  # Tests start brokers in parallel: one builds, the others wait for it. The lock lives in a
  # subshell, so a broker started afterwards does not inherit it.
  mkdir -p "$TANSU_ROOT"
  (
    flock 9
    if [ -x "$TANSU_BIN" ]; then exit 0; fi
    echo "building tansu $TANSU_VERSION into $TANSU_ROOT (about 10 minutes on 2 cores, once)" >&2
    cargo install tansu --version "^$TANSU_VERSION" --locked --features dynostore,libsql --root "$TANSU_ROOT" >&2
  ) 9>"$TANSU_ROOT/.install.lock"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  install
  mkdir -p "$TANSU_STATE"
  if [ -f "$TANSU_STATE/tansu.pid" ] && kill -0 "$(cat "$TANSU_STATE/tansu.pid")" 2>/dev/null; then
    cat "$TANSU_STATE/tansu.port"; return 0
  fi
  local port="${1:-$(free_port)}"
  "$TANSU_BIN" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" \
    > "$TANSU_STATE/tansu.log" 2>&1 &
  echo $! > "$TANSU_STATE/tansu.pid"
  echo "$port" > "$TANSU_STATE/tansu.port"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    sleep 0.1
  done
  echo "tansu did not start listening on $port; log: $TANSU_STATE/tansu.log" >&2
  stop; return 1
}

stop() {
  if [ -f "$TANSU_STATE/tansu.pid" ]; then
    kill "$(cat "$TANSU_STATE/tansu.pid")" 2>/dev/null || true
    rm -f "$TANSU_STATE/tansu.pid" "$TANSU_STATE/tansu.port"
  fi
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 install | start [PORT] | stop" >&2; exit 2 ;;
esac
