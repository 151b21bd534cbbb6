//! RFC 3339 timestamps and calendar dates without a date library on the hot
//! path: Howard Hinnant's `days_from_civil` / `civil_from_days` on the
//! proleptic Gregorian calendar, in UTC.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The earliest instant [`write_rfc3339_millis`] can show: 0000-01-01T00:00:00.000Z.
pub const RFC3339_MIN_MS: i64 = days_from_civil(0, 1, 1) * DAY_MS;
/// The latest instant [`write_rfc3339_millis`] can show: 9999-12-31T23:59:59.999Z.
pub const RFC3339_MAX_MS: i64 = days_from_civil(10_000, 1, 1) * DAY_MS - 1;

/// Days from 1970-01-01 to `year-month-day` (month 1..=12, day 1..=31).
pub(crate) const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let month_from_march = ((month + 9) % 12) as i64; // March = 0
    let day_of_year = (153 * month_from_march + 2) / 5 + day as i64 - 1; // 0..=365
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The `(year, month, day)` of `days` after 1970-01-01.
pub(crate) const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097; // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month as u32, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` of `year`.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Appends `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 bytes, no quotes).
///
/// Instants outside years 0000..=9999, which RFC 3339 cannot show, are
/// clamped to [`RFC3339_MIN_MS`] / [`RFC3339_MAX_MS`].
pub fn write_rfc3339_millis(out: &mut Vec<u8>, unix_ms: i64) {
    let ms = unix_ms.clamp(RFC3339_MIN_MS, RFC3339_MAX_MS);
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    let ms_of_day = ms.rem_euclid(DAY_MS) as u32;
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    let year = year as u32; // 0..=9999 after the clamp
    let d = |n: u32| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[
        d(year / 1000),
        d(year / 100),
        d(year / 10),
        d(year),
        b'-',
        d(month / 10),
        d(month),
        b'-',
        d(day / 10),
        d(day),
        b'T',
        d(hour / 10),
        d(hour),
        b':',
        d(minute / 10),
        d(minute),
        b':',
        d(second / 10),
        d(second),
        b'.',
        d(milli / 100),
        d(milli / 10),
        d(milli),
        b'Z',
    ]);
}

/// `unix_ms` as an RFC 3339 string; see [`write_rfc3339_millis`].
pub fn format_rfc3339_millis(unix_ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_millis(&mut out, unix_ms);
    String::from_utf8(out).expect("invariant: the formatter writes ASCII only")
}

/// The value of the ASCII digits `bytes`, or `None` if one is not a digit.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses `YYYY-MM-DD` into `(year, month, day)` if it is a real calendar date.
pub(crate) fn parse_date(s: &[u8]) -> Option<(i64, u32, u32)> {
    if s.len() != 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = i64::from(digits(&s[0..4])?);
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
    valid.then_some((year, month, day))
}

