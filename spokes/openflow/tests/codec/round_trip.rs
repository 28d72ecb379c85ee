//! Every message kind, encoded and decoded back to itself, with values that exercise padding:
//! matches whose fields end off an 8-byte boundary, set_field actions that need padding, odd
//! data lengths, and the raw variants of what this crate does not type.

use hubspoke_openflow::consts::*;
use hubspoke_openflow::*;

/// A match of 18 bytes (padded to 24) with a masked field and a field kept raw: ipv4_dst
/// 10.0.0.0/8.
fn odd_match() -> Match {
    Match::new(vec![
        Oxm::InPort(10),
        Oxm::EthType(0x0800),
        Oxm::EthDst {
            addr: [0x01, 0x80, 0xc2, 0, 0, 0],
            mask: Some([0xff, 0xff, 0xff, 0, 0, 0]),
        },
        Oxm::Raw(RawOxm {
            class: OFPXMC_OPENFLOW_BASIC,
            field: 12,
            has_mask: true,
            payload: vec![10, 0, 0, 0, 255, 0, 0, 0],
        }),
    ])
}

fn every_action() -> Vec<Action> {
    vec![
        Action::PopVlan,
        Action::PushVlan { ethertype: 0x88a8 },
        Action::SetField(Oxm::vlan(4095)),
        Action::SetField(Oxm::EthSrc {
            addr: [2, 0, 0, 0, 0, 1],
            mask: None,
        }),
        Action::Output {
            port: OFPP_CONTROLLER,
            max_len: OFPCML_NO_BUFFER,
        },
        // group 5
        Action::Unknown {
            action_type: OFPAT_GROUP,
            body: vec![0, 0, 0, 5],
        },
    ]
}

fn every_instruction() -> Vec<Instruction> {
    vec![
        Instruction::Meter(OFPM_MAX),
        Instruction::ApplyActions(every_action()),
        Instruction::ClearActions,
        Instruction::WriteActions(vec![Action::Output {
            port: 1,
            max_len: 0,
        }]),
        Instruction::GotoTable(3),
        // write_metadata: pad, metadata, mask
        Instruction::Unknown {
            instruction_type: OFPIT_WRITE_METADATA,
            body: [[0; 4].as_slice(), &[1; 8], &[0xff; 8]].concat(),
        },
    ]
}

fn port(port_no: u32, name: &str) -> Port {
    Port {
        port_no,
        hw_addr: [0xaa, 0xbb, 0xcc, 0xdd, 0xee, port_no as u8],
        name: PortName::new(name),
        config: 0,
        state: OFPPS_LIVE,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 0,
        max_speed: 0,
    }
}

