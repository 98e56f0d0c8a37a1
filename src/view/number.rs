//! Number attributes made in one look at their value, where the general check would look again:
//! every DECIMAL and floating-point column of a view goes through these for every row
//! (callgrind, `benches/cpu.rs`). Each gives exactly what the general way gives (property
//! tests below).

use super::value::{check_number, plain_decimal, ValueError};

/// A DECIMAL's text as a number attribute: [`check_number`] then [`plain_decimal`] (trailing
/// fraction zeros dropped, `-0.00` → `0`). A plain text of at most 38 digits (what the binlog and
/// SQL give) is checked and trimmed in one pass; any other goes the general way.
pub fn decimal_number(text: &str) -> Result<String, ValueError> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut digits = 0;
    let mut point = None;
    // The end of the text kept: after the last digit that is not a trailing fraction zero.
    let mut keep = 0;
    for (at, &byte) in body.as_bytes().iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                if point.is_none() || byte != b'0' {
                    keep = at + 1;
                }
            }
            b'.' if point.is_none() => point = Some(at),
            _ => return general(text),
        }
    }
    if digits == 0 || digits > 38 {
        return general(text);
    }
    let Some(point) = point else {
        return Ok(text.to_string());
    };
    let sign = text.len() - body.len();
    let kept = &text[..sign + keep.max(point)];
    Ok(match kept {
        "-0" | "" | "-" => "0".to_string(),
        other => other.to_string(),
    })
}

fn general(text: &str) -> Result<String, ValueError> {
    check_number(text)?;
    Ok(plain_decimal(text))
}

/// Whether DynamoDB holds every number a finite double of this magnitude is written as (38
/// digits at most and a magnitude from 1E-130 below 1E+126): the shortest text of a double has
/// at most 17 significant digits, and plain form (below 1e21) at most 21 before its point. The
/// check of the text can then be left out; outside this range it decides.
pub fn double_in_range(v: f64) -> bool {
    let abs = v.abs();
    abs == 0.0 || (1e-130..1e126).contains(&abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::value::format_f64;
    use proptest::prelude::*;

    #[test]
    fn decimals_of_the_binlog_are_trimmed() {
        for (text, number) in [
            ("1234.50", "1234.5"),
            ("-0.00", "0"),
            ("0.00", "0"),
            ("-12.000", "-12"),
            ("100", "100"),
            ("-0", "-0"),
            ("0.10", "0.1"),
            (".50", ".5"),
            ("5.", "5"),
        ] {
            assert_eq!(decimal_number(text).ok().as_deref(), Some(number), "{text}");
        }
        assert!(decimal_number(&"9".repeat(39)).is_err());
        assert!(decimal_number("").is_err());
        assert!(decimal_number("-").is_err());
    }

    #[test]
    fn doubles_at_the_edges_of_dynamodbs_range_are_checked() {
        for v in [1e126, -1e126, 1e-131, f64::MAX, f64::MIN_POSITIVE, 5e-324] {
            assert!(!double_in_range(v), "{v}");
            assert!(check_number(&format_f64(v)).is_err(), "{v}");
        }
        for v in [f64::INFINITY, f64::NAN] {
            assert!(!double_in_range(v), "{v}");
        }
        for v in [0.0, -0.0, 1e-130, 9.99e125, 2.75, 1e21, 1e-7] {
            assert!(double_in_range(v), "{v}");
        }
    }

    proptest! {
        #[test]
        fn a_decimal_is_what_checking_then_trimming_gives(
            text in "-?[0-9]{0,45}(\\.[0-9]{0,45})?|-?[0-9.eE+-]{0,8}"
        ) {
            prop_assert_eq!(
                decimal_number(&text).map_err(|e| e.to_string()),
                general(&text).map_err(|e| e.to_string())
            );
        }

        #[test]
        fn a_double_in_range_passes_the_check_of_its_text(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            if double_in_range(v) {
                prop_assert!(check_number(&format_f64(v)).is_ok(), "{}", v);
            }
        }

        #[test]
        fn a_double_near_the_range_edges_passes_the_check_when_in_range(
            mantissa in 1.0f64..10.0,
            exp in prop_oneof![-140i32..-120, 115i32..135],
        ) {
            let v = mantissa * 10f64.powi(exp);
            if double_in_range(v) {
                prop_assert!(check_number(&format_f64(v)).is_ok(), "{}", v);
            }
        }
    }
}
