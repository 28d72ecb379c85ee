//! A private Open vSwitch network (`scripts/ovs.sh`: userspace, dummy mode, one bridge per
//! switch of a spec) for the OpenFlow speaker's end-to-end tests, and real frames through it.
//!
//! Every command runs with the instance's `OVS_*` variables on its own `Command`, never in the
//! process's environment, so instances in parallel never meet. Frames are injected on a port
//! with `ovs-appctl netdev-dummy/receive` and captured where they leave one with the
//! interface's `tx_pcap` option; each probe has a source MAC of its own, so an old capture
//! never answers a later check. Calls block (they poll the capture files).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hubspoke_fsm::segments::is_hubspoke_cookie;

/// How long a probe may take to show up where it should leave.
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(5);
/// How long a probe that must not leave a port is watched for there. A frame injected in
/// dummy mode is in the capture file within a few milliseconds.
pub const QUIET_WINDOW: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(10);

/// Where a frame enters or must leave: `(switch, port, vlan)`, VLAN 0 meaning untagged.
pub type At = (u64, u32, u16);

/// Why a probe did not go where it should (or went where it should not), with what was
/// captured: printed as it is, so `.unwrap()` shows it readably.
pub struct DeliveryError(pub String);

impl fmt::Debug for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link between two switches and the port on each end, as `ovs.sh links` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub a: u64,
    pub port_a: u32,
    pub b: u64,
    pub port_b: u32,
}

/// A frame that can be told apart from every other one sent by this process: its number is
/// in its source MAC (`02:68:` and the number) and its UDP source port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe(pub u32);

