#!/usr/bin/env bash
# Checks scripts/ovs.sh against a real Open vSwitch: shapes, ports and datapath ids, a frame
# across three switches (VLAN push / swap / pop), fail/restore of a link and of a switch as
# seen by the switches, the wire and a stand-in controller (python3), idempotent start and
# stop, two instances at once, and the start time of grid:3x3 and grid:10x10.
#   scripts/ovs-selftest.sh     prints `ok: ...` per check; exits 1 at the first failure
# Everything lives in a temporary directory; every instance started is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
OVS="$PWD/scripts/ovs.sh"
T="$(mktemp -d "${TMPDIR:-/tmp}/ovs-selftest.XXXXXX")"
CTL_PID=""
cleanup() {
  local d
  for d in "$T"/*/; do [ -f "$d/.hubspoke-ovs" ] && "$OVS" stop --dir "$d" 2>/dev/null || true; done
  if [ -n "$CTL_PID" ]; then kill "$CTL_PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
trap "exit 130" INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
elapsed() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }'; }

# A stand-in controller: answers HELLO, FEATURES and ECHO, logs CONNECT/PORT_STATUS/DISCONNECT.
cat > "$T/ctl.py" <<'EOF'
import socket, struct, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(128)
print("LISTEN %d" % srv.getsockname()[1], flush=True)
lock = threading.Lock()
def log(line):
    with lock: print(line, flush=True)
def read(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x: raise EOFError
        b += x
    return b
def serve(c):
    dpid = 0
    try:
        c.sendall(struct.pack("!BBHI", 4, 0, 8, 1) + struct.pack("!BBHI", 4, 5, 8, 2))
        while True:
            v, t, l, x = struct.unpack("!BBHI", read(c, 8)); body = read(c, l - 8)
            if t == 2: c.sendall(struct.pack("!BBHI", v, 3, l, x) + body)
            elif t == 6: dpid = struct.unpack("!Q", body[:8])[0]; log("CONNECT %d" % dpid)
            elif t == 12:
                port = struct.unpack("!I", body[8:12])[0]; config, state = struct.unpack("!II", body[40:48])
                log("PORT_STATUS %d port=%d reason=%d config=%d state=%d" % (dpid, port, body[0], config, state))
    except (EOFError, OSError):
        pass
    log("DISCONNECT %d" % dpid); c.close()
while True:
    c, _ = srv.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
start_ctl() { # PORT (0: any); log in $T/ctl.log
  python3 "$T/ctl.py" "$1" > "$T/ctl.log" 2>&1 &
  CTL_PID=$!
  for _ in $(seq 50); do grep -q LISTEN "$T/ctl.log" && break; sleep 0.1; done
  CTL="127.0.0.1:$(awk '/LISTEN/ { print $2 }' "$T/ctl.log")"
  MARK=0
}
start_ctl 0
# ctl_saw REGEX [COUNT [TENTHS]]: waits up to TENTHS/10 s (default 5 s) until the controller
# log has, after the line `mark` saw last, COUNT lines (default 1) matching REGEX.
mark() { MARK="$(wc -l < "$T/ctl.log")"; }
ctl_saw() {
  local i
  for i in $(seq "${3:-50}"); do
    [ "$(tail -n +$((MARK + 1)) "$T/ctl.log" | grep -cE "$1")" -ge "${2:-1}" ] && return 0; sleep 0.1
  done
  return 1
}

# Frames in a pcap: one line each, `dst src ethertype vlan`.
frames() {
  python3 - "$1" <<'EOF'
import struct, sys
try: d = open(sys.argv[1], "rb").read()
except FileNotFoundError: d = b""
e = "<" if d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
off = 24
while off + 16 <= len(d):
    n = struct.unpack(e + "I", d[off + 8:off + 12])[0]; f = d[off + 16:off + 16 + n]; off += 16 + n
    et = struct.unpack("!H", f[12:14])[0]
    vlan = struct.unpack("!H", f[14:16])[0] & 0xfff if et == 0x8100 else "-"
    print(f[0:6].hex(":"), f[6:12].hex(":"), "0x%04x" % et, vlan)
EOF
}
count() { frames "$1" | wc -l; }
# `CONFIG STATE` of port P of bridge B, e.g. `0 LIVE` or `PORT_DOWN LINK_DOWN`.
port_state() {
  ovs-ofctl -O OpenFlow13 show "$1" |
    awk -v p="$2" 'index($1, p "(") == 1 { f = 1; next } f && /config:/ { c = $2 } f && /state:/ { print c, $2; exit }'
}
FRAME='eth(src=50:54:00:00:00:01,dst=50:54:00:00:00:02),eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)'
inject() { ovs-appctl netdev-dummy/receive s1-p10 "$FRAME" >/dev/null; sleep 0.3; }

# --- grid:3x3 --------------------------------------------------------------------------------
A="$T/a"
t0="$(date +%s.%N)"
eval "$("$OVS" start grid:3x3 --controller "$CTL" --dir "$A")"
echo "time: start grid:3x3 $(elapsed "$t0") s"
check "env points at the instance" [ "$OVS_RUNDIR" = "$A" -a "$OVS_STATE" = "$A" ]
check "9 bridges" [ "$(ovs-vsctl list-br | tr '\n' ' ')" = "s1 s2 s3 s4 s5 s6 s7 s8 s9 " ]
for s in $(seq 9); do
  ovs-ofctl -O OpenFlow13 show "s$s" | head -1 | grep -q "(OF1.3).*dpid:$(printf %016x "$s")" ||
    fail "s$s: OpenFlow 1.3 with datapath id $s"
done
ok "datapath ids 1..9 over OpenFlow 1.3"
check "s5 has ISL ports 1-4 and edge ports 10-13" \
  [ "$(ovs-ofctl -O OpenFlow13 show s5 | sed -n 's/^ \([0-9]*\)(.*/\1/p' | tr '\n' ' ')" = "1 2 3 4 10 11 12 13 " ]
check "links in the simulator's order and ports" [ "$("$OVS" links | tr '\n' ',')" = \
  "1 1 2 1,1 2 4 1,2 2 3 1,2 3 5 1,3 2 6 1,4 2 5 2,4 3 7 1,5 3 6 2,5 4 8 1,6 3 9 1,7 2 8 2,8 3 9 2," ]
check "ports 5" [ "$("$OVS" ports 5 | tr '\n' ',')" = \
  "1 s5-p1 isl 2 3,2 s5-p2 isl 4 2,3 s5-p3 isl 6 2,4 s5-p4 isl 8 1,10 s5-p10 edge - -,11 s5-p11 edge - -,12 s5-p12 edge - -,13 s5-p13 edge - -," ]
check "all 12 ISLs connected" [ "$(ovs-appctl netdev-dummy/conn-state | grep -c ': connected')" = 12 ]
check "no interface errors" [ -z "$(ovs-vsctl --bare --columns=error find interface 'error!=[]')" ]
check "9 switches connect to the controller" ctl_saw '^CONNECT' 9

# A 3-hop path s1 -> s2 -> s3: push VLAN 100, swap to 200, pop.
ovs-ofctl -O OpenFlow13 add-flow s1 'in_port=10,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:1'
ovs-ofctl -O OpenFlow13 add-flow s2 'in_port=1,dl_vlan=100,actions=set_field:4296->vlan_vid,output:2'
ovs-ofctl -O OpenFlow13 add-flow s3 'in_port=1,dl_vlan=200,actions=pop_vlan,output:10'
for p in s1-p1 s2-p2 s3-p10 s2-p10; do ovs-vsctl set interface "$p" "options:tx_pcap=$T/$p.pcap"; done
inject
check "frame left s1 on the ISL with VLAN 100" [ "$(frames "$T/s1-p1.pcap")" = "50:54:00:00:00:02 50:54:00:00:00:01 0x8100 100" ]
check "frame left s2 on the ISL with VLAN 200" [ "$(frames "$T/s2-p2.pcap")" = "50:54:00:00:00:02 50:54:00:00:00:01 0x8100 200" ]
check "frame left s3's edge port untagged" [ "$(frames "$T/s3-p10.pcap")" = "50:54:00:00:00:02 50:54:00:00:00:01 0x0800 -" ]
check "nothing left s2's edge port" [ "$(count "$T/s2-p10.pcap")" = 0 ]

# fail-link / restore-link
mark
"$OVS" fail-link 2 1
check "fail-link 1 2: both ends PORT_DOWN LINK_DOWN" \
  [ "$(port_state s1 1)" = "PORT_DOWN LINK_DOWN" -a "$(port_state s2 1)" = "PORT_DOWN LINK_DOWN" ]
check "fail-link 1 2: PORT_STATUS LINK_DOWN from both" ctl_saw '^PORT_STATUS [12] port=1 reason=2 config=1 state=1$' 2
check "other ports untouched" [ "$(port_state s1 2)" = "0 LIVE" -a "$(port_state s2 2)" = "0 LIVE" ]
inject
check "no frame crosses the failed link" [ "$(count "$T/s3-p10.pcap")" = 1 ]
mark
"$OVS" restore-link 1 2
check "restore-link 1 2: both ends LIVE" [ "$(port_state s1 1)" = "0 LIVE" -a "$(port_state s2 1)" = "0 LIVE" ]
check "restore-link 1 2: PORT_STATUS LIVE from both" ctl_saw '^PORT_STATUS [12] port=1 reason=2 config=0 state=4$' 2
inject
check "frames cross again" [ "$(count "$T/s3-p10.pcap")" = 2 ]

# fail-switch / restore-switch (s2: links to s1, s3, s5)
mark
"$OVS" fail-switch 2
check "fail-switch 2: bridge gone" [ "$(ovs-vsctl br-exists s2; echo $?)" = 2 ]
check "fail-switch 2: controller connection closed" ctl_saw '^DISCONNECT 2$'
check "fail-switch 2: far ends down" [ "$(port_state s1 1)$(port_state s3 1)$(port_state s5 1)" = \
  "PORT_DOWN LINK_DOWNPORT_DOWN LINK_DOWNPORT_DOWN LINK_DOWN" ]
"$OVS" fail-switch 2
mark
"$OVS" restore-switch 2
check "restore-switch 2: reconnects" ctl_saw '^CONNECT 2$'
check "restore-switch 2: datapath id and ports kept" \
  [ "$(ovs-ofctl -O OpenFlow13 show s2 | sed -n 's/.*dpid:\([0-9a-f]*\)$/\1/p; s/^ \([0-9]*\)(.*/\1/p' | tr '\n' ' ')" = \
    "0000000000000002 1 2 3 10 11 12 13 " ]
check "restore-switch 2: empty flow table" [ -z "$(ovs-ofctl -O OpenFlow13 dump-flows s2 --no-stats)" ]
check "restore-switch 2: all its links up" [ "$(for p in 's1 1' 's3 1' 's5 1' 's2 1' 's2 2' 's2 3'; do port_state $p; done | sort -u)" = "0 LIVE" ]
ovs-ofctl -O OpenFlow13 add-flow s2 'in_port=1,dl_vlan=100,actions=set_field:4296->vlan_vid,output:2'
inject
check "frames cross the restored switch" [ "$(count "$T/s3-p10.pcap")" = 3 ]
"$OVS" fail-link 1 2; "$OVS" fail-switch 2; "$OVS" restore-switch 2
check "a failed link stays down across a switch restart" \
  [ "$(port_state s1 1)" = "PORT_DOWN LINK_DOWN" -a "$(port_state s2 1)" = "PORT_DOWN LINK_DOWN" -a "$(port_state s2 2)" = "0 LIVE" ]
"$OVS" restore-link 1 2
check "... and comes back with restore-link" [ "$(port_state s1 1)" = "0 LIVE" -a "$(port_state s2 1)" = "0 LIVE" ]

# Idempotent start; another spec is refused.
t0="$(date +%s.%N)"
check "start again: same instance" [ "$("$OVS" start grid:3x3 --controller "$CTL" --dir "$A")" = "$("$OVS" env --dir "$A")" ]
echo "time: start again $(elapsed "$t0") s"
check "start again: not rebuilt (flows kept)" [ -n "$(ovs-ofctl -O OpenFlow13 dump-flows s1 --no-stats)" ]
check "start with another spec fails" [ "$("$OVS" start linear:3 --controller "$CTL" --dir "$A" 2>/dev/null; echo $?)" = 1 ]

# The controller restarts: `reconnect` has the switches connect at once (OVS 3.1 would wait
# up to 8 s, whatever max_backoff says).
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
sleep 3
start_ctl "${CTL##*:}"
"$OVS" reconnect 2>/dev/null
check "reconnect: all 9 switches back within 2 s" ctl_saw '^CONNECT' 9 20

# Other shapes, each in an instance of its own, all running at once.
shape() { # DIR SPEC EXPECTED_LINKS
  "$OVS" start "$2" --controller "$CTL" --dir "$1" >/dev/null
  check "$2: links" [ "$("$OVS" links --dir "$1" | tr '\n' ',')" = "$3" ]
  check "$2: ISLs connected" [ "$(OVS_RUNDIR="$1" ovs-appctl netdev-dummy/conn-state | grep -c ': connected')" = "$(echo "$3" | tr -cd , | wc -c)" ]
}
shape "$T/b" linear:3 "1 1 2 1,2 2 3 1,"
shape "$T/c" ring:4 "1 1 2 1,2 2 3 1,3 2 4 1,4 2 1 2,"
shape "$T/d" mesh:5 "1 1 2 1,1 2 3 1,1 3 4 1,1 4 5 1,2 2 3 2,2 3 4 2,2 4 5 2,3 3 4 3,3 4 5 3,4 4 5 4,"
check "mesh:5: s5 has ports 1-4 and 10-13" \
  [ "$(OVS_RUNDIR="$T/d" ovs-ofctl -O OpenFlow13 show s5 | sed -n 's/^ \([0-9]*\)(.*/\1/p' | tr '\n' ' ')" = "1 2 3 4 10 11 12 13 " ]
"$OVS" start mesh:12 --controller "$CTL" --dir "$T/e" >/dev/null
check "mesh:12: edge ports follow the 11 ISL ports" \
  [ "$(OVS_RUNDIR="$T/e" ovs-ofctl -O OpenFlow13 show s12 | sed -n 's/^ \([0-9]*\)(.*/\1/p' | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 " ]
check "instances are separate" [ "$(OVS_RUNDIR="$T/b" ovs-vsctl list-br | wc -l)" = 3 -a "$(ovs-vsctl list-br | wc -l)" = 9 ]
check "bad specs are refused" [ "$("$OVS" start star:3 --controller "$CTL" --dir "$T/x" 2>/dev/null; echo $?)$("$OVS" start ring:2 --controller "$CTL" --dir "$T/x" 2>/dev/null; echo $?)$("$OVS" start mesh:50 --controller "$CTL" --dir "$T/x" 2>/dev/null; echo $?)" = 111 ]
for d in b c d e x; do "$OVS" stop --dir "$T/$d"; done

# stop, twice
pids="$(cat "$A/ovs-vswitchd.pid" "$A/ovsdb-server.pid")"
"$OVS" stop --dir "$A"
"$OVS" stop --dir "$A"
for p in $pids; do
  case "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null || echo gone)" in Z|gone) ;; *) fail "pid $p still running" ;; esac
done
ok "stop, twice: both daemons gone"

# Start times of bigger networks
for spec in grid:3x3 grid:10x10; do
  t0="$(date +%s.%N)"
  "$OVS" start "$spec" --controller "$CTL" --dir "$T/t" >/dev/null
  echo "time: start $spec $(elapsed "$t0") s"
  "$OVS" stop --dir "$T/t" --clean
done
check "stop --clean removed the directory" [ ! -e "$T/t" ]
echo "all checks passed"
