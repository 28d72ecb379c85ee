//! Golden bytes, written by hand from the OpenFlow 1.3.5 structures and checked against Ryu's
//! layouts (`ofproto_v1_3.py`: `OFP_HEADER_PACK_STR = '!BBHI'`, `OFP_FLOW_MOD_PACK_STR0 =
//! '!QQBBHHHIIIH2x'`, `OFP_MATCH_PACK_STR = '!HHBBBB'`, `OFP_INSTRUCTION_ACTIONS_PACK_STR =
//! '!HH4x'`, `OFP_ACTION_OUTPUT_PACK_STR = '!HHIH6x'`, …). Each message is encoded and compared
//! byte for byte, and the bytes are decoded and compared with the message.

use hubspoke_openflow::consts::*;
use hubspoke_openflow::*;

fn check(frame: Frame, golden: &[u8]) {
    let encoded = encode(&frame).expect("the golden frame encodes");
    assert_eq!(
        encoded, golden,
        "encoding {frame:?}\n got {encoded:02x?}\nwant {golden:02x?}"
    );
    assert_eq!(decode(golden), Ok(frame));
    assert_eq!(split_frame(golden), Ok(Some(golden.len())));
}

const HUBSPOKE_COOKIE: u64 = 0x4000_0000_0000_0001;

#[test]
fn hello() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, // 1.3, HELLO (0), length 8, xid 1
    ];
    check(Frame::new(1, Message::Hello), &golden);
}

#[test]
fn hello_from_open_vswitch_with_a_version_bitmap() {
    #[rustfmt::skip]
    let ovs = [
        0x04, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x05, // 1.3, HELLO, length 16, xid 5
        0x00, 0x01, 0x00, 0x08,                         // element VERSIONBITMAP, length 8
        0x00, 0x00, 0x00, 0x10,                         // bitmap: bit 4 (1.3)
    ];
    assert_eq!(decode(&ovs), Ok(Frame::new(5, Message::Hello)));
}

#[test]
fn features_reply() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x06, 0x00, 0x20, 0x00, 0x00, 0x00, 0x02, // 1.3, FEATURES_REPLY (6), length 32, xid 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, // datapath_id 0x102
        0x00, 0x00, 0x00, 0x00,                         // n_buffers 0
        0xfe,                                           // n_tables 254
        0x00,                                           // auxiliary_id 0
        0x00, 0x00,                                     // pad
        0x00, 0x00, 0x00, 0x4f,                         // capabilities FLOW|TABLE|PORT|GROUP|QUEUE_STATS
        0x00, 0x00, 0x00, 0x00,                         // reserved
    ];
    let features = SwitchFeatures {
        datapath_id: 0x102,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: OFPC_FLOW_STATS
            | OFPC_TABLE_STATS
            | OFPC_PORT_STATS
            | OFPC_GROUP_STATS
            | OFPC_QUEUE_STATS,
    };
    check(Frame::new(2, Message::FeaturesReply(features)), &golden);
}

/// The ingress rule of a flow: tag what comes in on port 10 with VLAN 100 as VLAN 200, through
/// meter 7, out of port 2.
#[test]
fn flow_mod_add_with_a_vlan_match_a_vlan_push_and_swap_and_a_meter() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x0e, 0x00, 0x80, 0x00, 0x00, 0x00, 0x2a, // 1.3, FLOW_MOD (14), length 128, xid 42
        0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask
        0x00,                                           // table_id 0
        0x00,                                           // command ADD
        0x00, 0x00,                                     // idle_timeout
        0x00, 0x00,                                     // hard_timeout
        0x03, 0xe8,                                     // priority 1000
        0xff, 0xff, 0xff, 0xff,                         // buffer_id OFP_NO_BUFFER
        0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
        0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
        0x00, 0x01,                                     // flags SEND_FLOW_REM
        0x00, 0x00,                                     // pad
        // match: OXM, length 18 = 4 + 8 + 6, padded to 24
        0x00, 0x01, 0x00, 0x12,
        0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0a, //   in_port (field 0), length 4: 10
        0x80, 0x00, 0x0c, 0x02, 0x10, 0x64,             //   vlan_vid (field 6 << 1), length 2: PRESENT|100
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             //   pad
        // instruction meter (6), length 8: meter 7
        0x00, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x07,
        // instruction apply_actions (4), length 48 = 8 + 8 + 16 + 16
        0x00, 0x04, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x11, 0x00, 0x08, 0x81, 0x00, 0x00, 0x00, //   push_vlan (17), length 8: 0x8100, pad
        0x00, 0x19, 0x00, 0x10,                         //   set_field (25), length 16 = 4 + 6 + pad 6
        0x80, 0x00, 0x0c, 0x02, 0x10, 0xc8,             //     vlan_vid: PRESENT|200
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             //     pad
        0x00, 0x00, 0x00, 0x10,                         //   output (0), length 16
        0x00, 0x00, 0x00, 0x02,                         //     port 2
        0x00, 0x00,                                     //     max_len 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             //     pad
    ];
    let add = FlowMod {
        cookie: HUBSPOKE_COOKIE,
        priority: 1000,
        flags: OFPFF_SEND_FLOW_REM,
        matching: Match::new(vec![Oxm::InPort(10), Oxm::vlan(100)]),
        instructions: vec![
            Instruction::Meter(7),
            Instruction::ApplyActions(vec![
                Action::PushVlan { ethertype: 0x8100 },
                Action::SetField(Oxm::vlan(200)),
                Action::Output {
                    port: 2,
                    max_len: 0,
                },
            ]),
        ],
        ..FlowMod::default()
    };
    check(Frame::new(42, Message::FlowMod(add)), &golden);
}

