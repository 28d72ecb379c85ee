//! OXM, the type-length-value fields of a match and of a set_field action: a 32-bit header
//! (`class:16 field:7 hasmask:1 length:8`), then the value and, when masked, a mask as long.
//!
//! The fields hubspoke matches on or sets are typed; any other is kept whole as [`RawOxm`],
//! so that a switch's dump decodes and encodes back to the same bytes.

use crate::consts::{
    OFPVID_NONE, OFPVID_PRESENT, OFPXMC_OPENFLOW_BASIC, OFPXMT_OFB_ETH_DST, OFPXMT_OFB_ETH_SRC,
    OFPXMT_OFB_ETH_TYPE, OFPXMT_OFB_IN_PORT, OFPXMT_OFB_VLAN_VID,
};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Put, Reader};

/// The 13 bits of a vlan_vid field: the 12-bit id and [`OFPVID_PRESENT`].
const VLAN_VID_BITS: u16 = 0x1fff;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Oxm {
    /// The port the packet came in on.
    InPort(u32),
    EthDst {
        addr: [u8; 6],
        mask: Option<[u8; 6]>,
    },
    EthSrc {
        addr: [u8; 6],
        mask: Option<[u8; 6]>,
    },
    EthType(u16),
    /// The outer VLAN id as on the wire: [`OFPVID_PRESENT`] with the 12-bit id for a tagged
    /// packet, [`OFPVID_NONE`] for an untagged one. [`Oxm::vlan`], [`Oxm::no_vlan`] and
    /// [`Oxm::any_vlan`] build the usual ones.
    VlanVid {
        value: u16,
        mask: Option<u16>,
    },
    /// A field this crate does not type, kept as it came.
    Raw(RawOxm),
}

/// An OXM field as it is on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawOxm {
    pub class: u16,
    /// 7 bits.
    pub field: u8,
    pub has_mask: bool,
    /// The value, then the mask when `has_mask` (for the experimenter class, the experimenter
    /// id first).
    pub payload: Vec<u8>,
}

impl Oxm {
    /// Packets tagged with VLAN `vid` (its low 12 bits), or the tag a set_field writes.
    pub fn vlan(vid: u16) -> Oxm {
        Oxm::VlanVid {
            value: OFPVID_PRESENT | (vid & 0x0fff),
            mask: None,
        }
    }

    /// Packets without a VLAN tag.
    pub fn no_vlan() -> Oxm {
        Oxm::VlanVid {
            value: OFPVID_NONE,
            mask: None,
        }
    }

    /// Packets with any VLAN tag.
    pub fn any_vlan() -> Oxm {
        Oxm::VlanVid {
            value: OFPVID_PRESENT,
            mask: Some(OFPVID_PRESENT),
        }
    }

    /// The class and field: what a match is ordered by once normalised.
    pub fn key(&self) -> (u16, u8) {
        let basic = |field| (OFPXMC_OPENFLOW_BASIC, field);
        match self {
            Oxm::InPort(_) => basic(OFPXMT_OFB_IN_PORT),
            Oxm::EthDst { .. } => basic(OFPXMT_OFB_ETH_DST),
            Oxm::EthSrc { .. } => basic(OFPXMT_OFB_ETH_SRC),
            Oxm::EthType(_) => basic(OFPXMT_OFB_ETH_TYPE),
            Oxm::VlanVid { .. } => basic(OFPXMT_OFB_VLAN_VID),
            Oxm::Raw(raw) => (raw.class, raw.field),
        }
    }

