//! The numbers of the OpenFlow 1.3.5 specification that a controller writes or reads, under
//! the spec's own names, so that code and spec can be read side by side.

/// The version this crate speaks: OpenFlow 1.3.
pub const OFP_VERSION: u8 = 0x04;
/// Every message starts with an 8-byte header.
pub const OFP_HEADER_LEN: usize = 8;

// ofp_type
pub const OFPT_HELLO: u8 = 0;
pub const OFPT_ERROR: u8 = 1;
pub const OFPT_ECHO_REQUEST: u8 = 2;
pub const OFPT_ECHO_REPLY: u8 = 3;
pub const OFPT_EXPERIMENTER: u8 = 4;
pub const OFPT_FEATURES_REQUEST: u8 = 5;
pub const OFPT_FEATURES_REPLY: u8 = 6;
pub const OFPT_GET_CONFIG_REQUEST: u8 = 7;
pub const OFPT_GET_CONFIG_REPLY: u8 = 8;
pub const OFPT_SET_CONFIG: u8 = 9;
pub const OFPT_PACKET_IN: u8 = 10;
pub const OFPT_FLOW_REMOVED: u8 = 11;
pub const OFPT_PORT_STATUS: u8 = 12;
pub const OFPT_PACKET_OUT: u8 = 13;
pub const OFPT_FLOW_MOD: u8 = 14;
pub const OFPT_GROUP_MOD: u8 = 15;
pub const OFPT_PORT_MOD: u8 = 16;
pub const OFPT_TABLE_MOD: u8 = 17;
pub const OFPT_MULTIPART_REQUEST: u8 = 18;
pub const OFPT_MULTIPART_REPLY: u8 = 19;
pub const OFPT_BARRIER_REQUEST: u8 = 20;
pub const OFPT_BARRIER_REPLY: u8 = 21;
pub const OFPT_ROLE_REQUEST: u8 = 24;
pub const OFPT_ROLE_REPLY: u8 = 25;
pub const OFPT_METER_MOD: u8 = 29;

// ofp_hello_elem_type
pub const OFPHET_VERSIONBITMAP: u16 = 1;

// ofp_port_no: the reserved ports
pub const OFPP_MAX: u32 = 0xffff_ff00;
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
pub const OFPP_TABLE: u32 = 0xffff_fff9;
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
pub const OFPP_ALL: u32 = 0xffff_fffc;
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// No port: a wildcard in FLOW_MOD deletes and flow stats requests.
pub const OFPP_ANY: u32 = 0xffff_ffff;

// ofp_group
pub const OFPG_MAX: u32 = 0xffff_ff00;
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// No group: a wildcard in FLOW_MOD deletes and flow stats requests.
pub const OFPG_ANY: u32 = 0xffff_ffff;

/// The packet is not buffered on the switch (PACKET_IN, PACKET_OUT, FLOW_MOD).
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;

// ofp_table
pub const OFPTT_MAX: u8 = 0xfe;
/// Every table, in a flow stats request or a FLOW_MOD delete.
pub const OFPTT_ALL: u8 = 0xff;

// ofp_controller_max_len, for an output action to the controller
pub const OFPCML_MAX: u16 = 0xffe5;
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

// ofp_vlan_id: the OXM vlan_vid value carries this bit when the packet has a tag
pub const OFPVID_PRESENT: u16 = 0x1000;
pub const OFPVID_NONE: u16 = 0x0000;

/// The default FLOW_MOD priority, halfway.
pub const OFP_DEFAULT_PRIORITY: u16 = 0x8000;

// ofp_flow_mod_flags
pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
pub const OFPFF_RESET_COUNTS: u16 = 1 << 2;
pub const OFPFF_NO_PKT_COUNTS: u16 = 1 << 3;
pub const OFPFF_NO_BYT_COUNTS: u16 = 1 << 4;

// ofp_match_type and ofp_oxm_class
pub const OFPMT_OXM: u16 = 1;
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;

