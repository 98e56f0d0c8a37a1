//! MariaDB's `UUID`, `INET4` and `INET6` columns. A row image in the binlog carries their stored
//! bytes (16, 4 and 16 of them, as for a `BINARY` column, its trailing zero bytes left out); SQL
//! gives their text. A view sees the text either way: these functions make, from the bytes, the
//! text MariaDB prints (checked against MariaDB 10.11 by `tests/values.rs`), and check and
//! normalise a text an application writes back.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Which of the three types a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeType {
    Uuid,
    Inet4,
    Inet6,
}

impl NativeType {
    /// The type of an `information_schema.COLUMNS.DATA_TYPE`, lower case.
    pub fn of_data_type(data_type: &str) -> Option<NativeType> {
        match data_type {
            "uuid" => Some(NativeType::Uuid),
            "inet4" => Some(NativeType::Inet4),
            "inet6" => Some(NativeType::Inet6),
            _ => None,
        }
    }

    /// Bytes of a stored value.
    pub fn width(self) -> usize {
        match self {
            NativeType::Inet4 => 4,
            NativeType::Uuid | NativeType::Inet6 => 16,
        }
    }

    /// The text MariaDB prints for the stored `bytes` (trailing zero bytes may be missing).
    pub fn text(self, bytes: &[u8]) -> Result<String, String> {
        let mut full = [0u8; 16];
        let width = self.width();
        if bytes.len() > width {
            return Err(format!(
                "{} bytes for a {self:?} value of {width}",
                bytes.len()
            ));
        }
        full[..bytes.len()].copy_from_slice(bytes);
        Ok(match self {
            NativeType::Uuid => uuid_text(&full),
            NativeType::Inet4 => Ipv4Addr::new(full[0], full[1], full[2], full[3]).to_string(),
            NativeType::Inet6 => inet6_text(&full),
        })
    }

    /// A text written back to such a column, checked, in the form MariaDB prints.
    pub fn normalise(self, text: &str) -> Result<String, String> {
        let bad = || format!("{text:?} is not {}", self.name());
        match self {
            NativeType::Uuid => uuid_bytes(text).map(|b| uuid_text(&b)).ok_or_else(bad),
            NativeType::Inet4 => text
                .parse::<Ipv4Addr>()
                .map(|a| a.to_string())
                .map_err(|_| bad()),
            NativeType::Inet6 => text
                .parse::<Ipv6Addr>()
                .map(|a| inet6_text(&a.octets()))
                .map_err(|_| bad()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            NativeType::Uuid => "a UUID",
            NativeType::Inet4 => "an INET4 address",
            NativeType::Inet6 => "an INET6 address",
        }
    }
}

/// `01234567-89ab-cdef-0123-456789abcdef`: MariaDB keeps a UUID's bytes in the order of its
/// text in the row (it compares them in another order, which the row does not show).
fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// 32 hex digits, a hyphen allowed between two bytes (not first, last or twice in a row; MariaDB
/// reads some of those too), and a UUID MariaDB stores: it refuses a version nibble of 8 or more
/// with a variant byte from 0x01 to 0x80 (`SELECT CAST(… AS UUID)`, every version and variant
/// nibble tried on 10.11).
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut digits = 0usize;
    let mut hyphen = false;
    for c in text.chars() {
        if c == '-' {
            if hyphen || digits == 0 || !digits.is_multiple_of(2) || digits == 32 {
                return None;
            }
            hyphen = true;
            continue;
        }
        let value = c.to_digit(16)? as u8;
        if digits == 32 {
            return None;
        }
        out[digits / 2] |= if digits.is_multiple_of(2) {
            value << 4
        } else {
            value
        };
        digits += 1;
        hyphen = false;
    }
    (digits == 32 && !hyphen && !refused_uuid(&out)).then_some(out)
}

fn refused_uuid(bytes: &[u8; 16]) -> bool {
    bytes[6] >= 0x80 && (0x01..=0x80).contains(&bytes[8])
}

