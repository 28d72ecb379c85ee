//! Topology replay tests: each `tests/replay/NAME.input.jsonl` runs through a fresh topology
//! and the output must equal `NAME.golden.jsonl` (sorted per timestamp). A `# network: SPEC`
//! comment in the input picks the network, an optional `# settings: JSON` the timeouts and retries. `UPDATE_GOLDEN=1 cargo test --test replay`
//! rewrites the golden files; review their diff before committing.

use std::path::{Path, PathBuf};

use hubspoke_fsm::network::Network;
use hubspoke_topology::dataflow::Settings;
use hubspoke_topology::replay::{parse_input, replay, to_json_lines};

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay")
}

fn run_case(name: &str) {
    let input_path = case_dir().join(format!("{name}.input.jsonl"));
    let golden_path = case_dir().join(format!("{name}.golden.jsonl"));
    let text = std::fs::read_to_string(&input_path).expect("input log");
    let spec = text
        .lines()
        .find_map(|line| line.strip_prefix("# network: "))
        .expect("a '# network: SPEC' line");
    let network = Network::generate(spec.trim())
        .expect("valid spec")
        .expect("generated network");
    let settings = text
        .lines()
        .find_map(|line| line.strip_prefix("# settings: "))
        .map_or_else(Settings::default, |json| {
            serde_json::from_str(json).expect("valid settings")
        });
    let input = parse_input(&text).expect("valid input log");
    let output = to_json_lines(&replay(&input, settings, &network));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &output).expect("write golden");
        return;
    }
    let golden =
        std::fs::read_to_string(&golden_path).expect("golden log (UPDATE_GOLDEN=1 to create)");
    if output != golden {
        let first_difference = output
            .lines()
            .zip(golden.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(output.lines().count().min(golden.lines().count()));
        panic!(
            "{name}: output differs from the golden file at line {}\n  got:      {}\n  expected: {}",
            first_difference + 1,
            output.lines().nth(first_difference).unwrap_or("<end>"),
            golden.lines().nth(first_difference).unwrap_or("<end>"),
        );
    }
}

#[test]
fn create_happy() {
    run_case("create_happy");
}

#[test]
fn create_latency() {
    run_case("create_latency");
}

#[test]
fn create_max_latency_tier2() {
    run_case("create_max_latency_tier2");
}

#[test]
fn create_retry_dropped_response() {
    run_case("create_retry_dropped_response");
}

#[test]
fn create_switch_error_rollback() {
    run_case("create_switch_error_rollback");
}

#[test]
fn create_deadline_expiry() {
    run_case("create_deadline_expiry");
}

#[test]
fn delete() {
    run_case("delete");
}

#[test]
fn late_response_after_timeout() {
    run_case("late_response_after_timeout");
}

#[test]
fn create_avoids_down_link() {
    run_case("create_avoids_down_link");
}

#[test]
fn reroute_on_link_down() {
    run_case("reroute_on_link_down");
}

#[test]
fn no_path_down_then_link_up() {
    run_case("no_path_down_then_link_up");
}

#[test]
fn update_rollback() {
    run_case("update_rollback");
}

#[test]
fn flapping_link_then_one_batch() {
    run_case("flapping_link_then_one_batch");
}

#[test]
fn delete_owes_unconfirmed_removals() {
    run_case("delete_owes_unconfirmed_removals");
}

#[test]
fn priority_and_degraded_reroute() {
    run_case("priority_and_degraded_reroute");
}

#[test]
fn patch_flow() {
    run_case("patch_flow");
}

#[test]
fn ping_flow() {
    run_case("ping_flow");
}

#[test]
fn diverse_pair() {
    run_case("diverse_pair");
}

#[test]
fn create_protected() {
    run_case("create_protected");
}

#[test]
fn swap_on_link_down() {
    run_case("swap_on_link_down");
}

#[test]
fn manual_swap() {
    run_case("manual_swap");
}

#[test]
fn swap_endpoints() {
    run_case("swap_endpoints");
}

#[test]
fn swap_endpoints_abort() {
    run_case("swap_endpoints_abort");
}
