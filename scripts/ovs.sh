#!/usr/bin/env bash
# A private Open vSwitch in userspace (dummy mode: no kernel module, no tap devices, no host
# interfaces) as a network of OpenFlow 1.3 switches, for tests and people. Each instance lives
# in a directory of its own (--dir DIR, else $OVS_STATE, else ${TMPDIR:-/tmp}/hubspoke-ovs), so
# parallel tests never clash.
#   scripts/ovs.sh start SPEC --controller HOST:PORT [--dir DIR] [--edge-ports N] [--edge-from P]
#       installs openvswitch-switch with apt if ovs-vswitchd is missing, starts ovsdb-server and
#       ovs-vswitchd in DIR, builds SPEC and then gives every switch its controller (so a switch
#       connects with its ISLs already joined). Prints the instance's export lines (as `env`)
#       and exits 0 only when every bridge answers `ovs-ofctl -O OpenFlow13 show` with its
#       datapath id and exactly its ports, every ISL is connected and no interface reports an
#       error; otherwise it says what went wrong, stops the daemons and exits 1 (logs stay in
#       DIR). Again on a running instance with the same SPEC, controller and edge ports: checks
#       it, prints the lines and exits 0 without rebuilding; with another: exits 1 (stop first).
#   scripts/ovs.sh stop [--dir DIR] [--clean]
#       stops both daemons (ovs-appctl exit, then SIGTERM/SIGKILL by pidfile); keeps DIR (logs,
#       database, pcaps, the link and port tables) unless --clean. Exits 0 when already stopped.
#   scripts/ovs.sh env [--dir DIR]       prints the instance's export lines (see below); exits 0
#                                        even when nothing runs there (says so on stderr)
#   scripts/ovs.sh ports A [--dir DIR]   prints switch A's ports, in port order:
#                                        `PORT NAME isl PEER_SWITCH PEER_PORT` or `PORT NAME edge - -`
#   scripts/ovs.sh links [--dir DIR]     prints the links, `A PORT_A B PORT_B`, in SPEC order
#   scripts/ovs.sh fail-link A B / restore-link A B
#       the ISL between switches A and B fails / comes back: both ends get
#       `ovs-ofctl -O OpenFlow13 mod-port BR PORT down|up` (config PORT_DOWN and state LINK_DOWN;
#       OVS sends each end's controller two PORT_STATUS MODIFY, config first, then state), and
#       the wire is cut / joined, so no frame crosses a failed link. restore-link joins the wire
#       before the ports go up. Failing a failed link (or restoring an up one) changes nothing.
#   scripts/ovs.sh reconnect [A...] [--dir DIR]
#       switches A... (default: those not connected to their controller now) drop their
#       controller record and get it back, so they try to connect at once. OVS 3.1 ignores
#       max_backoff=1000: a switch that lost or never reached its controller retries after 1,
#       2, 4, then every 8 s. Start the controller before `start` (switches get their
#       controller last and connect at once), or call this after (re)starting it.
#   scripts/ovs.sh fail-switch A / restore-switch A
#       a power cycle: fail-switch deletes bridge sA (its controller connection closes, its
#       flows and meters are gone) and fails its ISLs as above on the far ends; restore-switch
#       re-creates sA with the same datapath id and ports, restores its ISLs (except those
#       failed with fail-link or whose far switch is failed: their sA end is set down), then
#       gives it its controller: it connects anew, with an empty flow table. Options set by
#       hand on sA's interfaces (e.g. tx_pcap) do not survive.
# Output of start and env, five lines (values shell-quoted), meant for `eval "$(...)"`:
#   export OVS_STATE=DIR / OVS_RUNDIR=DIR / OVS_LOGDIR=DIR / OVS_DBDIR=DIR / OVS_SYSCONFDIR=DIR
# With these exported, ovs-vsctl, ovs-ofctl and ovs-appctl reach this instance by themselves,
# and later calls of this script find it without --dir. Progress and errors go to stderr.
# Logs: DIR/ovs-vswitchd.log, DIR/ovsdb-server.log (the previous start's: *.log.1).
# SPEC is grid:RxC, linear:N, ring:N (N >= 3) or mesh:N, built exactly as the simulator does
# (fsm/src/network.rs Network::generate): switches 1..=N, one link per pair in the simulator's
# order, ISL ports 1, 2, 3... on each switch in order of appearance of the pairs (at most 48).
# Switch N is bridge sN with datapath id N in 16 hex digits; its port P is interface sN-pP.
# Bridges: datapath_type=netdev, protocols=OpenFlow13, fail_mode=secure (no forwarding without
# flows), in-band control off, controller tcp:HOST:PORT with max_backoff=1000 (ms, see reconnect).
# ISLs are pairs of type=dummy interfaces joined by a unix socket DIR/sA-pP.sock
# (options:pstream on the end of the link's first switch, options:stream on the other), not
# patch ports: OVS 3.1 patch ports ignore mod-port down ("Operation not supported" in the
# log, exit status 0, port stays LIVE). Edge ports (default 4, --edge-ports N) are type=dummy,
# numbered from 10 (--edge-from P), or from the last ISL port + 1 on a switch whose ISL ports
# reach it (meshes of 11 and more). `--edge-from 1` numbers them right after the ISL ports, so
# that a switch's ports are 1 to its highest with no gap, as hubspoke models a switch (the
# load generator picks edge ports that way).
# Packets: `ovs-appctl netdev-dummy/receive sN-pP FLOW` injects a frame on a port;
# `ovs-vsctl set interface sN-pP options:tx_pcap=FILE` captures what leaves it (ISLs too).
set -euo pipefail
shopt -s inherit_errexit
export PATH="$PATH:/usr/sbin:/sbin"
OVS_SCHEMA="${OVS_SCHEMA:-/usr/share/openvswitch/vswitch.ovsschema}"

