//! The codec against the spec: hand-made golden bytes.

mod golden;
