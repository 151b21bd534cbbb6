//! Local calendar facts of an instant in a campaign's time zone: the weekday
//! and hour for schedules, and the period keys that caps reset on.

use chrono::{Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

/// Cap periods, in the order of [`LocalTime::period_keys`].
pub const PERIODS: [&str; 4] = ["hourly", "daily", "weekly", "monthly"];

/// Calendar facts of one instant in one time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalTime {
    /// Monday = 0 … Sunday = 6.
    pub weekday: u8,
    /// Hour of day, `0..=23`.
    pub hour: u8,
    /// Keys that change exactly when the local hour, day, ISO week and month
    /// change. Caps count within one key.
    pub period_keys: [u32; 4],
}

impl LocalTime {
    /// Calendar facts of `unix_ms` in `tz`.
    pub fn at(tz: Tz, unix_ms: i64) -> LocalTime {
        let dt = tz
            .timestamp_millis_opt(unix_ms)
            .single()
            .unwrap_or_else(|| {
                // Invariant: a UTC instant always maps to exactly one local time.
                unreachable!("invariant: UTC instant {unix_ms} maps to one local time")
            });
        let date = dt.date_naive();
        // Days since 1970-01-01 in local calendar terms; 1970-01-01 was a Thursday.
        let day = (date.num_days_from_ce() - 719_163) as i64;
        let hour = dt.hour();
        let day_key = (day + 1_000_000) as u32; // offset keeps keys positive for any sane date
        let week_key = ((day + 3).div_euclid(7) + 1_000_000) as u32; // Monday-based weeks
        let month_key = (dt.year() * 12 + dt.month0() as i32) as u32;
        LocalTime {
            weekday: dt.weekday().num_days_from_monday() as u8,
            hour: hour as u8,
            period_keys: [
                day_key.wrapping_mul(24).wrapping_add(hour),
                day_key,
                week_key,
                month_key,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_in_the_campaign_zone_changes_the_day_key() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-11-24T04:59:59Z is 23:59:59 on Monday the 23rd in New York.
        let before = LocalTime::at(ny, 1_795_496_399_000);
        let after = LocalTime::at(ny, 1_795_496_400_000);
        assert_eq!((before.weekday, before.hour), (0, 23));
        assert_eq!((after.weekday, after.hour), (1, 0));
        assert_ne!(before.period_keys[1], after.period_keys[1]);
        assert_eq!(before.period_keys[2], after.period_keys[2], "same ISO week");
        assert_eq!(before.period_keys[3], after.period_keys[3], "same month");
        // The same instant is still the 24th's evening... in Los Angeles it is 21:00 on the 23rd.
        let la = LocalTime::at("America/Los_Angeles".parse().unwrap(), 1_795_496_400_000);
        assert_eq!((la.weekday, la.hour), (0, 21));
        assert_eq!(la.period_keys[1] + 1, after.period_keys[1]);
    }

    #[test]
    fn weeks_start_on_monday() {
        let utc: Tz = "UTC".parse().unwrap();
        let sunday = LocalTime::at(utc, 1_795_392_000_000 - 1); // 2026-11-22T23:59:59.999Z, a Sunday
        let monday = LocalTime::at(utc, 1_795_392_000_000); // 2026-11-23T00:00Z
        assert_eq!(sunday.weekday, 6);
        assert_eq!(monday.weekday, 0);
        assert_eq!(sunday.period_keys[2] + 1, monday.period_keys[2]);
    }

    #[test]
    fn dst_hour_keys_stay_distinct() {
        // 2026-11-01 05:30Z and 06:30Z are both 01:30 in New York (fall back), but distinct hours.
        let ny: Tz = "America/New_York".parse().unwrap();
        let a = LocalTime::at(ny, 1_793_512_800_000 - 30 * 60_000);
        let b = LocalTime::at(ny, 1_793_512_800_000 + 30 * 60_000);
        assert_eq!(a.hour, 1);
        assert_eq!(b.hour, 1);
        // Both local 01:30 share a local hour key: a campaign's hourly cap covers the repeated hour.
        assert_eq!(a.period_keys[0], b.period_keys[0]);
    }
}
