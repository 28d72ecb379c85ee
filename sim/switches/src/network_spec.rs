//! `--network SPEC`: a generated shape (`grid:RxC`, `mesh:N`, ...) or a JSON file.

use std::path::{Path, PathBuf};

use hubspoke_fsm::network::{Network, NetworkError};

#[derive(Debug, thiserror::Error)]
pub enum NetworkSpecError {
    #[error(transparent)]
    Spec(NetworkError),
    #[error("cannot read network file {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network file {path:?}: {source}")]
    Invalid { path: PathBuf, source: NetworkError },
}

/// Builds the network a spec names: a generated shape, else the JSON file at that path.
pub fn load_network(spec: &str) -> Result<Network, NetworkSpecError> {
    match Network::generate(spec) {
        Ok(Some(network)) => Ok(network),
        Ok(None) => read_file(Path::new(spec)),
        // A file name may contain ':' too (`./nets/a:b.json`): an existing file wins.
        Err(NetworkError::UnknownSpec(_)) if Path::new(spec).is_file() => {
            read_file(Path::new(spec))
        }
        Err(error) => Err(NetworkSpecError::Spec(error)),
    }
}

fn read_file(path: &Path) -> Result<Network, NetworkSpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| NetworkSpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Network::from_json(&text).map_err(|source| NetworkSpecError::Invalid {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::SwitchId;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hubspoke-sim-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    #[test]
    fn generated_shapes_load() {
        let network = load_network("grid:2x2").expect("grid");
        assert_eq!(network.switches().count(), 4);
    }

    #[test]
    fn a_json_file_loads() {
        let json = r#"{"switches":[{"switch_id":"00:00:00:00:00:00:00:01","ports":4},{"switch_id":"00:00:00:00:00:00:00:02","ports":4}],
            "links":[{"src_switch":"00:00:00:00:00:00:00:01","src_port":1,"dst_switch":"00:00:00:00:00:00:00:02","dst_port":1,"capacity":1000}]}"#;
        let path = temp_file("net.json", json);
        let network = load_network(path.to_str().expect("utf-8 path")).expect("json network");
        assert_eq!(network.links().len(), 2);
        assert!(network.is_isl_port(SwitchId(2), 1));
        // a file whose name looks like a spec is still a file
        let odd = temp_file("odd:1.json", json);
        assert!(load_network(odd.to_str().expect("utf-8 path")).is_ok());
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let missing = load_network("/no/such/network.json").unwrap_err();
        assert!(matches!(missing, NetworkSpecError::Read { .. }));
        assert!(
            missing.to_string().contains("/no/such/network.json"),
            "{missing}"
        );
        let bad = temp_file("bad.json", "{not json");
        let invalid = load_network(bad.to_str().expect("utf-8 path")).unwrap_err();
        assert!(
            matches!(invalid, NetworkSpecError::Invalid { .. }),
            "{invalid}"
        );
        let unknown = load_network("star:3").unwrap_err();
        assert!(unknown.to_string().contains("grid:RxC"), "{unknown}");
        assert!(matches!(
            load_network("grid:0x1"),
            Err(NetworkSpecError::Spec(NetworkError::InvalidSpec { .. }))
        ));
    }
}
