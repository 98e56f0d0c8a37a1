//! Text in the charset of its column, decoded as the server converts it to utf8mb4 (as SQL reads
//! return it), so that a row makes the same item from the binlog and from a snapshot.
//!
//! The binlog names a column's charset by one of its collation ids; `charset_of` knows the ids
//! that MariaDB 10.11 lists for the charsets decoded here (MySQL gives these charsets the same
//! ids). Every other id is read as UTF-8 with invalid sequences replaced by U+FFFD: utf8mb3,
//! utf8mb4 and ascii, and also the charsets not decoded here (dec8, cp850, hp8, swe7, armscii8,
//! keybcs2, macce, cp852, geostd8, MySQL's gb18030) and ids this table does not know.
//!
//! The legacy charsets use the WHATWG decoders of `encoding_rs` and a list of fixes: the codes
//! that MySQL's tables map otherwise or not at all, found by storing every code in a column of
//! the charset and reading it back with SQL (`tests/charsets.rs` does so again). MySQL's latin1
//! is cp1252 with its five undefined bytes mapped to the C1 controls U+0081, U+008D, U+008F,
//! U+0090 and U+009D, exactly as WHATWG's windows-1252 does. A code MySQL does not map reads as
//! '?', as the server converts it. The tables are MariaDB 10.11's; MySQL's are taken to be the
//! same.

use encoding_rs::{
    Encoding, BIG5, EUC_JP, EUC_KR, GBK, IBM866, ISO_8859_13, ISO_8859_2, ISO_8859_7, ISO_8859_8,
    KOI8_R, KOI8_U, MACINTOSH, SHIFT_JIS, WINDOWS_1250, WINDOWS_1251, WINDOWS_1252, WINDOWS_1254,
    WINDOWS_1256, WINDOWS_1257, WINDOWS_874,
};

/// How the bytes of a charset become text.
#[derive(Clone, Copy)]
enum Charset {
    /// UTF-8, lossy (also every charset not known here).
    Utf8,
    Legacy(Legacy),
    /// UCS-2, big-endian: one code unit per character, no surrogates.
    Ucs2,
    /// UTF-16: utf16 is big-endian, utf16le little-endian.
    Utf16 {
        big_endian: bool,
    },
    /// UTF-32, big-endian.
    Utf32,
}

/// A charset of `encoding_rs`, corrected to MySQL's table.
#[derive(Clone, Copy)]
struct Legacy {
    encoding: &'static Encoding,
    /// The length of the character that starts with this (non-ASCII) byte.
    width: fn(u8) -> usize,
    /// Sorted by code.
    fixes: &'static [Fix],
}

/// Codes (a character's bytes, big-endian) that MySQL maps otherwise: the first code, its
/// character in MySQL, and how many consecutive codes map to consecutive characters; with
/// '?', how many consecutive codes MySQL does not map.
type Fix = (u32, char, u16);

