//! Time without a clock: plugins get the moment they score as of (`input.as_of`) and the
//! timestamps of their input as text, and measure ages between them.
//!
//! Free of any dependency, so Rapport's host-side benchmark and tests include this file
//! as it is.

/// Days since 1970-01-01 of an RFC 3339 timestamp (`2026-11-30T09:15:00Z`, offsets
/// allowed) or a date (`2026-11-30`, midnight UTC), as GraphQL's `DateTime` and
/// `NaiveDate` spell them. Plugins have no clock: measure ages against `input.as_of`.
pub fn epoch_days(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = if b.len() == 10 {
        (0, 0, 0)
    } else if b.len() >= 19 && (b[10] == b'T' || b[10] == b' ') {
        (num(11..13)?, num(14..16)?, num(17..19)?)
    } else {
        return None;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Offset: the last `+hh:mm`/`-hh:mm` after the seconds, or none for `Z`.
    let tail = s.get(19..).unwrap_or("");
    let offset_minutes = match tail.rfind(['+', '-']) {
        Some(i) if tail.len() >= i + 6 => {
            let sign = if tail.as_bytes()[i] == b'-' { -1 } else { 1 };
            let oh: i64 = tail.get(i + 1..i + 3)?.parse().ok()?;
            let om: i64 = tail.get(i + 4..i + 6)?.parse().ok()?;
            sign * (oh * 60 + om)
        }
        _ => 0,
    };
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_minutes * 60;
    Some(seconds as f64 / 86_400.0)
}

#[cfg(test)]
#[allow(unused_imports)] // Included by the host's benchmark, which builds it without tests.
mod tests {
    use super::epoch_days;

    #[test]
    fn timestamps_and_dates_count_days_since_1970() {
        assert_eq!(epoch_days("1970-01-02T00:00:00Z"), Some(1.0));
        assert_eq!(epoch_days("1970-01-02"), Some(1.0));
        assert_eq!(epoch_days("1970-01-01T12:00:00+12:00"), Some(0.0));
        assert_eq!(epoch_days("2026-12-01"), Some(20_788.0));
        for bad in ["", "yesterday", "2026-13-01", "2026-12-01T9"] {
            assert_eq!(epoch_days(bad), None, "{bad}");
        }
    }
}
