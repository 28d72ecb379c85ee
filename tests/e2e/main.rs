//! End-to-end tests: real `hubspoke` processes (the embedded default, and the parts over a
//! real Kafka broker) driven over REST, as people run them. One test binary, so the helpers in
//! `support` are built once.

mod cluster;
mod compose;
mod crash;
mod diversity;
mod embedded;
mod exact;
mod kafka;
mod load;
mod openflow;
mod ovs;
mod ping;
mod support;
