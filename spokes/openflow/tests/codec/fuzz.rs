//! Random and mutated bytes through `decode`, `split_frame` and a `FrameReader`: nothing
//! panics, and every answer is consistent (a frame that decodes encodes to bytes that decode
//! to it again; a split length lies within the buffer; only header errors are fatal; a reader
//! always moves on). And random valid frames round-trip, alone and as a stream.

use hubspoke_openflow::consts::*;
use hubspoke_openflow::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::round_trip::samples;
use super::strategies::{any_frame, any_match};

const CASES: u32 = 512;

/// Whatever `bytes` are, the codec answers without panicking, and consistently.
fn check(bytes: &[u8]) {
    match split_frame(bytes) {
        Ok(Some(length)) => assert!((OFP_HEADER_LEN..=bytes.len()).contains(&length)),
        Ok(None) => assert!(
            bytes.len() < OFP_HEADER_LEN
                || usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) > bytes.len()
        ),
        Err(error) => assert!(error.is_fatal(), "a header error is fatal: {error}"),
    }

    if let Ok(frame) = decode(bytes) {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(
            decode(&again),
            Ok(frame),
            "decode → encode → decode changed the frame; input {bytes:02x?}"
        );
    }

    let mut reader = FrameReader::new();
    reader.push(bytes);
    loop {
        let before = reader.buffered();
        match reader.next_frame() {
            Ok(None) => break,
            Err(error) if error.is_fatal() => {
                assert_eq!(reader.buffered(), before, "a broken stream is not consumed");
                break;
            }
            Ok(Some(_)) | Err(_) => assert!(
                reader.buffered() + OFP_HEADER_LEN <= before,
                "a message takes at least a header"
            ),
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(Index),
    /// XOR a byte with a non-zero value.
    Flip(Index, u8),
    /// Overwrite the 16 bits at an even offset, where most length fields are.
    SetU16(Index, u16),
    /// Add to the 16 bits at an even offset: a length just off.
    Nudge(Index, i8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            any::<Index>(),
            prop_oneof![0u16..24, Just(0xffff), any::<u16>()]
        )
            .prop_map(|(i, v)| Mutation::SetU16(i, v)),
        (any::<Index>(), -16i8..=16).prop_map(|(i, d)| Mutation::Nudge(i, d)),
        (any::<Index>(), vec(any::<u8>(), 1..9)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..9).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    let even = |i: &Index| i.index(len) & !1;
    match mutation {
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
        Mutation::SetU16(i, v) if even(i) + 2 <= len => {
            bytes[even(i)..even(i) + 2].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Nudge(i, d) if even(i) + 2 <= len => {
            let at = even(i);
            let v = u16::from_be_bytes([bytes[at], bytes[at + 1]]).wrapping_add_signed((*d).into());
            bytes[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Insert(i, extra) => {
            let at = i.index(len);
            bytes.splice(at..at, extra.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::SetU16(..) | Mutation::Nudge(..) => {}
    }
}

/// Makes the header's length the bytes' length again, so that a mutation inside the body
/// reaches the body's decoder instead of stopping at the header.
fn fix_length(bytes: &mut [u8]) {
    let length = u16::try_from(bytes.len());
    if let (Some(field), Ok(length)) = (bytes.get_mut(2..4), length) {
        field.copy_from_slice(&length.to_be_bytes());
    }
}

/// A valid encoding to mutate: a sample of every kind, or a random frame.
fn any_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::sample::select(samples()), any_frame(),]
        .prop_map(|frame| encode(&frame).expect("a valid frame encodes"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    /// Random bodies behind a well-formed 1.3 header of every type, and multipart bodies of
    /// the two kinds this crate types.
    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        msg_type in prop_oneof![0u8..30, any::<u8>()],
        xid in any::<u32>(),
        lead in prop_oneof![
            Just(Vec::new()),
            Just(vec![0, 1, 0, 0, 0, 0, 0, 0]),
            Just(vec![0, 13, 0, 0, 0, 0, 0, 0]),
        ],
        body in vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![OFP_VERSION, msg_type, 0, 0];
        bytes.extend_from_slice(&xid.to_be_bytes());
        bytes.extend(lead);
        bytes.extend(body);
        fix_length(&mut bytes);
        check(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        mut bytes in any_encoding(),
        mutations in vec(any_mutation(), 1..4),
        keep_length_right in any::<bool>(),
    ) {
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        if keep_length_right {
            fix_length(&mut bytes);
        }
        check(&bytes);
    }

    #[test]
    fn random_frames_round_trip(frame in any_frame()) {
        let bytes = encode(&frame).expect("a valid frame encodes");
        prop_assert_eq!(split_frame(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(decode(&bytes), Ok(frame));
    }

    #[test]
    fn a_stream_of_random_frames_in_random_chunks_reads_back(
        frames in vec(any_frame(), 0..6),
        chunk in 1usize..100,
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            encode_into(frame, &mut stream).expect("a valid frame encodes");
        }
        let mut reader = FrameReader::new();
        let mut read = Vec::new();
        for piece in stream.chunks(chunk) {
            reader.push(piece);
            while let Some(frame) = reader.next_frame().expect("a valid stream") {
                read.push(frame);
            }
        }
        prop_assert_eq!(read, frames);
        prop_assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn a_normalised_match_stays_so_and_survives_the_wire(matching in any_match()) {
        let normalized = matching.normalized();
        prop_assert_eq!(normalized.normalized(), normalized.clone());
        let frame = Frame::new(1, Message::FlowMod(FlowMod {
            matching: normalized,
            ..FlowMod::default()
        }));
        let bytes = encode(&frame).expect("a valid frame encodes");
        prop_assert_eq!(decode(&bytes), Ok(frame));
    }
}
