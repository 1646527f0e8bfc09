//! PROXY protocol version 2 headers (haproxy's spec, section 2.2), sent by the
//! tunnel client to the local service of a TCP tunnel (`beam tcp
//! --proxy-protocol`) so it sees the visitor's real address.

use std::net::{IpAddr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A `PROXY` command header for a TCP connection from `src` to `dst`. When the
/// families differ, IPv4 is written as IPv4-mapped IPv6.
pub fn header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_mixed_headers_have_the_spec_layout() {
        let h = header(
            "192.0.2.7:51000".parse().unwrap(),
            "198.51.100.1:20001".parse().unwrap(),
        );
        assert_eq!(h.len(), 28);
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[192, 0, 2, 7]);
        assert_eq!(&h[24..26], &51000u16.to_be_bytes());
        let mixed = header(
            "[2001:db8::1]:1".parse().unwrap(),
            "10.0.0.1:2".parse().unwrap(),
        );
        assert_eq!(mixed.len(), 52);
        assert_eq!(&mixed[12..16], &[0x21, 0x21, 0, 36]);
    }
}
