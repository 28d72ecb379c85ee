//! Random valid frames of every kind. Raw and unknown variants never take a type this crate
//! knows (that would decode as the known variant), and sizes stay far below 64 KiB.

use hubspoke_openflow::consts::*;
use hubspoke_openflow::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// A type in `0..=max` that is not one of `known`.
fn unknown<T>(known: &'static [T]) -> impl Strategy<Value = T>
where
    T: Arbitrary + PartialEq + Copy + std::fmt::Debug + 'static,
{
    any::<T>().prop_filter("a type this crate knows", move |t| !known.contains(t))
}

pub fn any_oxm() -> impl Strategy<Value = Oxm> {
    let raw = (
        prop_oneof![
            Just(OFPXMC_OPENFLOW_BASIC),
            Just(OFPXMC_EXPERIMENTER),
            any::<u16>()
        ],
        0u8..0x80,
        any::<bool>(),
        bytes(16),
    )
        .prop_filter("a field this crate types", |(class, field, ..)| {
            *class != OFPXMC_OPENFLOW_BASIC || !matches!(field, 0 | 3 | 4 | 5 | 6)
        })
        .prop_map(|(class, field, has_mask, payload)| {
            Oxm::Raw(RawOxm {
                class,
                field,
                has_mask,
                payload,
            })
        });
    prop_oneof![
        any::<u32>().prop_map(Oxm::InPort),
        (any::<[u8; 6]>(), option::of(any::<[u8; 6]>()))
            .prop_map(|(addr, mask)| Oxm::EthDst { addr, mask }),
        (any::<[u8; 6]>(), option::of(any::<[u8; 6]>()))
            .prop_map(|(addr, mask)| Oxm::EthSrc { addr, mask }),
        any::<u16>().prop_map(Oxm::EthType),
        (0u16..0x1000).prop_map(Oxm::vlan),
        Just(Oxm::no_vlan()),
        (any::<u16>(), option::of(any::<u16>()))
            .prop_map(|(value, mask)| Oxm::VlanVid { value, mask }),
        raw,
    ]
}

pub fn any_match() -> impl Strategy<Value = Match> {
    vec(any_oxm(), 0..5).prop_map(Match::new)
}

pub fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(port, max_len)| Action::Output { port, max_len }),
        any::<u16>().prop_map(|ethertype| Action::PushVlan { ethertype }),
        Just(Action::PopVlan),
        any_oxm().prop_map(Action::SetField),
        (unknown(&[0, 17, 18, 25]), bytes(20))
            .prop_map(|(action_type, body)| Action::Unknown { action_type, body }),
    ]
}

pub fn any_instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        any::<u8>().prop_map(Instruction::GotoTable),
        vec(any_action(), 0..4).prop_map(Instruction::WriteActions),
        vec(any_action(), 0..4).prop_map(Instruction::ApplyActions),
        Just(Instruction::ClearActions),
        any::<u32>().prop_map(Instruction::Meter),
        (unknown(&[1, 3, 4, 5, 6]), bytes(20)).prop_map(|(instruction_type, body)| {
            Instruction::Unknown {
                instruction_type,
                body,
            }
        }),
    ]
}

fn any_instructions() -> impl Strategy<Value = Vec<Instruction>> {
    vec(any_instruction(), 0..4)
}

pub fn any_port() -> impl Strategy<Value = Port> {
    (
        any::<u32>(),
        any::<[u8; 6]>(),
        "[a-z0-9-]{0,15}",
        any::<[u32; 8]>(),
    )
        .prop_map(|(port_no, hw_addr, name, numbers)| {
            let [config, state, curr, advertised, supported, peer, curr_speed, max_speed] = numbers;
            Port {
                port_no,
                hw_addr,
                name: PortName::new(&name),
                config,
                state,
                curr,
                advertised,
                supported,
                peer,
                curr_speed,
                max_speed,
            }
        })
}

fn any_flow_mod() -> impl Strategy<Value = FlowMod> {
    let command = prop_oneof![
        Just(FlowModCommand::Add),
        Just(FlowModCommand::Modify),
        Just(FlowModCommand::ModifyStrict),
        Just(FlowModCommand::Delete),
        Just(FlowModCommand::DeleteStrict),
    ];
    (
        (any::<[u64; 2]>(), any::<u8>(), command),
        any::<[u16; 3]>(),
        any::<[u32; 3]>(),
        any::<u16>(),
        any_match(),
        any_instructions(),
    )
        .prop_map(
            |(
                ([cookie, cookie_mask], table_id, command),
                [idle_timeout, hard_timeout, priority],
                [buffer_id, out_port, out_group],
                flags,
                matching,
                instructions,
            )| FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command,
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                matching,
                instructions,
            },
        )
}

fn any_meter_band() -> impl Strategy<Value = MeterBand> {
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(rate, burst_size)| MeterBand::Drop { rate, burst_size }),
        (unknown(&[1]), bytes(20))
            .prop_map(|(band_type, body)| MeterBand::Unknown { band_type, body }),
    ]
}

fn any_meter_config() -> impl Strategy<Value = MeterConfig> {
    (any::<u16>(), any::<u32>(), vec(any_meter_band(), 0..3)).prop_map(
        |(flags, meter_id, bands)| MeterConfig {
            flags,
            meter_id,
            bands,
        },
    )
}

