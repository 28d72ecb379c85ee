//! The speaker's I/O against scripted fake switches, no Open vSwitch: each test starts a
//! speaker on a free port of 127.0.0.1 with the in-process bus around it, connects fake
//! switches over TCP (`support::FakeSwitch`, speaking OpenFlow 1.3 with the codec), sends
//! commands on `sb.commands` and judges what reaches the switches, `sb.responses` and
//! `sb.events`.

mod commands;
mod connections;
mod discovery;
mod support;
