//! The handshake: HELLO, which agrees on a version, and FEATURES_REPLY, which says which switch
//! this is.
//!
//! A HELLO's header carries the highest version its sender speaks; it may add elements, among
//! them a bitmap of every version it speaks. This crate speaks 1.3 only and sends a plain HELLO
//! (version 0x04, no elements), so the connection speaks 1.3 when the switch's HELLO is 1.3
//! (its elements are then ignored), or newer with no bitmap (both sides take the lower version),
//! or newer with 1.3 in its bitmap. Anything else is [`DecodeError::BadVersion`]: the switch
//! cannot speak 1.3.

use crate::consts::{OFPHET_VERSIONBITMAP, OFP_VERSION};
use crate::error::DecodeError;
use crate::wire::{round_up8, Put, Reader};

/// Whether a switch whose HELLO has this version and body speaks 1.3.
pub(crate) fn negotiate(version: u8, body: &[u8]) -> Result<(), DecodeError> {
    let speaks_1_3 = match version {
        OFP_VERSION => true,
        newer if newer > OFP_VERSION => match version_bitmap(body)? {
            Some(bitmap) => bitmap & (1 << OFP_VERSION) != 0,
            None => true,
        },
        _ => false,
    };
    if speaks_1_3 {
        Ok(())
    } else {
        Err(DecodeError::BadVersion { version })
    }
}

/// The first 32 bits (versions 0 to 31) of the HELLO's version bitmap, if it has one.
fn version_bitmap(body: &[u8]) -> Result<Option<u32>, DecodeError> {
    let mut r = Reader::new(body, "HELLO");
    while !r.is_empty() {
        let (element_type, length, mut element) = r.tlv("HELLO element")?;
        // An element's length leaves out its padding to 8 bytes.
        r.skip((round_up8(length) - length).min(r.remaining()))?;
        if element_type == OFPHET_VERSIONBITMAP {
            return Ok(Some(element.u32()?));
        }
    }
    Ok(None)
}

/// FEATURES_REPLY: who the switch is and what it has. Its ports come from the PORT_DESC
/// multipart reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SwitchFeatures {
    /// The switch's id: the low 48 bits are usually a MAC address.
    pub datapath_id: u64,
    /// How many packets it can buffer for PACKET_IN (0 for Open vSwitch).
    pub n_buffers: u32,
    pub n_tables: u8,
    /// 0 for the main connection.
    pub auxiliary_id: u8,
    /// `OFPC_*` bits.
    pub capabilities: u32,
}

impl SwitchFeatures {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<SwitchFeatures, DecodeError> {
        let datapath_id = r.u64()?;
        let n_buffers = r.u32()?;
        let n_tables = r.u8()?;
        let auxiliary_id = r.u8()?;
        r.skip(2)?;
        let capabilities = r.u32()?;
        // reserved
        r.skip(4)?;
        Ok(SwitchFeatures {
            datapath_id,
            n_buffers,
            n_tables,
            auxiliary_id,
            capabilities,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.datapath_id);
        out.put_u32(self.n_buffers);
        out.put_u8(self.n_tables);
        out.put_u8(self.auxiliary_id);
        out.put_zeros(2);
        out.put_u32(self.capabilities);
        out.put_zeros(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version bitmap element: type 1, length 8, the bitmap.
    fn bitmap(bits: u32) -> Vec<u8> {
        let mut body = vec![0, 1, 0, 8];
        body.extend_from_slice(&bits.to_be_bytes());
        body
    }

    #[test]
    fn a_1_3_hello_is_accepted_whatever_its_elements() {
        assert_eq!(negotiate(4, &[]), Ok(()));
        assert_eq!(negotiate(4, &bitmap(1 << 4)), Ok(()));
        assert_eq!(negotiate(4, &[0xde, 0xad]), Ok(()));
    }

    #[test]
    fn a_newer_hello_is_accepted_when_it_speaks_1_3_too() {
        // OpenFlow 1.5 (0x06) with no bitmap: both take 1.3.
        assert_eq!(negotiate(6, &[]), Ok(()));
        // 1.3 and 1.5, with an unknown element before the bitmap (length 5, padded to 8).
        let mut body = vec![0, 9, 0, 5, 0xaa, 0, 0, 0];
        body.extend(bitmap((1 << 4) | (1 << 6)));
        assert_eq!(negotiate(6, &body), Ok(()));
        // 1.4 and 1.5 only.
        assert_eq!(
            negotiate(6, &bitmap((1 << 5) | (1 << 6))),
            Err(DecodeError::BadVersion { version: 6 })
        );
    }

    #[test]
    fn an_older_hello_is_refused() {
        assert_eq!(
            negotiate(1, &[]),
            Err(DecodeError::BadVersion { version: 1 })
        );
        assert_eq!(
            negotiate(3, &bitmap(1 << 4)),
            Err(DecodeError::BadVersion { version: 3 })
        );
    }

    #[test]
    fn a_broken_element_in_a_newer_hello_is_an_error() {
        assert!(matches!(
            negotiate(5, &[0, 1, 0, 2]),
            Err(DecodeError::BadLength { length: 2, .. })
        ));
        assert!(matches!(
            negotiate(5, &[0, 1, 0, 8, 0]),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
