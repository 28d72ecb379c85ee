//! Verify and dump ask the switch for flow statistics: every table, any output, filtered by
//! cookie only. The reply is read in [`crate::reply`].

use hubspoke_fsm::segments::{FlowSegment, FORWARD_COOKIE_FLAG, REVERSE_COOKIE_FLAG};
use hubspoke_openflow::consts::{OFPG_ANY, OFPP_ANY, OFPTT_ALL};
use hubspoke_openflow::{FlowStatsRequest, Match, MultipartRequest, MultipartRequestBody};

/// The entries with exactly the segment's cookie; the reply says which is at its match.
pub fn verify_request(segment: &FlowSegment) -> MultipartRequest {
    flow_stats(segment.cookie, u64::MAX)
}

/// The entries a dump query asks for (see [`FlowSegment::dump_query`]): those whose cookie id
/// is the query's, in either direction (every bit but the two direction flags must be equal),
/// or every entry for cookie 0, foreign ones included.
pub fn dump_request(query: &FlowSegment) -> MultipartRequest {
    match query.cookie {
        0 => flow_stats(0, 0),
        cookie_id => flow_stats(cookie_id, !(FORWARD_COOKIE_FLAG | REVERSE_COOKIE_FLAG)),
    }
}

fn flow_stats(cookie: u64, cookie_mask: u64) -> MultipartRequest {
    MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Flow(FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie,
            cookie_mask,
            matching: Match::default(),
        }),
    }
}