#[test]
fn meter_mod_add_with_one_drop_band() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x1d, 0x00, 0x20, 0x00, 0x00, 0x00, 0x2b, // 1.3, METER_MOD (29), length 32, xid 43
        0x00, 0x00,                                     // command ADD
        0x00, 0x05,                                     // flags KBPS|BURST
        0x00, 0x00, 0x00, 0x07,                         // meter_id 7
        0x00, 0x01, 0x00, 0x10,                         // band DROP (1), length 16
        0x00, 0x00, 0x27, 0x10,                         //   rate 10000 kbps
        0x00, 0x00, 0x03, 0xe8,                         //   burst_size 1000
        0x00, 0x00, 0x00, 0x00,                         //   pad
    ];
    let add = MeterMod {
        command: MeterModCommand::Add,
        flags: OFPMF_KBPS | OFPMF_BURST,
        meter_id: 7,
        bands: vec![MeterBand::Drop {
            rate: 10_000,
            burst_size: 1000,
        }],
    };
    check(Frame::new(43, Message::MeterMod(add)), &golden);
}

/// What a switch holds of hubspoke's: every flow whose cookie has hubspoke's top bits.
#[test]
fn flow_stats_request_filtered_by_cookie_and_mask() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x12, 0x00, 0x38, 0x00, 0x00, 0x00, 0x2c, // 1.3, MULTIPART_REQUEST (18), length 56, xid 44
        0x00, 0x01,                                     // type OFPMP_FLOW
        0x00, 0x00,                                     // flags
        0x00, 0x00, 0x00, 0x00,                         // pad
        0xff,                                           // table_id OFPTT_ALL
        0x00, 0x00, 0x00,                               // pad
        0xff, 0xff, 0xff, 0xff,                         // out_port OFPP_ANY
        0xff, 0xff, 0xff, 0xff,                         // out_group OFPG_ANY
        0x00, 0x00, 0x00, 0x00,                         // pad
        0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cookie_mask
        0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // match: OXM, length 4 (empty), pad
    ];
    let request = MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Flow(FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0x4000_0000_0000_0000,
            cookie_mask: 0xf000_0000_0000_0000,
            matching: Match::default(),
        }),
    };
    check(Frame::new(44, Message::MultipartRequest(request)), &golden);
}

