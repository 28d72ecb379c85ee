//! Data that crosses timely processes. Timely serializes exchanged data with bincode, which
//! cannot read serde's internally tagged (`"type": …`) and flattened forms that the bus
//! messages use for people. `Json<T>` carries such a value as JSON bytes when, and only when,
//! it leaves the process; between workers of one process it moves as it is.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Error as _, SeqAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = serde_json::to_vec(&self.0).map_err(S::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(JsonVisitor(PhantomData))
    }
}

struct JsonVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for JsonVisitor<T> {
    type Value = Json<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("JSON bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        serde_json::from_slice(bytes).map(Json).map_err(E::custom)
    }

    fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Self::Value, E> {
        self.visit_bytes(&bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(A::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubspoke_fsm::{Envelope, NbRequest, SbOutcome, SbResponse, SwitchId};

    #[test]
    fn bus_messages_cross_bincode_only_wrapped() {
        let request = Envelope::new(
            "c",
            "f",
            1,
            NbRequest::DeleteFlow {
                flow_id: "f".into(),
            },
        );
        let bytes = bincode::serialize(&request).unwrap();
        assert!(
            bincode::deserialize::<Envelope<NbRequest>>(&bytes).is_err(),
            "the reason Json exists"
        );

        let wrapped = Json(request);
        let bytes = bincode::serialize(&wrapped).unwrap();
        assert_eq!(
            bincode::deserialize::<Json<Envelope<NbRequest>>>(&bytes).unwrap(),
            wrapped
        );

        let response = Json(Envelope::new(
            "c",
            "f",
            2,
            SbResponse {
                command_id: "x".into(),
                attempt: 1,
                switch_id: SwitchId(1),
                outcome: SbOutcome::Success,
            },
        ));
        let bytes = bincode::serialize(&response).unwrap();
        assert_eq!(
            bincode::deserialize::<Json<Envelope<SbResponse>>>(&bytes).unwrap(),
            response
        );
    }
}