// oxm_ofb_match_fields: the ones this crate types
pub const OFPXMT_OFB_IN_PORT: u8 = 0;
pub const OFPXMT_OFB_ETH_DST: u8 = 3;
pub const OFPXMT_OFB_ETH_SRC: u8 = 4;
pub const OFPXMT_OFB_ETH_TYPE: u8 = 5;
pub const OFPXMT_OFB_VLAN_VID: u8 = 6;

// ofp_instruction_type
pub const OFPIT_GOTO_TABLE: u16 = 1;
pub const OFPIT_WRITE_METADATA: u16 = 2;
pub const OFPIT_WRITE_ACTIONS: u16 = 3;
pub const OFPIT_APPLY_ACTIONS: u16 = 4;
pub const OFPIT_CLEAR_ACTIONS: u16 = 5;
pub const OFPIT_METER: u16 = 6;
pub const OFPIT_EXPERIMENTER: u16 = 0xffff;

// ofp_action_type
pub const OFPAT_OUTPUT: u16 = 0;
pub const OFPAT_PUSH_VLAN: u16 = 17;
pub const OFPAT_POP_VLAN: u16 = 18;
pub const OFPAT_GROUP: u16 = 22;
pub const OFPAT_SET_FIELD: u16 = 25;
pub const OFPAT_EXPERIMENTER: u16 = 0xffff;

// ofp_meter: meter ids above OFPM_MAX are reserved
pub const OFPM_MAX: u32 = 0xffff_0000;
pub const OFPM_SLOWPATH: u32 = 0xffff_fffd;
pub const OFPM_CONTROLLER: u32 = 0xffff_fffe;
pub const OFPM_ALL: u32 = 0xffff_ffff;

// ofp_meter_flags
pub const OFPMF_KBPS: u16 = 1 << 0;
pub const OFPMF_PKTPS: u16 = 1 << 1;
pub const OFPMF_BURST: u16 = 1 << 2;
pub const OFPMF_STATS: u16 = 1 << 3;

// ofp_meter_band_type
pub const OFPMBT_DROP: u16 = 1;
pub const OFPMBT_DSCP_REMARK: u16 = 2;
pub const OFPMBT_EXPERIMENTER: u16 = 0xffff;

// ofp_multipart_type
pub const OFPMP_DESC: u16 = 0;
pub const OFPMP_FLOW: u16 = 1;
pub const OFPMP_AGGREGATE: u16 = 2;
pub const OFPMP_TABLE: u16 = 3;
pub const OFPMP_PORT_STATS: u16 = 4;
pub const OFPMP_GROUP_DESC: u16 = 7;
pub const OFPMP_METER: u16 = 9;
pub const OFPMP_METER_CONFIG: u16 = 10;
pub const OFPMP_METER_FEATURES: u16 = 11;
pub const OFPMP_TABLE_FEATURES: u16 = 12;
pub const OFPMP_PORT_DESC: u16 = 13;
pub const OFPMP_EXPERIMENTER: u16 = 0xffff;

// ofp_multipart_request_flags and ofp_multipart_reply_flags
pub const OFPMPF_REQ_MORE: u16 = 1 << 0;
/// More replies to the same request follow, with the same xid.
pub const OFPMPF_REPLY_MORE: u16 = 1 << 0;

// ofp_port_reason (PORT_STATUS)
pub const OFPPR_ADD: u8 = 0;
pub const OFPPR_DELETE: u8 = 1;
pub const OFPPR_MODIFY: u8 = 2;

// ofp_port_config
pub const OFPPC_PORT_DOWN: u32 = 1 << 0;
pub const OFPPC_NO_RECV: u32 = 1 << 2;
pub const OFPPC_NO_FWD: u32 = 1 << 5;
pub const OFPPC_NO_PACKET_IN: u32 = 1 << 6;

// ofp_port_state
pub const OFPPS_LINK_DOWN: u32 = 1 << 0;
pub const OFPPS_BLOCKED: u32 = 1 << 1;
pub const OFPPS_LIVE: u32 = 1 << 2;