/// One entry of a flow dump, with more to follow (Ryu: `OFP_FLOW_STATS_0_PACK_STR =
/// '!HBxIIHHHH4xQQQ'`).
#[test]
fn flow_stats_reply_with_more_to_follow() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x13, 0x00, 0x70, 0x00, 0x00, 0x00, 0x2c, // 1.3, MULTIPART_REPLY (19), length 112, xid 44
        0x00, 0x01,                                     // type OFPMP_FLOW
        0x00, 0x01,                                     // flags REPLY_MORE
        0x00, 0x00, 0x00, 0x00,                         // pad
        0x00, 0x60,                                     // entry length 96 = 48 + 24 + 24
        0x00,                                           // table_id 0
        0x00,                                           // pad
        0x00, 0x00, 0x00, 0x3c,                         // duration_sec 60
        0x00, 0x00, 0x01, 0xf4,                         // duration_nsec 500
        0x03, 0xe8,                                     // priority 1000
        0x00, 0x00,                                     // idle_timeout
        0x00, 0x00,                                     // hard_timeout
        0x00, 0x01,                                     // flags SEND_FLOW_REM
        0x00, 0x00, 0x00, 0x00,                         // pad
        0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, // packet_count 3
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c, // byte_count 300
        0x00, 0x01, 0x00, 0x12,                         // match: OXM, length 18
        0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0a, //   in_port 10
        0x80, 0x00, 0x0c, 0x02, 0x10, 0x64,             //   vlan_vid PRESENT|100
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             //   pad
        0x00, 0x04, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, // apply_actions, length 24
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x02, //   output, length 16, port 2
        0xff, 0xe5, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //     max_len OFPCML_MAX, pad
    ];
    let reply = MultipartReply {
        flags: OFPMPF_REPLY_MORE,
        body: MultipartReplyBody::Flow(vec![FlowStats {
            table_id: 0,
            duration_sec: 60,
            duration_nsec: 500,
            priority: 1000,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: OFPFF_SEND_FLOW_REM,
            cookie: HUBSPOKE_COOKIE,
            packet_count: 3,
            byte_count: 300,
            matching: Match::new(vec![Oxm::InPort(10), Oxm::vlan(100)]),
            instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                port: 2,
                max_len: OFPCML_MAX,
            }])],
        }]),
    };
    assert!(reply.more());
    check(Frame::new(44, Message::MultipartReply(reply)), &golden);
}

/// Port 3 of a bridge went down (Ryu: `OFP_PORT_STATUS_PACK_STR = '!B7x' + 'I4x6s2x16sIIIIIIII'`).
#[test]
fn port_status_link_down() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x0c, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, // 1.3, PORT_STATUS (12), length 80, xid 0
        0x02,                                           // reason MODIFY
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       // pad
        0x00, 0x00, 0x00, 0x03,                         // port_no 3
        0x00, 0x00, 0x00, 0x00,                         // pad
        0xaa, 0xbb, 0xcc, 0x00, 0x00, 0x03,             // hw_addr
        0x00, 0x00,                                     // pad
        b's', b'1', b'-', b'e', b't', b'h', b'3', 0x00, // name "s1-eth3", NUL-padded to 16
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01,                         // config PORT_DOWN
        0x00, 0x00, 0x00, 0x01,                         // state LINK_DOWN
        0x00, 0x00, 0x28, 0x40,                         // curr 10GB_FD|COPPER|AUTONEG
        0x00, 0x00, 0x00, 0x00,                         // advertised
        0x00, 0x00, 0x00, 0x00,                         // supported
        0x00, 0x00, 0x00, 0x00,                         // peer
        0x00, 0x98, 0x96, 0x80,                         // curr_speed 10,000,000 kbps
        0x00, 0x00, 0x00, 0x00,                         // max_speed
    ];
    let status = PortStatus {
        reason: OFPPR_MODIFY,
        desc: Port {
            port_no: 3,
            hw_addr: [0xaa, 0xbb, 0xcc, 0, 0, 3],
            name: PortName::new("s1-eth3"),
            config: OFPPC_PORT_DOWN,
            state: OFPPS_LINK_DOWN,
            curr: 0x2840,
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: 10_000_000,
            max_speed: 0,
        },
    };
    check(Frame::new(0, Message::PortStatus(status)), &golden);
}

/// A switch refusing a FLOW_MOD whose meter does not exist, as Open vSwitch does.
#[test]
fn error_missing_meter() {
    #[rustfmt::skip]
    let golden = [
        0x04, 0x01, 0x00, 0x14, 0x00, 0x00, 0x00, 0x2a, // 1.3, ERROR (1), length 20, xid 42
        0x00, 0x0c,                                     // type METER_MOD_FAILED
        0x00, 0x02,                                     // code INVALID_METER
        0x04, 0x0e, 0x00, 0x80, 0x00, 0x00, 0x00, 0x2a, // data: the start of the FLOW_MOD
    ];
    let error = ErrorMessage {
        err_type: OFPET_METER_MOD_FAILED,
        code: OFPMMFC_INVALID_METER,
        data: vec![0x04, 0x0e, 0x00, 0x80, 0x00, 0x00, 0x00, 0x2a],
    };
    check(Frame::new(42, Message::Error(error)), &golden);
}