fn any_meter_mod() -> impl Strategy<Value = MeterMod> {
    let command = prop_oneof![
        Just(MeterModCommand::Add),
        Just(MeterModCommand::Modify),
        Just(MeterModCommand::Delete),
    ];
    (
        command,
        any::<u16>(),
        any::<u32>(),
        vec(any_meter_band(), 0..3),
    )
        .prop_map(|(command, flags, meter_id, bands)| MeterMod {
            command,
            flags,
            meter_id,
            bands,
        })
}

fn any_flow_stats() -> impl Strategy<Value = FlowStats> {
    (
        any::<u8>(),
        any::<[u32; 2]>(),
        any::<[u16; 4]>(),
        any::<[u64; 3]>(),
        any_match(),
        any_instructions(),
    )
        .prop_map(
            |(
                table_id,
                [duration_sec, duration_nsec],
                [priority, idle_timeout, hard_timeout, flags],
                [cookie, packet_count, byte_count],
                matching,
                instructions,
            )| FlowStats {
                table_id,
                duration_sec,
                duration_nsec,
                priority,
                idle_timeout,
                hard_timeout,
                flags,
                cookie,
                packet_count,
                byte_count,
                matching,
                instructions,
            },
        )
}

fn any_multipart_request() -> impl Strategy<Value = MultipartRequest> {
    let flow = (
        any::<u8>(),
        any::<[u32; 2]>(),
        any::<[u64; 2]>(),
        any_match(),
    )
        .prop_map(
            |(table_id, [out_port, out_group], [cookie, cookie_mask], matching)| {
                MultipartRequestBody::Flow(FlowStatsRequest {
                    table_id,
                    out_port,
                    out_group,
                    cookie,
                    cookie_mask,
                    matching,
                })
            },
        );
    let body = prop_oneof![
        Just(MultipartRequestBody::PortDesc),
        flow,
        any::<u32>().prop_map(|meter_id| MultipartRequestBody::MeterConfig { meter_id }),
        (
            unknown(&[OFPMP_FLOW, OFPMP_PORT_DESC, OFPMP_METER_CONFIG]),
            bytes(40)
        )
            .prop_map(|(mp_type, body)| MultipartRequestBody::Unknown { mp_type, body }),
    ];
    (any::<u16>(), body).prop_map(|(flags, body)| MultipartRequest { flags, body })
}

fn any_multipart_reply() -> impl Strategy<Value = MultipartReply> {
    let body = prop_oneof![
        vec(any_port(), 0..3).prop_map(MultipartReplyBody::PortDesc),
        vec(any_flow_stats(), 0..3).prop_map(MultipartReplyBody::Flow),
        vec(any_meter_config(), 0..3).prop_map(MultipartReplyBody::MeterConfig),
        (
            unknown(&[OFPMP_FLOW, OFPMP_PORT_DESC, OFPMP_METER_CONFIG]),
            bytes(40)
        )
            .prop_map(|(mp_type, body)| MultipartReplyBody::Unknown { mp_type, body }),
    ];
    (any::<u16>(), body).prop_map(|(flags, body)| MultipartReply { flags, body })
}

pub fn any_message() -> impl Strategy<Value = Message> {
    const KNOWN: &[u8] = &[0, 1, 2, 3, 5, 6, 10, 12, 13, 14, 18, 19, 20, 21, 29];
    prop_oneof![
        Just(Message::Hello),
        (any::<u16>(), any::<u16>(), bytes(64)).prop_map(|(err_type, code, data)| {
            Message::Error(ErrorMessage {
                err_type,
                code,
                data,
            })
        }),
        bytes(64).prop_map(Message::EchoRequest),
        bytes(64).prop_map(Message::EchoReply),
        Just(Message::FeaturesRequest),
        (any::<u64>(), any::<u32>(), any::<[u8; 2]>(), any::<u32>()).prop_map(
            |(datapath_id, n_buffers, [n_tables, auxiliary_id], capabilities)| {
                Message::FeaturesReply(SwitchFeatures {
                    datapath_id,
                    n_buffers,
                    n_tables,
                    auxiliary_id,
                    capabilities,
                })
            }
        ),
        (any::<u8>(), any_port())
            .prop_map(|(reason, desc)| Message::PortStatus(PortStatus { reason, desc })),
        (
            any::<u32>(),
            any::<u16>(),
            any::<[u8; 2]>(),
            any::<u64>(),
            any_match(),
            bytes(64)
        )
            .prop_map(
                |(buffer_id, total_len, [reason, table_id], cookie, matching, data)| {
                    Message::PacketIn(PacketIn {
                        buffer_id,
                        total_len,
                        reason,
                        table_id,
                        cookie,
                        matching,
                        data,
                    })
                }
            ),
        (
            any::<u32>(),
            any::<u32>(),
            vec(any_action(), 0..4),
            bytes(64)
        )
            .prop_map(|(buffer_id, in_port, actions, data)| {
                Message::PacketOut(PacketOut {
                    buffer_id,
                    in_port,
                    actions,
                    data,
                })
            }),
        any_flow_mod().prop_map(Message::FlowMod),
        any_meter_mod().prop_map(Message::MeterMod),
        any_multipart_request().prop_map(Message::MultipartRequest),
        any_multipart_reply().prop_map(Message::MultipartReply),
        Just(Message::BarrierRequest),
        Just(Message::BarrierReply),
        (unknown(KNOWN), bytes(64))
            .prop_map(|(msg_type, body)| Message::Unknown { msg_type, body }),
    ]
}

pub fn any_frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), any_message()).prop_map(|(xid, message)| Frame::new(xid, message))
}