pub(super) fn decode(bytes: &[u8], collation: u16) -> String {
    let charset = match collation {
        // The ids of UTF-8 (nearly every column) from a table made when compiling, as the
        // match below compiles to a chain of comparisons (about 90 instructions for
        // utf8mb4_general_ci, callgrind, `benches/cpu.rs`).
        id if is_utf8(id) => Charset::Utf8,
        id => charset_of(id),
    };
    match charset {
        // Valid text (nearly always) through the standard library's word-at-a-time check; the
        // lossy decoder, which walks it character by character, only for bytes that are not.
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        },
        Charset::Legacy(legacy) => legacy.decode(bytes),
        Charset::Ucs2 => bytes
            .chunks(2)
            .map(|unit| match unit {
                [high, low] => char::from_u32(u32::from(u16::from_be_bytes([*high, *low]))),
                _ => None,
            })
            .map(|c| c.unwrap_or('?'))
            .collect(),
        Charset::Utf16 { big_endian } => {
            let units = bytes.chunks(2).map(|unit| match unit {
                [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
                [a, b] => u16::from_le_bytes([*a, *b]),
                // An odd last byte: not a character.
                _ => 0xDC00,
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or('?'))
                .collect()
        }
        Charset::Utf32 => bytes
            .chunks(4)
            .map(|unit| {
                <[u8; 4]>::try_from(unit)
                    .ok()
                    .and_then(|unit| char::from_u32(u32::from_be_bytes(unit)))
                    .unwrap_or('?')
            })
            .collect(),
    }
}

/// The charset of a collation id, as `information_schema.COLLATION_CHARACTER_SET_APPLICABILITY`
/// lists them (a few ids are MariaDB's only: the nopad collations from 1024, and from 2048
/// the uca1400 ones of the Unicode charsets).
const fn charset_of(collation: u16) -> Charset {
    const fn legacy(
        encoding: &'static Encoding,
        width: fn(u8) -> usize,
        fixes: &'static [Fix],
    ) -> Charset {
        Charset::Legacy(Legacy {
            encoding,
            width,
            fixes,
        })
    }
    match collation {
        5 | 8 | 15 | 31 | 47..=49 | 94 | 1032 | 1071 => legacy(WINDOWS_1252, one, &[]),
        2 | 9 | 21 | 27 | 77 | 1033 | 1101 => legacy(ISO_8859_2, one, &[]),
        26 | 34 | 44 | 66 | 99 | 1050 | 1090 => legacy(WINDOWS_1250, one, CP1250_FIXES),
        14 | 23 | 50..=52 | 1074 | 1075 => legacy(WINDOWS_1251, one, CP1251_FIXES),
        57 | 67 | 1081 | 1091 => legacy(WINDOWS_1256, one, CP1256_FIXES),
        29 | 58 | 59 | 1082 | 1083 => legacy(WINDOWS_1257, one, CP1257_FIXES),
        7 | 74 | 1031 | 1098 => legacy(KOI8_R, one, &[]),
        22 | 75 | 1046 | 1099 => legacy(KOI8_U, one, KOI8U_FIXES),
        25 | 70 | 1049 | 1094 => legacy(ISO_8859_7, one, GREEK_FIXES),
        16 | 71 | 1040 | 1095 => legacy(ISO_8859_8, one, HEBREW_FIXES),
        20 | 41 | 42 | 79 | 1065 | 1103 => legacy(ISO_8859_13, one, &[]),
        // latin5 is ISO 8859-9; WHATWG reads that label as windows-1254.
        30 | 78 | 1054 | 1102 => legacy(WINDOWS_1254, one, LATIN5_FIXES),
        36 | 68 | 1060 | 1092 => legacy(IBM866, one, CP866_FIXES),
        39 | 53 | 1063 | 1077 => legacy(MACINTOSH, one, &[]),
        // tis620 is TIS-620; WHATWG reads that label as windows-874.
        18 | 89 | 1042 | 1113 => legacy(WINDOWS_874, one, TIS620_FIXES),
        28 | 87 | 1052 | 1111 => legacy(GBK, two, GBK_FIXES),
        24 | 86 | 1048 | 1110 => legacy(GBK, two, GB2312_FIXES),
        1 | 84 | 1025 | 1108 => legacy(BIG5, two, BIG5_FIXES),
        19 | 85 | 1043 | 1109 => legacy(EUC_KR, two, &[]),
        13 | 88 | 1037 | 1112 => legacy(SHIFT_JIS, shift_jis, SJIS_FIXES),
        95 | 96 | 1119 | 1120 => legacy(SHIFT_JIS, shift_jis, &[]),
        12 | 91 | 1036 | 1115 => legacy(EUC_JP, euc_jp, UJIS_FIXES),
        97 | 98 | 1121 | 1122 => legacy(EUC_JP, euc_jp, EUCJPMS_FIXES),
        35 | 90 | 128..=151 | 159 | 640..=642 | 1059 | 1114 => Charset::Ucs2,
        1152 | 1174 | 2560..=2727 | 2744..=2759 => Charset::Ucs2,
        54 | 55 | 101..=124 | 672..=674 | 1078 | 1079 => Charset::Utf16 { big_endian: true },
        1125 | 1147 | 2816..=2983 | 3000..=3015 => Charset::Utf16 { big_endian: true },
        56 | 62 | 1080 | 1086 => Charset::Utf16 { big_endian: false },
        60 | 61 | 160..=183 | 736..=738 | 1084 | 1085 | 1184 | 1206 => Charset::Utf32,
        3072..=3239 | 3256..=3271 => Charset::Utf32,
        _ => Charset::Utf8,
    }
}

/// Whether `charset_of(collation)` is UTF-8, for the ids below 4096 (every id MariaDB and
/// MySQL have); a higher one is looked up.
fn is_utf8(collation: u16) -> bool {
    /// Bit `id % 64` of word `id / 64`: `charset_of(id)` is UTF-8.
    static UTF8: [u64; 64] = {
        let mut words = [0; 64];
        let mut id = 0;
        while id < 4096 {
            if matches!(charset_of(id as u16), Charset::Utf8) {
                words[id / 64] |= 1 << (id % 64);
            }
            id += 1;
        }
        words
    };
    match UTF8.get(usize::from(collation / 64)) {
        Some(word) => word & (1 << (collation % 64)) != 0,
        None => matches!(charset_of(collation), Charset::Utf8),
    }
}

fn one(_: u8) -> usize {
    1
}

fn two(lead: u8) -> usize {
    if (0x81..=0xFE).contains(&lead) {
        2
    } else {
        1
    }
}

fn shift_jis(lead: u8) -> usize {
    if matches!(lead, 0x81..=0x9F | 0xE0..=0xFC) {
        2
    } else {
        1
    }
}

fn euc_jp(lead: u8) -> usize {
    match lead {
        0x8F => 3,
        0x8E | 0xA1..=0xFE => 2,
        _ => 1,
    }
}

impl Legacy {
    fn decode(&self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        if self.fixes.is_empty() {
            self.push_run(bytes, &mut out);
            return out;
        }
        let (mut start, mut i) = (0, 0);
        while i < bytes.len() {
            let len = self.char_len(&bytes[i..]);
            if let Some(fixed) = self.fix(&bytes[i..i + len]) {
                self.push_run(&bytes[start..i], &mut out);
                out.push(fixed);
                start = i + len;
            }
            i += len;
        }
        self.push_run(&bytes[start..], &mut out);
        out
    }

    /// The length of the character at the start of `bytes` (cut at their end).
    fn char_len(&self, bytes: &[u8]) -> usize {
        match bytes.first() {
            Some(&lead) if lead >= 0x80 => (self.width)(lead).min(bytes.len()),
            _ => 1,
        }
    }

    /// Appends whole characters; one that is malformed or unmapped becomes '?'.
    fn push_run(&self, run: &[u8], out: &mut String) {
        let decode = |bytes| {
            self.encoding
                .decode_without_bom_handling_and_without_replacement(bytes)
        };
        if let Some(text) = decode(run) {
            out.push_str(&text);
            return;
        }
        let mut i = 0;
        while i < run.len() {
            let len = self.char_len(&run[i..]);
            match decode(&run[i..i + len]) {
                Some(text) => out.push_str(&text),
                None => out.push('?'),
            }
            i += len;
        }
    }

    fn fix(&self, code: &[u8]) -> Option<char> {
        if code.first().is_none_or(|&lead| lead < 0x80) {
            return None;
        }
        let code = code.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let at = self
            .fixes
            .partition_point(|fix| fix.0 <= code)
            .checked_sub(1)?;
        let (first, to, count) = self.fixes[at];
        let offset = code - first;
        if offset >= u32::from(count) {
            None
        } else if to == '?' {
            Some('?')
        } else {
            char::from_u32(u32::from(to) + offset)
        }
    }
}

// The codes where MySQL's tables (as MariaDB 10.11 converts them) differ from WHATWG's,
// found by storing every code in a column of the charset and reading it back with SQL; '?'
// marks a range of codes that MySQL does not map (WHATWG does).
#[rustfmt::skip]
const CP1250_FIXES: &[Fix] = &[
    (0x81, '?', 1), (0x83, '?', 1), (0x88, '?', 1),
    (0x90, '?', 1), (0x98, '?', 1),
];
#[rustfmt::skip]
const CP1251_FIXES: &[Fix] = &[
    (0x98, '?', 1),
];
#[rustfmt::skip]
const CP1256_FIXES: &[Fix] = &[
    (0x8A, '?', 1), (0x8F, '?', 1), (0x98, '?', 1),
    (0x9A, '?', 1), (0x9F, '?', 1), (0xAA, '?', 1),
    (0xC0, '?', 1), (0xFF, '?', 1),
];
#[rustfmt::skip]
const CP1257_FIXES: &[Fix] = &[
    (0x81, '?', 1), (0x83, '?', 1), (0x88, '?', 1),
    (0x8A, '?', 1), (0x8C, '?', 1), (0x90, '?', 1),
    (0x98, '?', 1), (0x9A, '?', 1), (0x9C, '?', 1),
    (0x9F, '?', 1),
];
#[rustfmt::skip]
const KOI8U_FIXES: &[Fix] = &[
    (0x95, '\u{2022}', 1), (0xAE, '\u{255d}', 1), (0xBE, '\u{256c}', 1),
];
#[rustfmt::skip]
const GREEK_FIXES: &[Fix] = &[
    (0xA1, '\u{2bd}', 1), (0xA2, '\u{2bc}', 1), (0xA4, '?', 1),
    (0xA5, '?', 1), (0xAA, '?', 1),
];
#[rustfmt::skip]
const HEBREW_FIXES: &[Fix] = &[
    (0xAF, '\u{203e}', 1),
];
#[rustfmt::skip]
const LATIN5_FIXES: &[Fix] = &[
    (0x80, '\u{80}', 1), (0x82, '\u{82}', 11), (0x91, '\u{91}', 12),
    (0x9F, '\u{9f}', 1),
];
#[rustfmt::skip]
const CP866_FIXES: &[Fix] = &[
    (0xFC, '\u{207f}', 1), (0xFD, '\u{b2}', 1),
];
#[rustfmt::skip]
const TIS620_FIXES: &[Fix] = &[
    (0x80, '\u{80}', 1), (0x85, '\u{85}', 1), (0x91, '\u{91}', 7),
    (0xA0, '\u{fffd}', 1), (0xDB, '\u{fffd}', 1), (0xDC, '\u{fffd}', 1),
    (0xDD, '\u{fffd}', 1), (0xDE, '\u{fffd}', 1), (0xFC, '\u{fffd}', 1),
    (0xFD, '\u{fffd}', 1), (0xFE, '\u{fffd}', 1), (0xFF, '\u{fffd}', 1),
];
#[rustfmt::skip]
const GBK_FIXES: &[Fix] = &[
    (0xA140, '?', 97), (0xA240, '?', 97), (0xA2AB, '?', 6),
    (0xA2E3, '?', 2), (0xA2EF, '?', 2), (0xA2FD, '?', 164),
    (0xA440, '?', 97), (0xA4F4, '?', 173), (0xA5F7, '?', 170),
    (0xA6B9, '?', 8), (0xA6D9, '?', 7), (0xA6EC, '?', 2),
    (0xA6F3, '?', 1), (0xA6F6, '?', 171), (0xA7C2, '?', 15),
    (0xA7F2, '?', 13), (0xA896, '?', 11), (0xA8BC, '?', 1),
    (0xA8BF, '?', 1), (0xA8C1, '?', 4), (0xA8EA, '?', 21),
    (0xA958, '?', 1), (0xA95B, '?', 1), (0xA95D, '?', 3),
    (0xA989, '?', 13), (0xA997, '?', 13), (0xA9F0, '?', 15),
    (0xAAA1, '?', 94), (0xABA1, '?', 94), (0xACA1, '?', 94),
    (0xADA1, '?', 94), (0xAEA1, '?', 94), (0xAFA1, '?', 94),
    (0xD7FA, '?', 5), (0xF8A1, '?', 94), (0xF9A1, '?', 94),
    (0xFAA1, '?', 94), (0xFBA1, '?', 94), (0xFCA1, '?', 94),
    (0xFDA1, '?', 94), (0xFE50, '?', 175),
];
#[rustfmt::skip]
const GB2312_FIXES: &[Fix] = &[
    (0xA1A4, '\u{30fb}', 1), (0xA1AA, '\u{2015}', 1), (0xA2A1, '?', 16),
    (0xA2E3, '?', 2), (0xA2EF, '?', 2), (0xA2FD, '?', 2),
    (0xA4F4, '?', 11), (0xA5F7, '?', 8), (0xA6B9, '?', 8),
    (0xA6D9, '?', 38), (0xA7C2, '?', 15), (0xA7F2, '?', 13),
    (0xA8BB, '?', 10), (0xA8EA, '?', 186), (0xA9F0, '?', 1551),
    (0xD7FA, '?', 5),
];
#[rustfmt::skip]
const BIG5_FIXES: &[Fix] = &[
    (0xA145, '\u{2022}', 1), (0xA14E, '\u{ff64}', 1), (0xA15A, '\u{fffd}', 1),
    (0xA1C2, '\u{203e}', 1), (0xA1C3, '\u{fffd}', 1), (0xA1C5, '\u{fffd}', 1),
    (0xA1E3, '\u{223c}', 1), (0xA1F2, '\u{2641}', 1), (0xA1F3, '\u{2609}', 1),
    (0xA1FE, '\u{fffd}', 1), (0xA240, '\u{fffd}', 1), (0xA241, '\u{ff0f}', 1),
    (0xA242, '\u{ff3c}', 1), (0xA244, '\u{a5}', 1), (0xA246, '\u{a2}', 2),
    (0xA2CC, '\u{fffd}', 1), (0xA2CE, '\u{fffd}', 1), (0xA3C0, '?', 34),
    (0xC6A1, '\u{30fe}', 1), (0xC6A2, '\u{309d}', 2), (0xC6A4, '\u{3005}', 1),
    (0xC6A5, '\u{3041}', 83), (0xC6F8, '\u{30a1}', 7), (0xC740, '\u{30a8}', 63),
    (0xC7A1, '\u{30e7}', 16), (0xC7B1, '\u{414}', 2), (0xC7B3, '\u{401}', 1),
    (0xC7B4, '\u{416}', 7), (0xC7BB, '\u{423}', 19), (0xC7CE, '\u{451}', 1),
    (0xC7CF, '\u{436}', 26), (0xC7E9, '\u{2460}', 10), (0xC7F3, '\u{2474}', 10),
    (0xC7FD, '?', 258), (0xF9DD, '?', 34),
];
#[rustfmt::skip]
const SJIS_FIXES: &[Fix] = &[
    (0x815F, '\u{5c}', 1), (0x8160, '\u{301c}', 1), (0x8161, '\u{2016}', 1),
    (0x817C, '\u{2212}', 1), (0x8191, '\u{a2}', 2), (0x81CA, '\u{ac}', 1),
    (0x8740, '?', 93), (0xED40, '?', 3852),
];
#[rustfmt::skip]
const UJIS_FIXES: &[Fix] = &[
    (0xA1C0, '\u{5c}', 1), (0xA1C1, '\u{301c}', 1), (0xA1C2, '\u{2016}', 1),
    (0xA1DD, '\u{2212}', 1), (0xA1F1, '\u{a2}', 2), (0xA2CC, '\u{ac}', 1),
    (0xADA1, '?', 92), (0xF5A1, '\u{e000}', 94), (0xF6A1, '\u{e05e}', 94),
    (0xF7A1, '\u{e0bc}', 94), (0xF8A1, '\u{e11a}', 94), (0xF9A1, '\u{e178}', 94),
    (0xFAA1, '\u{e1d6}', 94), (0xFBA1, '\u{e234}', 94), (0xFCA1, '\u{e292}', 94),
    (0xFDA1, '\u{e2f0}', 94), (0xFEA1, '\u{e34e}', 94), (0x8FA2B7, '\u{7e}', 1),
    (0x8FF5A1, '\u{e3ac}', 94), (0x8FF6A1, '\u{e40a}', 94), (0x8FF7A1, '\u{e468}', 94),
    (0x8FF8A1, '\u{e4c6}', 94), (0x8FF9A1, '\u{e524}', 94), (0x8FFAA1, '\u{e582}', 94),
    (0x8FFBA1, '\u{e5e0}', 94), (0x8FFCA1, '\u{e63e}', 94), (0x8FFDA1, '\u{e69c}', 94),
    (0x8FFEA1, '\u{e6fa}', 94),
];
#[rustfmt::skip]
const EUCJPMS_FIXES: &[Fix] = &[
    (0xF5A1, '\u{e000}', 94), (0xF6A1, '\u{e05e}', 94), (0xF7A1, '\u{e0bc}', 94),
    (0xF8A1, '\u{e11a}', 94), (0xF9A1, '\u{e178}', 94), (0xFAA1, '\u{e1d6}', 94),
    (0xFBA1, '\u{e234}', 94), (0xFCA1, '\u{e292}', 94), (0xFDA1, '\u{e2f0}', 94),
    (0xFEA1, '\u{e34e}', 94), (0x8FA2C3, '\u{ffe4}', 1), (0x8FF3F3, '\u{2170}', 10),
    (0x8FF3FD, '\u{2160}', 2), (0x8FF4A1, '\u{2162}', 8), (0x8FF4A9, '\u{ff07}', 1),
    (0x8FF4AA, '\u{ff02}', 1), (0x8FF4AB, '\u{3231}', 1), (0x8FF4AC, '\u{2116}', 1),
    (0x8FF4AD, '\u{2121}', 1), (0x8FF4AE, '\u{70bb}', 1), (0x8FF4AF, '\u{4efc}', 1),
    (0x8FF4B0, '\u{50f4}', 1), (0x8FF4B1, '\u{51ec}', 1), (0x8FF4B2, '\u{5307}', 1),
    (0x8FF4B3, '\u{5324}', 1), (0x8FF4B4, '\u{fa0e}', 1), (0x8FF4B5, '\u{548a}', 1),
    (0x8FF4B6, '\u{5759}', 1), (0x8FF4B7, '\u{fa0f}', 2), (0x8FF4B9, '\u{589e}', 1),
    (0x8FF4BA, '\u{5bec}', 1), (0x8FF4BB, '\u{5cf5}', 1), (0x8FF4BC, '\u{5d53}', 1),
    (0x8FF4BD, '\u{fa11}', 1), (0x8FF4BE, '\u{5fb7}', 1), (0x8FF4BF, '\u{6085}', 1),
    (0x8FF4C0, '\u{6120}', 1), (0x8FF4C1, '\u{654e}', 1), (0x8FF4C2, '\u{663b}', 1),
    (0x8FF4C3, '\u{6665}', 1), (0x8FF4C4, '\u{fa12}', 1), (0x8FF4C5, '\u{f929}', 1),
    (0x8FF4C6, '\u{6801}', 1), (0x8FF4C7, '\u{fa13}', 2), (0x8FF4C9, '\u{6a6b}', 1),
    (0x8FF4CA, '\u{6ae2}', 1), (0x8FF4CB, '\u{6df8}', 1), (0x8FF4CC, '\u{6df2}', 1),
    (0x8FF4CD, '\u{7028}', 1), (0x8FF4CE, '\u{fa15}', 2), (0x8FF4D0, '\u{7501}', 1),
    (0x8FF4D1, '\u{7682}', 1), (0x8FF4D2, '\u{769e}', 1), (0x8FF4D3, '\u{fa17}', 1),
    (0x8FF4D4, '\u{7930}', 1), (0x8FF4D5, '\u{fa18}', 4), (0x8FF4D9, '\u{7ae7}', 1),
    (0x8FF4DA, '\u{fa1c}', 2), (0x8FF4DC, '\u{7da0}', 1), (0x8FF4DD, '\u{7dd6}', 1),
    (0x8FF4DE, '\u{fa1e}', 1), (0x8FF4DF, '\u{8362}', 1), (0x8FF4E0, '\u{fa1f}', 1),
    (0x8FF4E1, '\u{85b0}', 1), (0x8FF4E2, '\u{fa20}', 2), (0x8FF4E4, '\u{8807}', 1),
    (0x8FF4E5, '\u{fa22}', 1), (0x8FF4E6, '\u{8b7f}', 1), (0x8FF4E7, '\u{8cf4}', 1),
    (0x8FF4E8, '\u{8d76}', 1), (0x8FF4E9, '\u{fa23}', 3), (0x8FF4EC, '\u{90de}', 1),
    (0x8FF4ED, '\u{fa26}', 1), (0x8FF4EE, '\u{9115}', 1), (0x8FF4EF, '\u{fa27}', 2),
    (0x8FF4F1, '\u{9592}', 1), (0x8FF4F2, '\u{f9dc}', 1), (0x8FF4F3, '\u{fa29}', 1),
    (0x8FF4F4, '\u{973b}', 1), (0x8FF4F5, '\u{974d}', 1), (0x8FF4F6, '\u{9751}', 1),
    (0x8FF4F7, '\u{fa2a}', 3), (0x8FF4FA, '\u{999e}', 1), (0x8FF4FB, '\u{9ad9}', 1),
    (0x8FF4FC, '\u{9b72}', 1), (0x8FF4FD, '\u{fa2d}', 1), (0x8FF4FE, '\u{9ed1}', 1),
    (0x8FF5A1, '\u{e3ac}', 94), (0x8FF6A1, '\u{e40a}', 94), (0x8FF7A1, '\u{e468}', 94),
    (0x8FF8A1, '\u{e4c6}', 94), (0x8FF9A1, '\u{e524}', 94), (0x8FFAA1, '\u{e582}', 94),
    (0x8FFBA1, '\u{e5e0}', 94), (0x8FFCA1, '\u{e63e}', 94), (0x8FFDA1, '\u{e69c}', 94),
    (0x8FFEA1, '\u{e6fa}', 94),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// UTF-8 text (collation 45, utf8mb4_general_ci) reads as itself; bytes that are not UTF-8
    /// read as the lossy decoder reads them, a replacement character for each bad sequence.
    #[test]
    fn utf8_text_reads_as_itself_and_bad_bytes_as_replacements() {
        assert_eq!(decode(b"plain", 45), "plain");
        assert_eq!(
            decode("caf\u{e9} \u{1F600}".as_bytes(), 45),
            "caf\u{e9} \u{1F600}"
        );
        assert_eq!(decode(b"", 45), "");
        assert_eq!(decode(b"a\xffb\xc3", 45), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn the_table_of_utf8_ids_is_the_match() {
        for collation in 0..=u16::MAX {
            assert_eq!(
                is_utf8(collation),
                matches!(charset_of(collation), Charset::Utf8),
                "collation {collation}"
            );
        }
    }

    #[test]
    fn fixes_are_sorted_and_disjoint() {
        for collation in 0..=u16::MAX {
            if let Charset::Legacy(legacy) = charset_of(collation) {
                for pair in legacy.fixes.windows(2) {
                    assert!(
                        pair[0].0 + u32::from(pair[0].2) <= pair[1].0,
                        "collation {collation}: {:X?}",
                        pair
                    );
                }
            }
        }
    }
}