/// An IPv6 address as MariaDB prints it: each group in hex without leading zeros, the first
/// longest run of zero groups as `::`, even a lone one (`1::1:0:1:0:1:0`, where RFC 5952 and
/// glibc's `inet_ntop` leave a lone zero group as `0`), and an IPv4-compatible (`::a.b.c.d`, the
/// first six groups zero and the seventh not) or IPv4-mapped (`::ffff:a.b.c.d`) address with
/// its last four bytes dotted. Rust's `Ipv6Addr` prints some of these otherwise.
fn inet6_text(bytes: &[u8; 16]) -> String {
    let groups: [u16; 8] =
        std::array::from_fn(|i| u16::from_be_bytes([bytes[2 * i], bytes[2 * i + 1]]));
    // The first longest run of zero groups.
    let (mut best, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best, best_len) = (start, i - start);
        }
        i += 1;
    }
    let dotted = |out: &mut String| {
        let _ = write!(
            out,
            "{}.{}.{}.{}",
            bytes[12], bytes[13], bytes[14], bytes[15]
        );
    };
    let mut out = String::with_capacity(39);
    if best == 0 && (best_len == 6 || (best_len == 5 && groups[5] == 0xffff)) {
        out.push_str(if best_len == 6 { "::" } else { "::ffff:" });
        dotted(&mut out);
        return out;
    }
    let mut i = 0;
    while i < 8 {
        if best_len > 0 && i == best {
            out.push_str("::");
            i += best_len;
            continue;
        }
        if !out.is_empty() && !out.ends_with(':') {
            out.push(':');
        }
        let _ = write!(out, "{:x}", groups[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    }

    /// Texts MariaDB 10.11 printed for these stored bytes (`SELECT col, HEX(col)`).
    #[test]
    fn texts_are_the_ones_mariadb_prints() {
        let cases = [
            (
                NativeType::Uuid,
                "0123456789AB1DEF8123456789ABCDEF",
                "01234567-89ab-1def-8123-456789abcdef",
            ),
            (
                NativeType::Uuid,
                "0123456789ABFDEF9123456789ABCDEF",
                "01234567-89ab-fdef-9123-456789abcdef",
            ),
            (NativeType::Inet4, "01020304", "1.2.3.4"),
            (NativeType::Inet4, "0A000001", "10.0.0.1"),
            (NativeType::Inet4, "", "0.0.0.0"),
            (
                NativeType::Inet6,
                "00000000000000000000000001020304",
                "::1.2.3.4",
            ),
            (
                NativeType::Inet6,
                "00000000000000000000000000000102",
                "::102",
            ),
            (
                NativeType::Inet6,
                "FE800000000000000001000000000002",
                "fe80::1:0:0:2",
            ),
            (
                NativeType::Inet6,
                "00000000000100000000000000000000",
                "0:0:1::",
            ),
            (NativeType::Inet6, "00000000000000000000000000000000", "::"),
            (
                NativeType::Inet6,
                "00010000000000020000000000030004",
                "1::2:0:0:3:4",
            ),
            // Printed by MariaDB 10.11.19 for `CAST(CAST('…' AS INET6) AS CHAR)`.
            (
                NativeType::Inet6,
                "00010000000100000001000000010000",
                "1::1:0:1:0:1:0",
            ),
            (
                NativeType::Inet6,
                "00010002000300040005000600070000",
                "1:2:3:4:5:6:7::",
            ),
            (
                NativeType::Inet6,
                "00000001000200030004000500060007",
                "::1:2:3:4:5:6:7",
            ),
            (
                NativeType::Inet6,
                "00000000000000000000000000010000",
                "::0.1.0.0",
            ),
            (
                NativeType::Inet6,
                "000000000000000000000000FFFF0001",
                "::255.255.0.1",
            ),
            (
                NativeType::Inet6,
                "00000000000000000001FFFF00010002",
                "::1:ffff:1:2",
            ),
            (
                NativeType::Inet6,
                "00000000000000000000FFFE00010002",
                "::fffe:1:2",
            ),
            (
                NativeType::Inet6,
                "00000000000000000000FFFF00000001",
                "::ffff:0.0.0.1",
            ),
            (
                NativeType::Inet6,
                "00000000000000000000000100000000",
                "::1:0:0",
            ),
            // The binlog leaves trailing zero bytes out.
            (NativeType::Inet6, "000000000001", "0:0:1::"),
        ];
        for (ty, stored, text) in cases {
            assert_eq!(ty.text(&hex(stored)).as_deref(), Ok(text), "{stored}");
        }
        assert!(NativeType::Inet4.text(&[1, 2, 3, 4, 5]).is_err());
    }

    #[test]
    fn written_back_texts_are_checked_and_normalised() {
        let uuid = NativeType::Uuid;
        let canonical = "01234567-89ab-1def-8123-456789abcdef";
        assert_eq!(
            uuid.normalise("0123456789AB1DEF8123456789ABCDEF")
                .as_deref(),
            Ok(canonical)
        );
        assert_eq!(uuid.normalise(canonical).as_deref(), Ok(canonical));
        assert!(uuid.normalise("01-23456789ab1def8123456789abcdef").is_ok());
        // Version 8 or more with a variant byte of 0x01 to 0x80: MariaDB refuses it.
        assert!(uuid
            .normalise("01234567-89ab-8def-0123-456789abcdef")
            .is_err());
        assert!(uuid
            .normalise("01234567-89ab-fdef-8023-456789abcdef")
            .is_err());
        assert!(uuid
            .normalise("01234567-89ab-8def-0023-456789abcdef")
            .is_ok());
        assert!(uuid
            .normalise("01234567-89ab-8def-8123-456789abcdef")
            .is_ok());
        assert!(uuid
            .normalise("01234567-89ab-7def-0123-456789abcdef")
            .is_ok());
        for bad in [
            "",
            "0123",
            "-0123456789ab1def8123456789abcdef",
            "0123456789ab1def8123456789abcdef-",
            "0-123456789ab1def8123456789abcdef",
            "01--23456789ab1def8123456789abcdef",
            "0123456789ab1def8123456789abcdef00",
            "x123456789ab1def8123456789abcdef",
        ] {
            assert!(uuid.normalise(bad).is_err(), "{bad}");
        }
        assert_eq!(
            NativeType::Inet4.normalise("10.0.0.1").as_deref(),
            Ok("10.0.0.1")
        );
        assert!(NativeType::Inet4.normalise("10.0.0").is_err());
        assert_eq!(
            NativeType::Inet6
                .normalise("0:0:0:0:0:0:102:304")
                .as_deref(),
            Ok("::1.2.3.4")
        );
        assert!(NativeType::Inet6.normalise("1.2.3.4").is_err());
    }

    proptest! {
        /// Every text made parses back (as `Ipv6Addr` reads text) to the bytes it was made of,
        /// and the groups it shows compressed are the first longest run of zeros.
        #[test]
        fn inet6_texts_read_back_to_their_bytes(bytes in prop::array::uniform16(prop_oneof![Just(0u8), any::<u8>()])) {
            let text = inet6_text(&bytes);
            let parsed: Ipv6Addr = text.parse().expect("an address");
            prop_assert_eq!(parsed.octets(), bytes);
            prop_assert!(text.matches("::").count() <= 1);
            prop_assert_eq!(NativeType::Inet6.normalise(&text), Ok(text.clone()));
        }

        #[test]
        fn uuid_texts_read_back_to_their_bytes(bytes in prop::array::uniform16(any::<u8>())) {
            let text = uuid_text(&bytes);
            prop_assert_eq!(uuid_bytes(&text), (!refused_uuid(&bytes)).then_some(bytes));
        }
    }
}
