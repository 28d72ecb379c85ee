//! The 8-byte header every OpenFlow message starts with: version, type, length, xid.
//!
//! The header alone decides whether a stream can go on: its length splits the stream into
//! messages, and its version says whether the switch speaks 1.3. A HELLO may carry another
//! version, since it is how the two sides agree on one (see `handshake`).

use crate::consts::{OFPT_HELLO, OFP_HEADER_LEN, OFP_VERSION};
use crate::error::DecodeError;
use crate::wire::Put;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    /// The whole message's length, this header included.
    pub length: u16,
    pub xid: u32,
}

impl Header {
    /// The header at the start of `buf`, or `None` while fewer than 8 bytes have arrived.
    pub fn peek(buf: &[u8]) -> Option<Header> {
        let &[version, msg_type, l0, l1, x0, x1, x2, x3] = buf.first_chunk::<OFP_HEADER_LEN>()?;
        Some(Header {
            version,
            msg_type,
            length: u16::from_be_bytes([l0, l1]),
            xid: u32::from_be_bytes([x0, x1, x2, x3]),
        })
    }

    /// Whether the stream can go on with this message: its length covers at least the header,
    /// and it is OpenFlow 1.3 (or a HELLO, which negotiates). Both errors are fatal.
    pub fn check(&self) -> Result<(), DecodeError> {
        if usize::from(self.length) < OFP_HEADER_LEN {
            return Err(DecodeError::BadMessageLength {
                length: self.length,
            });
        }
        if self.version != OFP_VERSION && self.msg_type != OFPT_HELLO {
            return Err(DecodeError::BadVersion {
                version: self.version,
            });
        }
        Ok(())
    }

    /// Writes a 1.3 header with a length of 0, to be filled in once the body is written.
    pub(crate) fn put(out: &mut Vec<u8>, msg_type: u8, xid: u32) {
        out.put_u8(OFP_VERSION);
        out.put_u8(msg_type);
        out.put_u16(0);
        out.put_u32(xid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_read_once_eight_bytes_are_there() {
        let bytes = [4, 14, 0, 0x80, 0, 0, 0, 42, 0xff];
        assert_eq!(Header::peek(&bytes[..7]), None);
        assert_eq!(
            Header::peek(&bytes),
            Some(Header {
                version: 4,
                msg_type: 14,
                length: 128,
                xid: 42
            })
        );
    }

    #[test]
    fn a_length_below_the_header_or_another_version_ends_the_connection() {
        let short = Header::peek(&[4, 0, 0, 7, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            short.check(),
            Err(DecodeError::BadMessageLength { length: 7 })
        );
        let zero = Header::peek(&[4, 2, 0, 0, 0, 0, 0, 1]).unwrap();
        assert!(zero.check().unwrap_err().is_fatal());
        let of10 = Header::peek(&[1, 14, 0, 8, 0, 0, 0, 1]).unwrap();
        assert_eq!(of10.check(), Err(DecodeError::BadVersion { version: 1 }));
        let hello_of15 = Header::peek(&[6, 0, 0, 8, 0, 0, 0, 1]).unwrap();
        assert_eq!(hello_of15.check(), Ok(()), "a HELLO negotiates");
    }
}
