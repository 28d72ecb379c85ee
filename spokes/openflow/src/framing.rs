//! Cutting a TCP stream into messages: the header's length says where the next one ends.
//!
//! Sans I/O: the caller reads from its socket and hands the bytes over. A length below the
//! header's or a version other than 1.3 means the stream cannot be trusted any further: the
//! error is fatal ([`DecodeError::is_fatal`]) and the speaker closes that switch's connection,
//! logging the error. A message that is whole but does not decode is consumed, and the error
//! concerns it alone.

use crate::error::DecodeError;
use crate::header::Header;
use crate::messages::{decode, Frame};

/// How many bytes the next message takes, once all of them are in `buf`; `None` while they
/// are not. Needs at most 65,535 bytes: the length field has 16 bits.
pub fn split_frame(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = Header::peek(buf) else {
        return Ok(None);
    };
    header.check()?;
    let length = usize::from(header.length);
    Ok((buf.len() >= length).then_some(length))
}

/// The bytes read from one connection that do not make a whole message yet. Holds what it was
/// given and not yet taken as frames: at most one incomplete message once drained.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Where the next message starts in `buf`.
    start: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one has arrived. A fatal error (see
    /// [`DecodeError::is_fatal`]) comes back on every call; after any other the message is
    /// consumed and the next call goes on with the following one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        let pending = &self.buf[self.start..];
        let Some(length) = split_frame(pending)? else {
            return Ok(None);
        };
        let frame = decode(&pending[..length]);
        // A HELLO's version is only judged once it is decoded: a fatal error stays.
        if !matches!(&frame, Err(error) if error.is_fatal()) {
            self.start += length;
        }
        frame.map(Some)
    }

    /// How many bytes wait to make a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Message;

    const BARRIER: [u8; 8] = [4, 20, 0, 8, 0, 0, 0, 1];
    const ECHO: [u8; 11] = [4, 2, 0, 11, 0, 0, 0, 2, b'h', b'e', b'y'];

    #[test]
    fn split_frame_waits_for_the_whole_message() {
        assert_eq!(split_frame(&ECHO[..3]), Ok(None));
        assert_eq!(split_frame(&ECHO[..10]), Ok(None));
        assert_eq!(split_frame(&ECHO), Ok(Some(11)));
        let mut two = ECHO.to_vec();
        two.extend_from_slice(&BARRIER);
        assert_eq!(split_frame(&two), Ok(Some(11)));
    }

    #[test]
    fn split_frame_refuses_a_zero_length_instead_of_looping() {
        let zero = [4, 20, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            split_frame(&zero),
            Err(DecodeError::BadMessageLength { length: 0 })
        );
        let of10 = [1, 14, 0, 8, 0, 0, 0, 1];
        assert_eq!(
            split_frame(&of10),
            Err(DecodeError::BadVersion { version: 1 })
        );
    }

    #[test]
    fn a_stream_fed_a_byte_at_a_time_gives_its_frames_in_order() {
        let mut stream = ECHO.to_vec();
        stream.extend_from_slice(&BARRIER);
        let mut reader = FrameReader::new();
        let mut frames = Vec::new();
        for byte in stream {
            reader.push(&[byte]);
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(
            frames,
            [
                Frame::new(2, Message::EchoRequest(b"hey".to_vec())),
                Frame::new(1, Message::BarrierRequest)
            ]
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn a_bad_message_is_skipped_but_a_broken_stream_stays_broken() {
        let bad_flow_mod = [4, 14, 0, 9, 0, 0, 0, 3, 0];
        let mut reader = FrameReader::new();
        reader.push(&bad_flow_mod);
        reader.push(&BARRIER);
        let error = reader.next_frame().unwrap_err();
        assert!(!error.is_fatal(), "{error}");
        assert_eq!(
            reader.next_frame(),
            Ok(Some(Frame::new(1, Message::BarrierRequest)))
        );

        let mut reader = FrameReader::new();
        reader.push(&[4, 2, 0, 4, 0, 0, 0, 4]);
        reader.push(&BARRIER);
        for _ in 0..2 {
            assert_eq!(
                reader.next_frame(),
                Err(DecodeError::BadMessageLength { length: 4 })
            );
        }

        let mut reader = FrameReader::new();
        reader.push(&[1, 0, 0, 8, 0, 0, 0, 5]);
        for _ in 0..2 {
            assert_eq!(
                reader.next_frame(),
                Err(DecodeError::BadVersion { version: 1 }),
                "an OpenFlow 1.0 HELLO"
            );
        }
    }
}
