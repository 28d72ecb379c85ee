//! A switch port (`ofp_port`, 64 bytes), as PORT_STATUS and the PORT_DESC multipart reply
//! describe it: its number, address, name, whether it is up, and its speeds.

use std::fmt;

use crate::error::DecodeError;
use crate::wire::{Put, Reader};

const PORT_LEN: usize = 64;
const NAME_LEN: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: [u8; 6],
    pub name: PortName,
    /// `OFPPC_*` bits: `OFPPC_PORT_DOWN` when it was set down administratively.
    pub config: u32,
    /// `OFPPS_*` bits: `OFPPS_LINK_DOWN` when there is no link.
    pub state: u32,
    /// `OFPPF_*` feature bits.
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// In kbps; Open vSwitch's dummy and patch ports report 0.
    pub curr_speed: u32,
    pub max_speed: u32,
}

/// A port's name as the switch sent it: up to 16 bytes, NUL-terminated when shorter. Kept as
/// bytes, so that a name that is not UTF-8 still encodes back the same; `Display` shows it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortName([u8; NAME_LEN]);

impl PortName {
    /// `name` cut to 15 bytes at a character boundary (the 16th is the terminating NUL).
    pub fn new(name: &str) -> PortName {
        let mut end = name.len().min(NAME_LEN - 1);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; NAME_LEN];
        bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        PortName(bytes)
    }

    /// The name's bytes, without the NUL terminator.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        &self.0[..end]
    }

    /// What follows the first NUL is dropped: names that print the same compare equal.
    fn from_wire(wire: [u8; NAME_LEN]) -> PortName {
        let mut bytes = [0; NAME_LEN];
        let name = PortName(wire);
        let name = name.as_bytes();
        bytes[..name.len()].copy_from_slice(name);
        PortName(bytes)
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Port {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Port, DecodeError> {
        let mut r = r.sub(PORT_LEN, "port")?;
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = r.array()?;
        r.skip(2)?;
        Ok(Port {
            port_no,
            hw_addr,
            name: PortName::from_wire(r.array()?),
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
            curr_speed: r.u32()?,
            max_speed: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.port_no);
        out.put_zeros(4);
        out.extend_from_slice(&self.hw_addr);
        out.put_zeros(2);
        out.extend_from_slice(&self.name.0);
        for value in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            out.put_u32(value);
        }
    }
}

/// PORT_STATUS: a port was added (`OFPPR_ADD`), removed (`OFPPR_DELETE`) or changed
/// (`OFPPR_MODIFY`, e.g. its link went down).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortStatus {
    pub reason: u8,
    pub desc: Port,
}

impl PortStatus {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<PortStatus, DecodeError> {
        let reason = r.u8()?;
        r.skip(7)?;
        Ok(PortStatus {
            reason,
            desc: Port::decode(r)?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.reason);
        out.put_zeros(7);
        self.desc.encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_cut_to_fifteen_bytes_at_a_character_boundary() {
        assert_eq!(PortName::new("eth0").as_bytes(), b"eth0");
        assert_eq!(
            PortName::new("a-very-long-port-name").as_bytes(),
            b"a-very-long-por"
        );
        assert_eq!(PortName::new("ports-é-é-é-é").to_string(), "ports-é-é-é-");
    }

    #[test]
    fn a_name_of_sixteen_bytes_or_with_bytes_after_its_nul_reads_back_as_sent() {
        assert_eq!(
            PortName::from_wire(*b"sixteen-bytes-ok").as_bytes(),
            b"sixteen-bytes-ok"
        );
        let mut wire = *b"br0\0garbage\0\0\0\0\0";
        wire[15] = 0xff;
        assert_eq!(PortName::from_wire(wire), PortName::new("br0"));
    }
}