die() { echo "ovs.sh: $*" >&2; exit 1; }
say() { echo "ovs.sh: $*" >&2; }

# --- options, anywhere on the command line ----------------------------------------------
CMD="${1:-}"; [ $# -gt 0 ] && shift
ARGS=(); DIR="${OVS_STATE:-${TMPDIR:-/tmp}/hubspoke-ovs}"; CONTROLLER=""
EDGE="${OVS_EDGE_PORTS:-4}"; EDGE_FROM=10; CLEAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    --dir=*) DIR="${1#*=}"; shift ;;
    --controller) CONTROLLER="${2:?--controller needs HOST:PORT}"; shift 2 ;;
    --controller=*) CONTROLLER="${1#*=}"; shift ;;
    --edge-ports) EDGE="${2:?--edge-ports needs a number}"; shift 2 ;;
    --edge-ports=*) EDGE="${1#*=}"; shift ;;
    --edge-from) EDGE_FROM="${2:?--edge-from needs a port number}"; shift 2 ;;
    --edge-from=*) EDGE_FROM="${1#*=}"; shift ;;
    --clean) CLEAN=1; shift ;;
    -*) die "unknown option $1" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[ -n "$DIR" ] || die "empty --dir"
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR="${DIR%/}"
export OVS_STATE="$DIR" OVS_RUNDIR="$DIR" OVS_LOGDIR="$DIR" OVS_DBDIR="$DIR" OVS_SYSCONFDIR="$DIR"

print_env() {
  local v
  for v in OVS_STATE OVS_RUNDIR OVS_LOGDIR OVS_DBDIR OVS_SYSCONFDIR; do
    printf 'export %s=%q\n' "$v" "$DIR"
  done
}

# --- daemons -------------------------------------------------------------------------------
install_ovs() {
  if command -v ovs-vswitchd >/dev/null && command -v ovsdb-server >/dev/null; then return 0; fi
  # Parallel tests: one installs, the others wait. The package's own service start fails
  # without systemd; that failure is ignored, only the binaries count.
  (
    flock 8
    command -v ovs-vswitchd >/dev/null && exit 0
    say "installing openvswitch-switch with apt (about 20 s, once)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends openvswitch-switch >&2 ||
      { apt-get update >&2 && apt-get install -y --no-install-recommends openvswitch-switch >&2; } || true
  ) 8>"${TMPDIR:-/tmp}/hubspoke-ovs-install.lock"
  command -v ovs-vswitchd >/dev/null || die "ovs-vswitchd is missing after apt-get install openvswitch-switch"
}