impl Probe {
    pub fn new() -> Probe {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        Probe(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn src(self) -> [u8; 6] {
        let [a, b, c, d] = self.0.to_be_bytes();
        [0x02, 0x68, a, b, c, d]
    }

    /// The frame in `ovs-appctl netdev-dummy/receive`'s flow syntax: UDP over IPv4 (OVS adds a
    /// 64-byte payload), 802.1Q-tagged with `vlan` unless it is 0.
    fn flow(self, vlan: u16) -> String {
        let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
        let eth = format!("eth(src={},dst=02:68:ff:ff:ff:ff)", mac(self.src()));
        let ip = format!(
            "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=17,tos=0,ttl=64,frag=no),\
             udp(src={},dst=9)",
            self.0 & 0xffff
        );
        if vlan == 0 {
            format!("{eth},{ip}")
        } else {
            format!("{eth},eth_type(0x8100),vlan(vid={vlan},pcp=0),encap({ip})")
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

/// A frame as captured where it left a port: Ethernet and its outer VLAN tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    /// The outer 802.1Q (or 802.1ad) tag's VLAN id; 0 when untagged.
    pub vlan: u16,
    /// Whether it has a tag at all (a tag with VLAN 0 is a priority tag, not "untagged").
    pub tagged: bool,
    /// The ethertype after the outer tag, if any (0x8100 again when double-tagged).
    pub ethertype: u16,
}

impl Frame {
    /// The probe it is, if it is one.
    pub fn probe(&self) -> Option<Probe> {
        let [_, _, a, b, c, d] = self.src;
        (self.src[..2] == [0x02, 0x68]).then(|| Probe(u32::from_be_bytes([a, b, c, d])))
    }

    /// Whether it carries VLAN `vlan` (0: untagged).
    pub fn has_vlan(&self, vlan: u16) -> bool {
        self.vlan == vlan && self.tagged == (vlan != 0)
    }

    fn decode(bytes: &[u8]) -> Option<Frame> {
        let u16_at = |i: usize| Some(u16::from_be_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
        let outer = u16_at(12)?;
        let tagged = matches!(outer, 0x8100 | 0x88a8);
        Some(Frame {
            dst: bytes.get(0..6)?.try_into().ok()?,
            src: bytes.get(6..12)?.try_into().ok()?,
            vlan: if tagged { u16_at(14)? & 0x0fff } else { 0 },
            tagged,
            ethertype: if tagged { u16_at(16)? } else { outer },
        })
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.probe() {
            Some(Probe(n)) => write!(f, "probe {n}")?,
            None => write!(f, "src {}", self.src.map(|b| format!("{b:02x}")).join(":"))?,
        }
        match (self.tagged, self.vlan) {
            (false, _) => write!(f, " untagged")?,
            (true, 0) => write!(f, " priority-tagged")?,
            (true, vlan) => write!(f, " vlan {vlan}")?,
        }
        write!(f, " ethertype {:#06x}", self.ethertype)
    }
}

/// The frames of a classic pcap file (either byte order); a record still being written is
/// left for the next read.
pub fn read_pcap(path: &Path) -> Vec<Frame> {
    let data = std::fs::read(path).unwrap_or_default();
    let little = match data.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => return Vec::new(),
    };
    let mut frames = Vec::new();
    let mut offset = 24;
    while let Some(header) = data.get(offset..offset + 16) {
        let length: [u8; 4] = header[8..12].try_into().expect("4 bytes");
        let length = if little {
            u32::from_le_bytes(length)
        } else {
            u32::from_be_bytes(length)
        } as usize;
        let Some(bytes) = data.get(offset + 16..offset + 16 + length) else {
            break;
        };
        frames.extend(Frame::decode(bytes));
        offset += 16 + length;
    }
    frames
}

fn port_name(switch: u64, port: u32) -> String {
    format!("s{switch}-p{port}")
}

/// A running `scripts/ovs.sh` instance in a temporary directory of its own, stopped (and the
/// directory removed) when dropped, also when a test panics.
pub struct Ovs {
    dir: tempfile::TempDir,
    /// `OVS_STATE`, `OVS_RUNDIR`, …: what `ovs.sh start` printed.
    env: Vec<(String, String)>,
    /// The pcap file of each port being captured.
    captures: Mutex<BTreeMap<(u64, u32), PathBuf>>,
}

impl Ovs {
    /// Builds `spec` (see `scripts/ovs.sh`: grid:RxC, linear:N, ring:N, mesh:N) with every
    /// switch's controller at `controller`. Installs Open vSwitch with apt if it is missing.
    pub fn start(spec: &str, controller: SocketAddr) -> Ovs {
        let dir = tempfile::Builder::new()
            .prefix("hubspoke-ovs-")
            .tempdir()
            .expect("a directory for Open vSwitch");
        let state = dir.path().join("ovs");
        let mut ovs = Ovs {
            dir,
            env: Vec::new(),
            captures: Mutex::default(),
        };
        let exports = ovs.script(&[
            OsStr::new("start"),
            OsStr::new(spec),
            OsStr::new("--controller"),
            OsStr::new(&controller.to_string()),
            OsStr::new("--dir"),
            state.as_os_str(),
        ]);
        ovs.env = exports
            .lines()
            .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
            // printf %q: a plain path is as it is; anything else is backslash-escaped.
            .map(|(name, value)| (name.to_string(), value.replace('\\', "")))
            .collect();
        assert!(
            ovs.env.iter().any(|(name, _)| name == "OVS_RUNDIR"),
            "ovs.sh start printed no OVS_RUNDIR: {exports}"
        );
        ovs
    }

    /// Runs `program` on this instance; its stdout. Panics with its stderr when it fails.
    pub fn run<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> String {
        let program = program.as_ref();
        let output = Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("run {program:?}: {e}"));
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert!(
            output.status.success(),
            "{program:?} {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `ovs-ofctl -O OpenFlow13 ARGS` (e.g. `add-flow s1 …`); its stdout.
    pub fn ofctl(&self, args: &[&str]) -> String {
        let mut all = vec!["-O", "OpenFlow13"];
        all.extend_from_slice(args);
        self.run("ovs-ofctl", &all)
    }

    fn script<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        self.run(super::script("ovs.sh"), args)
    }

    fn script_on(&self, command: &str, switches: &[u64]) {
        let mut args = vec![command.to_string()];
        args.extend(switches.iter().map(u64::to_string));
        self.script(&args);
    }

    /// The link between switches `a` and `b` fails: both ends go down, no frame crosses it.
    pub fn fail_link(&self, a: u64, b: u64) {
        self.script_on("fail-link", &[a, b]);
    }

    pub fn restore_link(&self, a: u64, b: u64) {
        self.script_on("restore-link", &[a, b]);
    }

    /// A power cycle's first half: the bridge is gone, with its flows, meters and controller
    /// connection; its links are down.
    pub fn fail_switch(&self, switch: u64) {
        self.script_on("fail-switch", &[switch]);
    }

    /// The switch comes back empty and connects to its controller; its ports being captured
    /// are captured again (into the same files).
    pub fn restore_switch(&self, switch: u64) {
        self.script_on("restore-switch", &[switch]);
        let captures = self.captures.lock().expect("captures");
        for (&(_, port), file) in captures.range((switch, 0)..=(switch, u32::MAX)) {
            self.set_tx_pcap(switch, port, file);
        }
    }

    /// The switches not connected to their controller now try again at once (call it after
    /// the controller (re)started: OVS would wait up to 8 s).
    pub fn reconnect(&self) {
        self.script(&["reconnect"]);
    }

    /// The edge (non-ISL) ports of `switch`, in order.
    pub fn edge_ports(&self, switch: u64) -> Vec<u32> {
        self.script(&["ports".to_string(), switch.to_string()])
            .lines()
            .filter_map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [port, _, "edge", ..] => Some(port.parse().expect("a port number")),
                    _ => None,
                },
            )
            .collect()
    }

    /// Every link, in the spec's order.
    pub fn links(&self) -> Vec<Link> {
        self.script(&["links"])
            .lines()
            .map(|line| {
                let n: Vec<u64> = line
                    .split_whitespace()
                    .map(|n| n.parse().expect("a number"))
                    .collect();
                let port = |i: usize| u32::try_from(n[i]).expect("a port number");
                Link {
                    a: n[0],
                    port_a: port(1),
                    b: n[2],
                    port_b: port(3),
                }
            })
            .collect()
    }

    /// Injects `probe` on `port` of `switch` as if it came in from the wire, tagged with
    /// `vlan` (0: untagged).
    pub fn send(&self, switch: u64, port: u32, vlan: u16, probe: &Probe) {
        self.run(
            "ovs-appctl",
            &[
                "netdev-dummy/receive",
                &port_name(switch, port),
                &probe.flow(vlan),
            ],
        );
    }

    /// From now on, what leaves `port` of `switch` is captured (again a no-op).
    pub fn capture(&self, switch: u64, port: u32) {
        let mut captures = self.captures.lock().expect("captures");
        captures.entry((switch, port)).or_insert_with(|| {
            let file = self
                .dir
                .path()
                .join(format!("{}.pcap", port_name(switch, port)));
            self.set_tx_pcap(switch, port, &file);
            file
        });
    }

    /// `ovs-vsctl` returns once ovs-vswitchd has applied it: the capture is on.
    fn set_tx_pcap(&self, switch: u64, port: u32, file: &Path) {
        let option = format!("options:tx_pcap={}", file.display());
        self.run(
            "ovs-vsctl",
            &["set", "interface", &port_name(switch, port), &option],
        );
    }

    /// The frames that left `port` of `switch` since [`capture`](Self::capture) began there.
    pub fn captured(&self, switch: u64, port: u32) -> Vec<Frame> {
        let captures = self.captures.lock().expect("captures");
        captures
            .get(&(switch, port))
            .map(|file| read_pcap(file))
            .unwrap_or_default()
    }

    /// Sends a new probe at `send_at` and waits until it leaves at `leave_at` with the VLAN
    /// said there: the time it took. An error, saying where it went and what did leave there,
    /// when it has not after [`DELIVERY_LIMIT`], or left there with another VLAN.
    pub fn expect_delivered(&self, send_at: At, leave_at: At) -> Result<Duration, DeliveryError> {
        let (switch, port, vlan) = leave_at;
        self.capture(switch, port);
        let probe = Probe::new();
        let start = Instant::now();
        self.send(send_at.0, send_at.1, send_at.2, &probe);
        loop {
            let here = self.captured(switch, port);
            let seen = here.iter().find(|frame| frame.probe() == Some(probe));
            match seen {
                Some(frame) if frame.has_vlan(vlan) => return Ok(start.elapsed()),
                Some(_) => {}
                None if start.elapsed() < DELIVERY_LIMIT => {
                    std::thread::sleep(POLL);
                    continue;
                }
                None => {}
            }
            let outcome = match seen {
                Some(frame) => format!("left {} as {frame}", port_name(switch, port)),
                None => format!(
                    "did not leave {} in {DELIVERY_LIMIT:?}",
                    port_name(switch, port)
                ),
            };
            return Err(DeliveryError(format!(
                "probe {} sent at {} vlan {} {outcome}, expected vlan {vlan}\n{}",
                probe.0,
                port_name(send_at.0, send_at.1),
                send_at.2,
                self.explain(probe, &here)
            )));
        }
    }

    /// Sends a new probe at `send_at` and watches `leave_at` (switch, port) for
    /// [`QUIET_WINDOW`]: an error if the probe leaves there, with any VLAN.
    pub fn expect_not_delivered(
        &self,
        send_at: At,
        leave_at: (u64, u32),
    ) -> Result<(), DeliveryError> {
        let (switch, port) = leave_at;
        self.capture(switch, port);
        let probe = Probe::new();
        let start = Instant::now();
        self.send(send_at.0, send_at.1, send_at.2, &probe);
        while start.elapsed() < QUIET_WINDOW {
            let here = self.captured(switch, port);
            if let Some(frame) = here.iter().find(|frame| frame.probe() == Some(probe)) {
                return Err(DeliveryError(format!(
                    "probe {} sent at {} vlan {} left {} as {frame}, expected nothing\n{}",
                    probe.0,
                    port_name(send_at.0, send_at.1),
                    send_at.2,
                    port_name(switch, port),
                    self.explain(probe, &here)
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// Where `probe` was seen leaving (of the ports captured), and the last frames captured
    /// at the port watched (`here`).
    fn explain(&self, probe: Probe, here: &[Frame]) -> String {
        let mut seen = Vec::new();
        for (&(switch, port), file) in self.captures.lock().expect("captures").iter() {
            for frame in read_pcap(file).iter().filter(|f| f.probe() == Some(probe)) {
                seen.push(format!("{} as {frame}", port_name(switch, port)));
            }
        }
        let last: Vec<String> = here
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(|f| format!("  {f}"))
            .collect();
        format!(
            "seen leaving (captured ports only): {}\nlast frames captured there ({} in all):\n{}",
            if seen.is_empty() {
                "nowhere".into()
            } else {
                seen.join(", ")
            },
            here.len(),
            last.join("\n")
        )
    }

    /// The switch's rules, one line each as `ovs-ofctl -O OpenFlow13 dump-flows` prints them
    /// (with their statistics, which OVS brings up to date lazily, within about a second).
    pub fn dump_flows(&self, switch: u64) -> Vec<String> {
        self.ofctl(&["dump-flows", &format!("s{switch}")])
            .lines()
            .filter(|line| line.starts_with(' '))
            .map(|line| line.trim().to_string())
            .collect()
    }

    /// The switch's meters, one line each: `ovs-ofctl -O OpenFlow13 dump-meters` prints a
    /// meter's bands on lines of their own, joined here (`meter=5 kbps bands=type=drop
    /// rate=1000`).
    pub fn dump_meters(&self, switch: u64) -> Vec<String> {
        let mut meters: Vec<String> = Vec::new();
        for line in self
            .ofctl(&["dump-meters", &format!("s{switch}")])
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
        {
            match meters.last_mut() {
                Some(meter) if !line.starts_with("meter=") => *meter += line.trim(),
                _ => meters.push(line.trim().to_string()),
            }
        }
        meters
    }

    /// The switch's rules in hubspoke's cookie space (a direction flag and a flow cookie id):
    /// not the speaker's system rules, nor anybody else's.
    pub fn hubspoke_rules(&self, switch: u64) -> Vec<String> {
        self.dump_flows(switch)
            .into_iter()
            .filter(|rule| {
                let cookie = rule
                    .strip_prefix("cookie=0x")
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok());
                cookie.is_some_and(is_hubspoke_cookie)
            })
            .collect()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        let state = self.dir.path().join("ovs");
        if std::thread::panicking() {
            let log = std::fs::read_to_string(state.join("ovs-vswitchd.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            eprintln!("ovs-vswitchd.log, last lines:\n{}", tail.join("\n"));
        }
        let stopped = Command::new(super::script("ovs.sh"))
            .args(["stop", "--clean", "--dir"])
            .arg(&state)
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            eprintln!("ovs.sh stop --dir {} failed", state.display());
        }
    }
}
