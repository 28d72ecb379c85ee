//! Docker is not available where the tests run, so this checks what can be checked without
//! it: docker-compose.yml parses, has the broker and the three parts, builds them from the
//! repository's Dockerfile, points them at the broker's advertised listener, and every command
//! it runs is a real `hubspoke` subcommand whose flags the binary accepts, and each part's health
//! check asks its own `/ready`.

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml");
    YamlLoader::load_from_str(&text)
        .expect("valid YAML")
        .remove(0)
}

/// A service's `command`, or a health check's `test`: a list of strings.
fn command(service: &Yaml) -> Vec<String> {
    let list = if service["command"].is_badvalue() {
        service
    } else {
        &service["command"]
    };
    list.as_vec()
        .expect("a list")
        .iter()
        .map(|part| {
            part.as_str()
                .expect("command parts are strings")
                .to_string()
        })
        .collect()
}

#[test]
fn compose_runs_the_three_parts_against_the_broker() {
    let compose = compose();
    let services = &compose["services"];
    let advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .expect("advertised listener");
    let broker = advertised.trim_start_matches("PLAINTEXT://");
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let dockerfile = std::fs::read_to_string(dockerfile).expect("Dockerfile");
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["hubspoke"]"#),
        "the image runs hubspoke"
    );

    for part in ["topology", "nb", "sb"] {
        let service = &services[part];
        assert_eq!(
            service["build"].as_str(),
            Some("."),
            "{part} is built from the repository"
        );
        let args = command(service);
        assert_eq!(
            args.first().map(String::as_str),
            Some(part),
            "{part} runs `hubspoke {part}`"
        );
        let kafka = args
            .iter()
            .position(|a| a == "--kafka")
            .map(|i| args[i + 1].as_str());
        assert_eq!(
            kafka,
            Some(broker),
            "{part} talks to the broker's advertised listener"
        );

        let listen = args.iter().position(|a| a == "--listen").map(|i| {
            args[i + 1]
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string()
        });
        let check = command(&service["healthcheck"]["test"]);
        assert_eq!(
            check.last().cloned(),
            listen.map(|port| format!("http://127.0.0.1:{port}/ready")),
            "{part}'s health check asks its own /ready"
        );

        // clap checks every flag before it reaches --help, so this fails on any bad flag or value.
        let output = Command::new(env!("CARGO_BIN_EXE_hubspoke"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("run hubspoke");
        assert!(
            output.status.success(),
            "`hubspoke {}` is not a valid command: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_flag_check_catches_bad_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_hubspoke"))
        .args(["topology", "--kafka", "k:9092", "--wrokers", "2", "--help"])
        .output()
        .expect("run hubspoke");
    assert!(
        !output.status.success(),
        "a misspelt flag must fail the check"
    );
}