alive() { ovs-appctl --timeout=5 -t "$1" version >/dev/null 2>&1; }

# Whether process PID is NAME and not a zombie (detached daemons are reaped by pid 1, which
# may take its time). A daemon removes its pidfile before it is gone: remember the pid.
running() {
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] &&
    [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

stop_daemon() {
  local name="$1" pid sig i
  pid="$(cat "$DIR/$name.pid" 2>/dev/null)" || pid=""
  if alive "$name"; then ovs-appctl --timeout=10 -t "$name" exit >/dev/null 2>&1 || true; fi
  for sig in 0 TERM KILL; do
    if [ "$sig" != 0 ] && running "$pid" "$name"; then kill -"$sig" "$pid" 2>/dev/null || true; fi
    for i in $(seq 1 50); do running "$pid" "$name" || break; sleep 0.1; done
    running "$pid" "$name" || { rm -f "$DIR/$name.pid"; return 0; }
  done
  die "could not stop $name (pid $pid)"
}

stop_daemons() {
  stop_daemon ovs-vswitchd
  stop_daemon ovsdb-server
  rm -f "$DIR/ready" "$DIR/failed-links" "$DIR/failed-switches" "$DIR/db.sock" \
    "$DIR"/*.ctl "$DIR"/*.mgmt "$DIR"/*.snoop "$DIR"/s*-p*.sock
}

start_daemons() {
  rm -f "$DIR/conf.db" "$DIR/.conf.db.~lock~"
  local log
  for log in ovsdb-server ovs-vswitchd; do
    if [ -f "$DIR/$log.log" ]; then mv "$DIR/$log.log" "$DIR/$log.log.1"; fi
  done
  ovsdb-tool create "$DIR/conf.db" "$OVS_SCHEMA"
  # Big meshes need a few thousand descriptors (a socket per ISL end).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  # 9>&-: the daemons must not inherit the instance lock.
  ovsdb-server "$DIR/conf.db" --remote="punix:$DIR/db.sock" \
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
    --pidfile="$DIR/ovsdb-server.pid" --log-file="$DIR/ovsdb-server.log" \
    --detach --no-chdir -vconsole:off 9>&- </dev/null >/dev/null 2>"$DIR/ovsdb-server.err" ||
    { cat "$DIR/ovsdb-server.err" >&2; return 1; }
  ovs-vsctl --no-wait init
  ovs-vswitchd "unix:$DIR/db.sock" --disable-system --disable-system-route --enable-dummy=override \
    --pidfile="$DIR/ovs-vswitchd.pid" --log-file="$DIR/ovs-vswitchd.log" \
    --detach --no-chdir -vconsole:off 9>&- </dev/null >/dev/null 2>"$DIR/ovs-vswitchd.err" ||
    { cat "$DIR/ovs-vswitchd.err" >&2; return 1; }
  alive ovsdb-server && alive ovs-vswitchd
}

# --- the network's tables ------------------------------------------------------------------
# Writes DIR/links (`A PORT_A B PORT_B` per link, SPEC order) and DIR/ports (`SWITCH PORT NAME
# KIND PEER_SWITCH PEER_PORT END` per port, by switch then port; KIND isl or edge, END listen
# (the link's first switch), connect (its second) or -) and prints the number of switches.
# Same shapes, order, port numbers and limits as Network::generate.
make_tables() {
  local spec="$1" kind size rows=0 cols=0 n
  case "$spec" in *:*) ;; *) die "SPEC must be grid:RxC, linear:N, ring:N or mesh:N, not $spec" ;; esac
  kind="${spec%%:*}"; size="${spec#*:}"
  num() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$((10#$1))" -ge 1 ] && [ "$((10#$1))" -le 1000 ] ||
            die "$spec: sizes must be whole numbers from 1 to 1000"; echo "$((10#$1))"; }
  case "$kind" in
    grid) [[ "$size" == *x* ]] || die "$spec: expected grid:RxC"
          rows="$(num "${size%%x*}")"; cols="$(num "${size#*x}")"; n=$((rows * cols)) ;;
    mesh|linear) n="$(num "$size")" ;;
    ring) n="$(num "$size")"; [ "$n" -ge 3 ] || die "$spec: a ring needs at least 3 switches" ;;
    *) die "unknown network spec $spec: expected grid:RxC, mesh:N, ring:N or linear:N" ;;
  esac
  [[ "$EDGE" =~ ^[0-9]+$ ]] || die "--edge-ports must be a number"
  [[ "$EDGE_FROM" =~ ^[0-9]+$ ]] && [ "$EDGE_FROM" -ge 1 ] || die "--edge-from must be a port number"
  awk -v kind="$kind" -v n="$n" -v rows="$rows" -v cols="$cols" -v edge="$EDGE" -v from="$EDGE_FROM" \
      -v links="$DIR/links.new" -v ports="$DIR/ports.new" '
    function link(a, b,   pa, pb) {
      pa = ++np[a]; pb = ++np[b]
      if (pa > 48 || pb > 48) { bad = 1; exit }
      print a, pa, b, pb > links
      peer[a, pa] = b " " pb " listen"; peer[b, pb] = a " " pa " connect"
    }
    function id(r, c) { return r * cols + c + 1 }
    BEGIN {
      printf "" > links
      if (kind == "grid") {
        for (r = 0; r < rows; r++) for (c = 0; c < cols; c++) {
          if (c + 1 < cols) link(id(r, c), id(r, c + 1))
          if (r + 1 < rows) link(id(r, c), id(r + 1, c))
        }
      } else if (kind == "mesh") { for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) link(a, b) }
      else if (kind == "ring") { for (a = 1; a <= n; a++) link(a, a % n + 1) }
      else if (kind == "linear") { for (a = 1; a < n; a++) link(a, a + 1) }
    }
    END {
      if (bad) exit 1
      printf "" > ports
      for (s = 1; s <= n; s++) {
        for (p = 1; p <= np[s]; p++) print s, p, "s" s "-p" p, "isl", peer[s, p] > ports
        first = np[s] + 0 >= from ? np[s] + 1 : from
        for (p = first; p < first + edge; p++) print s, p, "s" s "-p" p, "edge", "-", "-", "-" > ports
      }
    }' || { rm -f "$DIR/links.new" "$DIR/ports.new"; die "$spec: a switch would need more than 48 ISL ports"; }
  mv "$DIR/links.new" "$DIR/links"; mv "$DIR/ports.new" "$DIR/ports"
  echo "$n"
}

# ovs-vsctl arguments (one per line) creating the given switches (all when none given), with
# no controller yet (attach_controllers) and their ISL ends unconnected (sync_links). Rows are
# made with the generic `create`: add-br and add-port make ovs-vsctl re-read the whole
# database after each (quadratic: mesh:49 took 20 s that way).
vsctl_args() {
  awk -v dir="$DIR" -v only="$*" '
    BEGIN { k = split(only, o, " "); for (i = 1; i <= k; i++) want[o[i]] = 1 }
    function a(x) { print x }
    function port(name, type, ofport, listen) {
      np++
      a("--"); a("--id=@i" np); a("create"); a("interface"); a("name=" name); a("type=" type)
      if (ofport != "") a("ofport_request=" ofport)
      if (listen) a("options:pstream=\"punix:" dir "/" name ".sock\"")
      a("--"); a("--id=@p" np); a("create"); a("port"); a("name=" name); a("interfaces=@i" np)
      ports = ports (ports == "" ? "" : ",") "@p" np
    }
    function bridge() {
      if (cur == "") return
      port("s" cur, "internal", "", 0)
      a("--"); a("--id=@b" cur); a("create"); a("bridge"); a("name=s" cur); a("datapath_type=netdev")
      a("protocols=OpenFlow13"); a("fail_mode=secure"); a(sprintf("other-config:datapath-id=\"%016x\"", cur))
      a("other-config:disable-in-band=true"); a("ports=" ports)
      a("--"); a("add"); a("open_vswitch"); a("."); a("bridges"); a("@b" cur)
      ports = ""
    }
    k && !($1 in want) { next }
    $1 != cur { bridge(); cur = $1 }
    { port($3, "dummy", $2, $7 == "listen") }
    END { bridge() }' "$DIR/ports"
}

create_switches() {
  local args
  mapfile -t args < <(vsctl_args "$@")
  ovs-vsctl --timeout=300 "${args[@]}" >/dev/null
}

# Gives the given switches their controller record: they start connecting to it. Done last,
# so that a controller meets a switch whose ports and links are as they should be.
attach_controllers() {
  local s args=()
  for s in "$@"; do
    args+=(-- --id=@c"$s" create controller "target=\"tcp:$CONTROLLER\"" max_backoff=1000
           -- set bridge "s$s" controller=@c"$s")
  done
  ovs-vsctl --timeout=60 "${args[@]}" >/dev/null
}

# Checks that each given switch is there, speaks OpenFlow 1.3 with its datapath id and has
# exactly its ports, and that no interface reports an error. Prints problems, returns 1 on any.
# The `ovs-ofctl show`s run 4 at a time and one awk reads them all (100 bridges: ~2 s).
verify() {
  local tmp errors bad=0
  [ $# -gt 0 ] || return 0
  tmp="$DIR/verify"; rm -rf "$tmp"; mkdir -p "$tmp"
  printf '%s\n' "$@" | xargs -P 4 -I{} sh -c 'ovs-ofctl -O OpenFlow13 show s{} > "$1/{}" 2>&1 || true' sh "$tmp"
  ( cd "$tmp" && awk '
      FILENAME == ARGV[1] { want[$1, $2 "(" $3 ")"] = 1; nwant[$1]++; next }
      FNR == 1 { s = FILENAME; switches[s] = 1; first[s] = $0 }
      /^OFPT_FEATURES_REPLY \(OF1\.3\)/ && index($0, "dpid:" sprintf("%016x", s)) { ok[s] = 1 }
      /^ *[0-9]+\([^)]*\):/ { p = $1; sub(/:.*/, "", p); have[s] = have[s] " " p; nhave[s]++
                              if (!((s, p) in want)) wrong[s] = 1 }
      END {
        for (s in switches) {
          if (!ok[s]) { printf "s%s: not OpenFlow 1.3 with datapath id %016x: %s\n", s, s, first[s]; bad = 1 }
          else if (wrong[s] || nhave[s] != nwant[s]) { printf "s%s: ports are%s\n", s, have[s]; bad = 1 }
        }
        exit bad
      }' "$DIR/ports" $(printf '%s\n' "$@") >&2 ) || bad=1
  rm -rf "$tmp"
  errors="$(ovs-vsctl --timeout=30 --bare --columns=name,error find interface 'error!=[]')"
  if [ -n "$errors" ]; then say "interfaces with errors: $(echo $errors)"; bad=1; fi
  return "$bad"
}

