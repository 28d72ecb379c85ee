//! Reading and writing big-endian wire structures.
//!
//! The reader never indexes past its slice: every read checks what is left and, when it is
//! short, says what it was reading. Lengths read from the input only ever shrink a reader
//! (`sub`, `tlv`), so nothing allocates more than the input holds, and an element's length
//! below its own header is an error, never a loop that does not advance.

use crate::error::{DecodeError, EncodeError};

/// A cursor over the bytes of one structure; `what` names it in errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` bytes, as a reader of their own named `what`.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let (head, tail) = self.buf.split_at_checked(n).ok_or(DecodeError::Truncated {
            what,
            needed: n,
            available: self.buf.len(),
        })?;
        self.buf = tail;
        Ok(Reader::new(head, what))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.sub(n, self.what).map(|sub| sub.buf)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.bytes(N)?);
        Ok(array)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array().map(|[byte]| byte)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Skips padding.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(drop)
    }

    /// Everything left: a trailing data field.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// The next 16-bit length at `offset` from here, without moving.
    pub(crate) fn peek_u16(&self, offset: usize) -> Result<u16, DecodeError> {
        let mut ahead = *self;
        ahead.skip(offset)?;
        ahead.u16()
    }

    /// The next element led by a 16-bit type and a 16-bit length that counts this 4-byte
    /// header (actions, instructions, meter bands, hello elements): its type, its length and a
    /// reader over what follows the header.
    pub(crate) fn tlv(
        &mut self,
        what: &'static str,
    ) -> Result<(u16, usize, Reader<'a>), DecodeError> {
        let mut head = Reader::new(self.buf, what);
        let kind = head.u16()?;
        let length = usize::from(head.u16()?);
        if length < 4 {
            return Err(DecodeError::BadLength {
                what,
                length,
                min: 4,
            });
        }
        let mut element = self.sub(length, what)?;
        element.skip(4)?;
        Ok((kind, length, element))
    }

    /// Nothing may be left.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                what: self.what,
                count,
            }),
        }
    }
}

/// Decodes elements until `r` is used up; each one takes at least a byte or fails.
pub(crate) fn decode_all<'a, T>(
    mut r: Reader<'a>,
    decode: impl Fn(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut items = Vec::new();
    while !r.is_empty() {
        items.push(decode(&mut r)?);
    }
    Ok(items)
}

/// A fixed-size element's length field must be its size.
pub(crate) fn expect_length(
    what: &'static str,
    length: usize,
    expected: usize,
) -> Result<(), DecodeError> {
    if length == expected {
        Ok(())
    } else {
        Err(DecodeError::WrongLength {
            what,
            length,
            expected,
        })
    }
}

/// Big-endian writes.
pub(crate) trait Put {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_zeros(&mut self, count: usize);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }

    fn put_zeros(&mut self, count: usize) {
        self.resize(self.len() + count, 0);
    }
}

pub(crate) fn round_up8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Writes into the 16-bit length field at `at` the number of bytes written since `start`.
pub(crate) fn patch_len(
    out: &mut [u8],
    at: usize,
    start: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    let length = out.len() - start;
    let value = u16::try_from(length).map_err(|_| EncodeError::TooLong {
        what,
        length,
        max: usize::from(u16::MAX),
    })?;
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// Writes an element led by its 16-bit type and its 16-bit length (counting the 4-byte
/// header and whatever `body` writes, padding included).
pub(crate) fn put_tlv(
    out: &mut Vec<u8>,
    kind: u16,
    what: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u16(kind);
    out.put_u16(0);
    body(out)?;
    patch_len(out, start + 2, start, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_names_the_structure_and_leaves_the_reader_as_it_was() {
        let mut r = Reader::new(&[1, 2, 3], "FLOW_MOD");
        assert_eq!(
            r.u32(),
            Err(DecodeError::Truncated {
                what: "FLOW_MOD",
                needed: 4,
                available: 3
            })
        );
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn an_element_shorter_than_its_header_is_an_error_not_a_loop() {
        let mut r = Reader::new(&[0, 1, 0, 0, 0, 0, 0, 0], "actions");
        assert_eq!(
            r.tlv("action").map(|(kind, length, _)| (kind, length)),
            Err(DecodeError::BadLength {
                what: "action",
                length: 0,
                min: 4
            })
        );
    }

    #[test]
    fn an_element_longer_than_what_is_left_is_truncated() {
        let mut r = Reader::new(&[0, 1, 0, 16, 0, 0, 0, 0], "actions");
        assert_eq!(
            r.tlv("action").map(|(kind, length, _)| (kind, length)),
            Err(DecodeError::Truncated {
                what: "action",
                needed: 16,
                available: 8
            })
        );
    }

    #[test]
    fn a_length_past_sixteen_bits_is_refused() {
        let mut out = vec![0; 4];
        out.put_zeros(70_000);
        assert_eq!(
            patch_len(&mut out, 2, 0, "message"),
            Err(EncodeError::TooLong {
                what: "message",
                length: 70_004,
                max: 65_535
            })
        );
    }
}