// ofp_packet_in_reason
pub const OFPR_NO_MATCH: u8 = 0;
pub const OFPR_ACTION: u8 = 1;
pub const OFPR_INVALID_TTL: u8 = 2;

// ofp_capabilities (FEATURES_REPLY)
pub const OFPC_FLOW_STATS: u32 = 1 << 0;
pub const OFPC_TABLE_STATS: u32 = 1 << 1;
pub const OFPC_PORT_STATS: u32 = 1 << 2;
pub const OFPC_GROUP_STATS: u32 = 1 << 3;
pub const OFPC_IP_REASM: u32 = 1 << 5;
pub const OFPC_QUEUE_STATS: u32 = 1 << 6;
pub const OFPC_PORT_BLOCKED: u32 = 1 << 8;

// ofp_error_type
pub const OFPET_HELLO_FAILED: u16 = 0;
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPET_BAD_ACTION: u16 = 2;
pub const OFPET_BAD_INSTRUCTION: u16 = 3;
pub const OFPET_BAD_MATCH: u16 = 4;
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
pub const OFPET_GROUP_MOD_FAILED: u16 = 6;
pub const OFPET_PORT_MOD_FAILED: u16 = 7;
pub const OFPET_TABLE_MOD_FAILED: u16 = 8;
pub const OFPET_QUEUE_OP_FAILED: u16 = 9;
pub const OFPET_SWITCH_CONFIG_FAILED: u16 = 10;
pub const OFPET_ROLE_REQUEST_FAILED: u16 = 11;
pub const OFPET_METER_MOD_FAILED: u16 = 12;
pub const OFPET_TABLE_FEATURES_FAILED: u16 = 13;
pub const OFPET_EXPERIMENTER: u16 = 0xffff;

// ofp_hello_failed_code
pub const OFPHFC_INCOMPATIBLE: u16 = 0;
pub const OFPHFC_EPERM: u16 = 1;

// ofp_bad_request_code: the ones a speaker answers with
pub const OFPBRC_BAD_VERSION: u16 = 0;
pub const OFPBRC_BAD_TYPE: u16 = 1;
pub const OFPBRC_BAD_MULTIPART: u16 = 2;
pub const OFPBRC_BAD_LEN: u16 = 6;

// ofp_flow_mod_failed_code
pub const OFPFMFC_UNKNOWN: u16 = 0;
pub const OFPFMFC_TABLE_FULL: u16 = 1;
pub const OFPFMFC_BAD_TABLE_ID: u16 = 2;
pub const OFPFMFC_OVERLAP: u16 = 3;
pub const OFPFMFC_EPERM: u16 = 4;
pub const OFPFMFC_BAD_TIMEOUT: u16 = 5;
pub const OFPFMFC_BAD_COMMAND: u16 = 6;
pub const OFPFMFC_BAD_FLAGS: u16 = 7;

// ofp_meter_mod_failed_code
pub const OFPMMFC_UNKNOWN: u16 = 0;
pub const OFPMMFC_METER_EXISTS: u16 = 1;
/// What Open vSwitch answers to a FLOW_MOD whose meter instruction names a missing meter.
pub const OFPMMFC_INVALID_METER: u16 = 2;
pub const OFPMMFC_UNKNOWN_METER: u16 = 3;
pub const OFPMMFC_BAD_COMMAND: u16 = 4;
pub const OFPMMFC_BAD_FLAGS: u16 = 5;
pub const OFPMMFC_BAD_RATE: u16 = 6;
pub const OFPMMFC_BAD_BURST: u16 = 7;
pub const OFPMMFC_BAD_BAND: u16 = 8;
pub const OFPMMFC_BAD_BAND_VALUE: u16 = 9;
pub const OFPMMFC_OUT_OF_METERS: u16 = 10;
pub const OFPMMFC_OUT_OF_BANDS: u16 = 11;
