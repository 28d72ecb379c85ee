//! Switch ids as OpenKilda writes them: eight colon-separated hex bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A switch's datapath id, shown as `00:00:00:00:00:00:00:01`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwitchId(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid switch id {0:?}: expected eight hex bytes like 00:00:00:00:00:00:00:01")]
pub struct InvalidSwitchId(pub String);

impl fmt::Display for SwitchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.to_be_bytes();
        for (i, byte) in bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for SwitchId {
    type Err = InvalidSwitchId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidSwitchId(text.to_string());
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() != 8 {
            return Err(invalid());
        }
        let mut value = 0u64;
        for part in parts {
            // `from_str_radix` alone would take "+1".
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
            value = (value << 8) | u64::from(byte);
        }
        Ok(SwitchId(value))
    }
}

impl Serialize for SwitchId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SwitchId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_is_not_a_hex_digit() {
        assert!("00:00:00:00:00:00:00:+1".parse::<SwitchId>().is_err());
        assert!("00:00:00:00:00:00:00:-1".parse::<SwitchId>().is_err());
    }

    #[test]
    fn displays_and_parses_openkilda_form() {
        let id = SwitchId(0x0102);
        assert_eq!(id.to_string(), "00:00:00:00:00:00:01:02");
        assert_eq!("00:00:00:00:00:00:01:02".parse(), Ok(id));
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "1",
            "00:00:00:00:00:00:01",
            "00:00:00:00:00:00:01:zz",
            "000:00:00:00:00:00:01:02",
        ] {
            assert!(bad.parse::<SwitchId>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn serde_round_trip_uses_the_text_form() {
        let json = serde_json::to_string(&SwitchId(9)).unwrap();
        assert_eq!(json, "\"00:00:00:00:00:00:00:09\"");
        assert_eq!(
            serde_json::from_str::<SwitchId>(&json).unwrap(),
            SwitchId(9)
        );
    }
}