/// One frame or more of every message kind.
pub fn samples() -> Vec<Frame> {
    let messages = vec![
        Message::Hello,
        Message::Error(ErrorMessage {
            err_type: OFPET_FLOW_MOD_FAILED,
            code: OFPFMFC_TABLE_FULL,
            data: vec![4, 14, 0, 56, 0, 0, 0, 1, 0xaa],
        }),
        Message::EchoRequest(b"ping".to_vec()),
        Message::EchoReply(b"three".to_vec()),
        Message::EchoReply(Vec::new()),
        Message::FeaturesRequest,
        Message::FeaturesReply(SwitchFeatures {
            datapath_id: u64::MAX,
            n_buffers: 256,
            n_tables: 1,
            auxiliary_id: 2,
            capabilities: OFPC_PORT_BLOCKED,
        }),
        Message::PortStatus(PortStatus {
            reason: OFPPR_ADD,
            desc: port(OFPP_LOCAL, "br0"),
        }),
        Message::PacketIn(PacketIn {
            buffer_id: OFP_NO_BUFFER,
            total_len: 60,
            reason: OFPR_ACTION,
            table_id: 0,
            cookie: 0x4000_0000_0000_0002,
            matching: odd_match(),
            data: vec![0xff; 13],
        }),
        Message::PacketOut(PacketOut {
            buffer_id: OFP_NO_BUFFER,
            in_port: OFPP_CONTROLLER,
            actions: every_action(),
            data: vec![1, 2, 3, 4, 5],
        }),
        Message::FlowMod(FlowMod {
            cookie: 0x4000_0000_0000_0003,
            cookie_mask: u64::MAX,
            table_id: 0,
            command: FlowModCommand::ModifyStrict,
            idle_timeout: 30,
            hard_timeout: 300,
            priority: 0,
            flags: OFPFF_SEND_FLOW_REM | OFPFF_RESET_COUNTS,
            matching: odd_match(),
            instructions: every_instruction(),
            ..FlowMod::default()
        }),
        Message::FlowMod(FlowMod {
            command: FlowModCommand::Delete,
            table_id: OFPTT_ALL,
            cookie: 0x4000_0000_0000_0000,
            cookie_mask: 0xf000_0000_0000_0000,
            ..FlowMod::default()
        }),
        Message::MeterMod(MeterMod {
            command: MeterModCommand::Modify,
            flags: OFPMF_PKTPS | OFPMF_STATS,
            meter_id: 262_144,
            bands: vec![
                MeterBand::Drop {
                    rate: 1,
                    burst_size: 0,
                },
                // dscp_remark: rate, burst_size, prec_level, pad
                MeterBand::Unknown {
                    band_type: OFPMBT_DSCP_REMARK,
                    body: vec![0, 0, 0, 9, 0, 0, 0, 1, 2, 0, 0, 0],
                },
            ],
        }),
        Message::MeterMod(MeterMod {
            command: MeterModCommand::Delete,
            flags: 0,
            meter_id: OFPM_ALL,
            bands: Vec::new(),
        }),
        Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body: MultipartRequestBody::PortDesc,
        }),
        Message::MultipartRequest(MultipartRequest {
            flags: OFPMPF_REQ_MORE,
            body: MultipartRequestBody::Flow(FlowStatsRequest {
                table_id: 0,
                out_port: 2,
                out_group: OFPG_ANY,
                cookie: 0,
                cookie_mask: 0,
                matching: Match::new(vec![Oxm::any_vlan()]),
            }),
        }),
        Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body: MultipartRequestBody::MeterConfig { meter_id: OFPM_ALL },
        }),
        Message::MultipartReply(MultipartReply {
            flags: OFPMPF_REPLY_MORE,
            body: MultipartReplyBody::MeterConfig(vec![
                MeterConfig {
                    flags: OFPMF_KBPS | OFPMF_BURST,
                    meter_id: 7,
                    bands: vec![MeterBand::Drop {
                        rate: 10_000,
                        burst_size: 10_000,
                    }],
                },
                MeterConfig {
                    flags: 0,
                    meter_id: 8,
                    bands: Vec::new(),
                },
            ]),
        }),
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::PortDesc(vec![
                port(1, "s1-eth1"),
                port(2, "fifteen-chars-x"),
            ]),
        }),
        Message::MultipartReply(MultipartReply {
            flags: OFPMPF_REPLY_MORE,
            body: MultipartReplyBody::Flow(vec![
                FlowStats {
                    table_id: 0,
                    duration_sec: 1,
                    duration_nsec: 999_999_999,
                    priority: 1000,
                    idle_timeout: 0,
                    hard_timeout: 0,
                    flags: 0,
                    cookie: 1,
                    packet_count: u64::MAX,
                    byte_count: 0,
                    matching: odd_match(),
                    instructions: every_instruction(),
                },
                FlowStats {
                    table_id: 1,
                    duration_sec: 0,
                    duration_nsec: 0,
                    priority: 0,
                    idle_timeout: 0,
                    hard_timeout: 0,
                    flags: 0,
                    cookie: 0,
                    packet_count: 0,
                    byte_count: 0,
                    matching: Match::default(),
                    instructions: Vec::new(),
                },
            ]),
        }),
        Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Unknown {
                mp_type: OFPMP_DESC,
                body: vec![b'O'; 7],
            },
        }),
        Message::BarrierRequest,
        Message::BarrierReply,
        Message::Unknown {
            msg_type: OFPT_ROLE_REPLY,
            body: vec![0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        },
    ];
    messages
        .into_iter()
        .zip(1..)
        .map(|(message, xid)| Frame::new(xid, message))
        .collect()
}

/// The kind of a message; a match with no wildcard, so that a new kind must be added here.
fn kind(message: &Message) -> &'static str {
    match message {
        Message::Hello => "hello",
        Message::Error(_) => "error",
        Message::EchoRequest(_) => "echo request",
        Message::EchoReply(_) => "echo reply",
        Message::FeaturesRequest => "features request",
        Message::FeaturesReply(_) => "features reply",
        Message::PortStatus(_) => "port status",
        Message::PacketIn(_) => "packet in",
        Message::PacketOut(_) => "packet out",
        Message::FlowMod(_) => "flow mod",
        Message::MeterMod(_) => "meter mod",
        Message::MultipartRequest(_) => "multipart request",
        Message::MultipartReply(_) => "multipart reply",
        Message::BarrierRequest => "barrier request",
        Message::BarrierReply => "barrier reply",
        Message::Unknown { .. } => "unknown",
    }
}

#[test]
fn the_samples_cover_every_message_kind() {
    let kinds: std::collections::BTreeSet<_> = samples().iter().map(|f| kind(&f.message)).collect();
    assert_eq!(kinds.len(), 16, "{kinds:?}");
}

#[test]
fn every_message_kind_round_trips() {
    for frame in samples() {
        let bytes = encode(&frame).unwrap_or_else(|e| panic!("{frame:?}: {e}"));
        assert_eq!(
            u16::from_be_bytes([bytes[2], bytes[3]]) as usize,
            bytes.len(),
            "the header's length"
        );
        assert_eq!(decode(&bytes), Ok(frame), "{bytes:02x?}");
    }
}

#[test]
fn the_samples_sent_back_to_back_come_out_of_a_frame_reader_whole() {
    let frames = samples();
    let mut stream = Vec::new();
    for frame in &frames {
        encode_into(frame, &mut stream).unwrap();
    }
    let mut reader = FrameReader::new();
    let mut read = Vec::new();
    // Chunks that straddle message boundaries.
    for chunk in stream.chunks(13) {
        reader.push(chunk);
        while let Some(frame) = reader.next_frame().unwrap() {
            read.push(frame);
        }
    }
    assert_eq!(read, frames);
    assert_eq!(reader.buffered(), 0);
}