/// Parses an RFC 3339 date-time into Unix milliseconds.
///
/// Accepts `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with `t`/`z` in
/// either case as RFC 3339 allows; the fraction (1 to 9 digits) is truncated
/// to milliseconds. Leap seconds (`:60`) are refused: no system that
/// records consent produces them.
pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let (year, month, day) = parse_date(&b[..10])?;
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0u32;
    if let [b'.', fraction @ ..] = rest {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        // Truncate to three digits, padding short fractions: ".5" is 500 ms.
        for i in 0..3 {
            millis = millis * 10
                + fraction
                    .get(i)
                    .filter(|_| i < len)
                    .map_or(0, |c| u32::from(c - b'0'));
        }
        rest = &fraction[len..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = i64::from(hours * 60 + minutes);
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second);
    let local_ms =
        days_from_civil(year, month, day) * DAY_MS + seconds_of_day * 1000 + i64::from(millis);
    Some(local_ms - offset_minutes * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
    use proptest::prelude::*;

    fn chrono_rfc3339(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    #[test]
    fn bounds_and_well_known_instants() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339_millis(1_795_428_000_000),
            "2026-11-23T10:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_millis(RFC3339_MIN_MS),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339_millis(RFC3339_MAX_MS),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format_rfc3339_millis(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(chrono_rfc3339(RFC3339_MAX_MS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_round_trip_over_every_day_of_five_centuries() {
        let start = days_from_civil(1800, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        let mut expected = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        for days in start..end {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert_eq!(
                NaiveDate::from_ymd_opt(y as i32, m, d),
                Some(expected),
                "day {days}"
            );
            expected = expected.succ_opt().unwrap();
        }
    }

    #[test]
    fn dates_are_checked_against_the_calendar() {
        assert_eq!(parse_date(b"2000-02-29"), Some((2000, 2, 29)));
        assert_eq!(parse_date(b"1990-12-31"), Some((1990, 12, 31)));
        for bad in [
            "1900-02-29",
            "2023-02-29",
            "2024-04-31",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-1-01",
            "2024/01/01",
            "２０24-01-01",
            "20240101xx",
        ] {
            assert_eq!(parse_date(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_parser_cases() {
        let ok = [
            ("2026-11-23T09:59:41Z", 1_795_427_981_000),
            ("2026-11-23T09:59:41.250Z", 1_795_427_981_250),
            ("2026-11-23t09:59:41.2z", 1_795_427_981_200),
            ("2026-11-23T09:59:41.123456789Z", 1_795_427_981_123),
            ("2026-11-23T04:59:41-05:00", 1_795_427_981_000),
            ("2026-11-23T15:29:41.000+05:30", 1_795_427_981_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_rfc3339_millis(s), Some(ms), "{s}");
            assert_eq!(
                DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis(),
                ms,
                "{s}"
            );
        }
        let bad = [
            "",
            "2026-11-23",
            "2026-11-23T09:59:41",
            "2026-11-23 09:59:41Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T09:60:00Z",
            "2026-11-23T09:59:60Z",
            "2026-02-30T09:59:41Z",
            "2026-11-23T09:59:41.Z",
            "2026-11-23T09:59:41.1234567890Z",
            "2026-11-23T09:59:41+0500",
            "2026-11-23T09:59:41+24:00",
            "2026-11-23T09:59:41Zjunk",
            "+2026-11-23T09:59:41Z",
        ];
        for s in bad {
            assert_eq!(parse_rfc3339_millis(s), None, "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn formatter_matches_chrono(ms in RFC3339_MIN_MS..=RFC3339_MAX_MS) {
            let mine = format_rfc3339_millis(ms);
            prop_assert_eq!(&mine, &chrono_rfc3339(ms));
            prop_assert_eq!(parse_rfc3339_millis(&mine), Some(ms));
        }

        #[test]
        fn formatter_matches_chrono_near_now(ms in 0i64..4_102_444_800_000) {
            prop_assert_eq!(format_rfc3339_millis(ms), chrono_rfc3339(ms));
        }

        #[test]
        fn parser_agrees_with_chrono_on_offsets(
            ms in 0i64..4_102_444_800_000,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            nanos in 0u32..1_000_000_000,
        ) {
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let instant = DateTime::<Utc>::from_timestamp(ms / 1000, nanos).unwrap().with_timezone(&offset);
            let text = instant.to_rfc3339_opts(SecondsFormat::AutoSi, false);
            prop_assert_eq!(parse_rfc3339_millis(&text), Some(instant.timestamp_millis()), "{}", text);
        }

        #[test]
        fn parser_never_panics_and_never_accepts_what_chrono_refuses(s in "[0-9T:.Z+-]{0,40}") {
            if let Some(ms) = parse_rfc3339_millis(&s) {
                let theirs = DateTime::parse_from_rfc3339(&s);
                prop_assert!(theirs.is_ok(), "{}", s);
                prop_assert_eq!(theirs.unwrap().timestamp_millis(), ms);
            }
        }
    }
}