# --- link state ------------------------------------------------------------------------------
listed() { [ -f "$2" ] && grep -qxF -- "$1" "$2"; }
switch_up() { ! listed "$1" "$DIR/failed-switches"; }
up_switches() {
  awk 'FILENAME == ARGV[1] { down[$1] = 1; next } !($1 in down) && !($1 in seen) { seen[$1] = 1; print $1 }' \
    "$DIR/failed-switches" "$DIR/ports"
}

# Waits until the given ISL ends (connecting ends) report "connected".
wait_connected() {
  [ $# -gt 0 ] || return 0
  local i missing
  for i in $(seq 1 100); do
    missing="$(ovs-appctl --timeout=10 netdev-dummy/conn-state |
      awk 'FILENAME == "-" { if ($2 == "connected") { n = $1; sub(/:$/, "", n); c[n] = 1 }; next }
           !($1 in c) { print $1 }' - <(printf '%s\n' "$@"))"
    [ -n "$missing" ] || return 0
    sleep 0.1
  done
  say "ISL ends not connected after 10 s: $(echo $missing)"; return 1
}

# sync_links start | switches S... | link A B: brings all links, those touching switches S...,
# or the link A B (as in DIR/links) to what they should be: up unless failed with fail-link
# or one of its switches is failed. A link goes down by cutting its wire (options:stream
# removed from its connecting end) and mod-port down on both ends; up by joining the wire,
# waiting for the connection, and mod-port up on both ends. Ends on failed (deleted) switches
# are skipped. With `start`, fresh ports are up already: no mod-port.
sync_links() {
  local mode="$1"; shift
  local a pa b pb want aup bup tx=() conn=() mods=() m
  while read -r a pa b pb want aup bup; do
    if [ "$bup" = 1 ]; then
      if [ "$want" = up ]; then
        tx+=(-- set interface "s$b-p$pb" "options:stream=\"unix:$DIR/s$a-p$pa.sock\"")
        conn+=("s$b-p$pb")
      else
        tx+=(-- remove interface "s$b-p$pb" options stream)
      fi
      mods+=("s$b $pb $want")
    fi
    if [ "$aup" = 1 ]; then mods+=("s$a $pa $want"); fi
  done < <(awk -v mode="$mode" -v only="$*" '
             BEGIN { k = split(only, o, " "); for (i = 1; i <= k; i++) w[o[i]] = 1 }
             FILENAME == ARGV[1] { failed_link[$1, $2] = 1; next }
             FILENAME == ARGV[2] { failed_switch[$1] = 1; next }
             mode == "start" || (mode == "link" && $1 == o[1] && $3 == o[2]) ||
             (mode == "switches" && (($1 in w) || ($3 in w))) {
               aup = !($1 in failed_switch); bup = !($3 in failed_switch)
               print $0, (aup && bup && !(($1, $3) in failed_link)) ? "up" : "down", aup, bup
             }' "$DIR/failed-links" "$DIR/failed-switches" "$DIR/links")
  # Explicit returns: errexit is off when this runs in a condition.
  if [ "${#tx[@]}" -gt 0 ]; then ovs-vsctl --timeout=60 "${tx[@]}" || return 1; fi
  wait_connected "${conn[@]}" || return 1
  if [ "$mode" = start ]; then return 0; fi
  for m in "${mods[@]}"; do
    set -- $m
    ovs-ofctl -O OpenFlow13 mod-port "$1" "$2" "$3" || return 1
  done
}

find_link() {
  awk -v a="$1" -v b="$2" '($1 == a && $3 == b) || ($1 == b && $3 == a) { print $1, $3; f = 1; exit }
                           END { exit !f }' "$DIR/links" || die "no link between switches $1 and $2"
}

has_switch() { awk -v s="$1" '$1 == s { f = 1; exit } END { exit !f }' "$DIR/ports" || die "no switch $1"; }

# --- commands --------------------------------------------------------------------------------
lock() { mkdir -p "$DIR"; exec 9>"$DIR/.lock"; flock 9; }

# Takes the lock of a running instance (without creating DIR when there is none).
lock_running() {
  [ -f "$DIR/ready" ] || die "no running instance in $DIR"
  lock
  [ -f "$DIR/ready" ] && alive ovs-vswitchd && alive ovsdb-server || die "no running instance in $DIR"
}

cmd_start() {
  [ "${#ARGS[@]}" -eq 1 ] || die "usage: $0 start SPEC --controller HOST:PORT [--dir DIR] [--edge-ports N] [--edge-from P]"
  [ -n "$CONTROLLER" ] || die "start needs --controller HOST:PORT"
  CONTROLLER="${CONTROLLER#tcp:}"
  [[ "$CONTROLLER" == *:* ]] || die "--controller must be HOST:PORT"
  local spec="${ARGS[0]}" want n t0
  want="$spec $CONTROLLER $EDGE $EDGE_FROM"
  install_ovs
  lock
  touch "$DIR/.hubspoke-ovs"
  if alive ovs-vswitchd && alive ovsdb-server && [ -f "$DIR/ready" ]; then
    [ "$(cat "$DIR/ready")" = "$want" ] ||
      die "$DIR runs '$(cat "$DIR/ready")' (spec, controller, edge ports), not '$want': stop it first"
    verify $(up_switches) || die "the running instance in $DIR is broken; stop it and start again"
    print_env; return 0
  fi
  t0="$(date +%s.%N)"
  n="$(make_tables "$spec")"
  stop_daemons
  start_daemons || { say "the daemons did not start; logs in $DIR"; stop_daemons; exit 1; }
  : > "$DIR/failed-links"; : > "$DIR/failed-switches"
  if ! create_switches || ! sync_links start || ! verify $(seq 1 "$n") ||
     ! attach_controllers $(seq 1 "$n"); then
    say "building $spec failed; last lines of $DIR/ovs-vswitchd.log:"
    tail -n 20 "$DIR/ovs-vswitchd.log" >&2 || true
    stop_daemons; exit 1
  fi
  echo "$want" > "$DIR/ready"
  say "$spec: $n switches, $(wc -l < "$DIR/links") links, controller tcp:$CONTROLLER, in $DIR ($(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }') s)"
  print_env
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  lock
  stop_daemons
  if [ "$CLEAN" = 1 ]; then
    [ -f "$DIR/.hubspoke-ovs" ] || die "$DIR was not made by this script; not removing it"
    rm -rf "$DIR"
  fi
}

cmd_link() {
  [ "${#ARGS[@]}" -eq 2 ] || die "usage: $0 $CMD A B [--dir DIR]"
  lock_running
  local l; l="$(find_link "${ARGS[0]}" "${ARGS[1]}")"
  if [ "$CMD" = fail-link ]; then
    listed "$l" "$DIR/failed-links" || echo "$l" >> "$DIR/failed-links"
  else
    grep -vxF -- "$l" "$DIR/failed-links" > "$DIR/failed-links.new" || true
    mv "$DIR/failed-links.new" "$DIR/failed-links"
  fi
  sync_links link $l
}

cmd_reconnect() {
  lock_running
  CONTROLLER="$(awk '{ print $2 }' "$DIR/ready")"
  local s want=() args=()
  if [ "${#ARGS[@]}" -gt 0 ]; then
    for s in "${ARGS[@]}"; do has_switch "$s"; switch_up "$s" || die "s$s is failed"; want+=("$s"); done
  else
    mapfile -t want < <(awk -F, 'FILENAME == ARGV[1] { if ($2 == "false") down[$1] = 1; next }
                                 ($2 in down) { sub(/^s/, "", $1); print $1 }' \
      <(ovs-vsctl --format=csv --data=bare --no-headings --columns=_uuid,is_connected list controller) \
      <(ovs-vsctl --format=csv --data=bare --no-headings --columns=name,controller list bridge))
  fi
  [ "${#want[@]}" -gt 0 ] || return 0
  for s in "${want[@]}"; do args+=(-- clear bridge "s$s" controller); done
  # Two transactions: with the same target in one, OVS keeps the old connection attempt.
  ovs-vsctl --timeout=60 "${args[@]}"
  attach_controllers "${want[@]}"
  say "reconnecting $(printf 's%s ' "${want[@]}")"
}

cmd_switch() {
  [ "${#ARGS[@]}" -eq 1 ] || die "usage: $0 $CMD A [--dir DIR]"
  lock_running
  local s="${ARGS[0]}"
  has_switch "$s"
  if [ "$CMD" = fail-switch ]; then
    switch_up "$s" || return 0
    echo "$s" >> "$DIR/failed-switches"
    ovs-vsctl --timeout=60 --if-exists del-br "s$s"
    sync_links switches "$s"
  else
    switch_up "$s" && return 0
    CONTROLLER="$(awk '{ print $2 }' "$DIR/ready")"
    create_switches "$s"
    grep -vxF -- "$s" "$DIR/failed-switches" > "$DIR/failed-switches.new" || true
    mv "$DIR/failed-switches.new" "$DIR/failed-switches"
    verify "$s" || die "s$s did not come back"
    sync_links switches "$s"
    attach_controllers "$s"
  fi
}

case "$CMD" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) print_env; { alive ovs-vswitchd && [ -f "$DIR/ready" ]; } || say "(no running instance in $DIR)" ;;
  ports) [ "${#ARGS[@]}" -eq 1 ] || die "usage: $0 ports A [--dir DIR]"
         [ -f "$DIR/ports" ] || die "no network in $DIR"; has_switch "${ARGS[0]}"
         awk -v s="${ARGS[0]}" '$1 == s { print $2, $3, $4, $5, $6 }' "$DIR/ports" ;;
  links) [ -f "$DIR/links" ] || die "no network in $DIR"; cat "$DIR/links" ;;
  fail-link|restore-link) cmd_link ;;
  fail-switch|restore-switch) cmd_switch ;;
  reconnect) cmd_reconnect ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