    /// The field as a switch would report it: a value with its masked-out bits cleared, a
    /// mask that keeps every bit dropped (an exact match), and `None` for a mask that keeps
    /// none (the field matches anything).
    pub(crate) fn normalized(&self) -> Option<Oxm> {
        match *self {
            Oxm::EthDst {
                addr,
                mask: Some(mask),
            } => normalized_eth(addr, mask).map(|(addr, mask)| Oxm::EthDst { addr, mask }),
            Oxm::EthSrc {
                addr,
                mask: Some(mask),
            } => normalized_eth(addr, mask).map(|(addr, mask)| Oxm::EthSrc { addr, mask }),
            Oxm::VlanVid { value, mask } => {
                let mask = mask.unwrap_or(VLAN_VID_BITS) & VLAN_VID_BITS;
                let value = value & mask;
                match mask {
                    0 => None,
                    VLAN_VID_BITS => Some(Oxm::VlanVid { value, mask: None }),
                    mask => Some(Oxm::VlanVid {
                        value,
                        mask: Some(mask),
                    }),
                }
            }
            _ => Some(self.clone()),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Oxm, DecodeError> {
        let header = r.u32()?;
        let class = (header >> 16) as u16;
        let field = ((header >> 9) & 0x7f) as u8;
        let has_mask = header & 0x100 != 0;
        let length = (header & 0xff) as u8;
        let mut payload = r.sub(usize::from(length), "OXM field")?;
        if class != OFPXMC_OPENFLOW_BASIC || !is_typed(field) {
            return Ok(Oxm::Raw(RawOxm {
                class,
                field,
                has_mask,
                payload: payload.rest().to_vec(),
            }));
        }
        let p = &mut payload;
        Ok(match (field, has_mask, length) {
            (OFPXMT_OFB_IN_PORT, false, 4) => Oxm::InPort(p.u32()?),
            (OFPXMT_OFB_ETH_DST, false, 6) => Oxm::EthDst {
                addr: p.array()?,
                mask: None,
            },
            (OFPXMT_OFB_ETH_DST, true, 12) => Oxm::EthDst {
                addr: p.array()?,
                mask: Some(p.array()?),
            },
            (OFPXMT_OFB_ETH_SRC, false, 6) => Oxm::EthSrc {
                addr: p.array()?,
                mask: None,
            },
            (OFPXMT_OFB_ETH_SRC, true, 12) => Oxm::EthSrc {
                addr: p.array()?,
                mask: Some(p.array()?),
            },
            (OFPXMT_OFB_ETH_TYPE, false, 2) => Oxm::EthType(p.u16()?),
            (OFPXMT_OFB_VLAN_VID, false, 2) => Oxm::VlanVid {
                value: p.u16()?,
                mask: None,
            },
            (OFPXMT_OFB_VLAN_VID, true, 4) => Oxm::VlanVid {
                value: p.u16()?,
                mask: Some(p.u16()?),
            },
            _ => {
                return Err(DecodeError::BadOxm {
                    field,
                    has_mask,
                    length,
                })
            }
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (class, field) = self.key();
        match self {
            Oxm::InPort(port) => {
                put_header(out, class, field, false, 4);
                out.put_u32(*port);
            }
            Oxm::EthDst { addr, mask } | Oxm::EthSrc { addr, mask } => {
                put_header(
                    out,
                    class,
                    field,
                    mask.is_some(),
                    if mask.is_some() { 12 } else { 6 },
                );
                out.extend_from_slice(addr);
                if let Some(mask) = mask {
                    out.extend_from_slice(mask);
                }
            }
            Oxm::EthType(ethertype) => {
                put_header(out, class, field, false, 2);
                out.put_u16(*ethertype);
            }
            Oxm::VlanVid { value, mask } => {
                put_header(
                    out,
                    class,
                    field,
                    mask.is_some(),
                    if mask.is_some() { 4 } else { 2 },
                );
                out.put_u16(*value);
                if let Some(mask) = mask {
                    out.put_u16(*mask);
                }
            }
            Oxm::Raw(raw) => {
                if raw.field > 0x7f {
                    return Err(EncodeError::OutOfRange {
                        what: "OXM field number",
                        value: u32::from(raw.field),
                        max: 0x7f,
                    });
                }
                let length = u8::try_from(raw.payload.len()).map_err(|_| EncodeError::TooLong {
                    what: "OXM field",
                    length: raw.payload.len(),
                    max: usize::from(u8::MAX),
                })?;
                put_header(out, raw.class, raw.field, raw.has_mask, length);
                out.extend_from_slice(&raw.payload);
            }
        }
        Ok(())
    }
}

fn is_typed(field: u8) -> bool {
    matches!(
        field,
        OFPXMT_OFB_IN_PORT
            | OFPXMT_OFB_ETH_DST
            | OFPXMT_OFB_ETH_SRC
            | OFPXMT_OFB_ETH_TYPE
            | OFPXMT_OFB_VLAN_VID
    )
}

fn put_header(out: &mut Vec<u8>, class: u16, field: u8, has_mask: bool, length: u8) {
    out.put_u32(
        (u32::from(class) << 16)
            | (u32::from(field) << 9)
            | (u32::from(has_mask) << 8)
            | u32::from(length),
    );
}

/// An Ethernet address and its mask, normalised like [`Oxm::normalized`].
fn normalized_eth(addr: [u8; 6], mask: [u8; 6]) -> Option<([u8; 6], Option<[u8; 6]>)> {
    match mask {
        [0, 0, 0, 0, 0, 0] => None,
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => Some((addr, None)),
        mask => Some((std::array::from_fn(|i| addr[i] & mask[i]), Some(mask))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(oxm: &Oxm) -> Oxm {
        let mut out = Vec::new();
        oxm.encode(&mut out).unwrap();
        let mut r = Reader::new(&out, "test");
        let decoded = Oxm::decode(&mut r).unwrap();
        r.finish().unwrap();
        decoded
    }

    #[test]
    fn vlan_vid_is_field_6_with_the_present_bit() {
        let mut out = Vec::new();
        Oxm::vlan(100).encode(&mut out).unwrap();
        assert_eq!(out, [0x80, 0x00, 0x0c, 0x02, 0x10, 0x64]);
        out.clear();
        Oxm::any_vlan().encode(&mut out).unwrap();
        assert_eq!(out, [0x80, 0x00, 0x0d, 0x04, 0x10, 0x00, 0x10, 0x00]);
    }

    #[test]
    fn a_field_this_crate_does_not_type_is_kept_whole() {
        // ipv4_src 10.0.0.0/255.0.0.0
        let raw = Oxm::Raw(RawOxm {
            class: OFPXMC_OPENFLOW_BASIC,
            field: 11,
            has_mask: true,
            payload: vec![10, 0, 0, 0, 255, 0, 0, 0],
        });
        assert_eq!(round_trip(&raw), raw);
    }

    #[test]
    fn a_typed_field_with_the_wrong_length_is_refused() {
        // in_port with 2 bytes
        let bytes = [0x80, 0x00, 0x00, 0x02, 0x00, 0x01];
        assert_eq!(
            Oxm::decode(&mut Reader::new(&bytes, "test")),
            Err(DecodeError::BadOxm {
                field: 0,
                has_mask: false,
                length: 2
            })
        );
        // a masked eth_type
        let bytes = [0x80, 0x00, 0x0b, 0x04, 0x08, 0x00, 0xff, 0xff];
        assert!(Oxm::decode(&mut Reader::new(&bytes, "test")).is_err());
    }

    #[test]
    fn normalising_clears_masked_out_bits_and_drops_full_and_empty_masks() {
        let masked = |value, mask| Oxm::VlanVid {
            value,
            mask: Some(mask),
        };
        assert_eq!(masked(0, 0x1fff).normalized(), Some(Oxm::no_vlan()));
        assert_eq!(masked(0x1064, 0xffff).normalized(), Some(Oxm::vlan(100)));
        assert_eq!(masked(0x1064, 0).normalized(), None);
        assert_eq!(masked(0x1064, 0x1000).normalized(), Some(Oxm::any_vlan()));
        let eth = |addr, mask| Oxm::EthDst { addr, mask };
        let addr = [1, 2, 3, 4, 5, 6];
        assert_eq!(
            eth(addr, Some([0xff; 6])).normalized(),
            Some(eth(addr, None))
        );
        assert_eq!(eth(addr, Some([0; 6])).normalized(), None);
        assert_eq!(
            eth(addr, Some([0xff, 0, 0, 0, 0, 0])).normalized(),
            Some(eth([1, 0, 0, 0, 0, 0], Some([0xff, 0, 0, 0, 0, 0])))
        );
    }
}
