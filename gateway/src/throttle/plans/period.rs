//! Quota periods in UTC: a day from midnight, a week from Monday midnight, a calendar month
//! from the 1st.

pub(crate) use crate::config::Period;
use chrono::{DateTime, Datelike, NaiveDate};

/// One period: `[start, end)` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First second of the period.
    pub start: i64,
    /// First second after it.
    pub end: i64,
}

const DAY: i64 = 86_400;

fn month_start(year: i32, month: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp())
}

impl Period {
    /// The period that holds `now` (epoch seconds).
    pub fn window(self, now: i64) -> Window {
        let day_start = now.div_euclid(DAY) * DAY;
        match self {
            Self::Day => Window {
                start: day_start,
                end: day_start + DAY,
            },
            Self::Week => {
                let weekday = DateTime::from_timestamp(now, 0)
                    .map_or(0, |t| i64::from(t.weekday().num_days_from_monday()));
                let start = day_start - weekday * DAY;
                Window {
                    start,
                    end: start + 7 * DAY,
                }
            }
            Self::Month => {
                let date = DateTime::from_timestamp(now, 0).unwrap_or_default();
                let (year, month) = (date.year(), date.month());
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                Window {
                    start: month_start(year, month),
                    end: month_start(next_year, next_month),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .timestamp()
    }

    #[test]
    fn windows_follow_the_utc_calendar() {
        let now = at("2026-02-18T15:04:05Z"); // a Wednesday
        assert_eq!(
            Period::Day.window(now),
            Window {
                start: at("2026-02-18T00:00:00Z"),
                end: at("2026-02-19T00:00:00Z")
            }
        );
        assert_eq!(
            Period::Week.window(now),
            Window {
                start: at("2026-02-16T00:00:00Z"),
                end: at("2026-02-23T00:00:00Z")
            }
        );
        assert_eq!(
            Period::Month.window(now),
            Window {
                start: at("2026-02-01T00:00:00Z"),
                end: at("2026-03-01T00:00:00Z")
            }
        );
        let december = Period::Month.window(at("2026-12-31T23:59:59Z"));
        assert_eq!(december.end, at("2027-01-01T00:00:00Z"));
        // A Monday at midnight starts its own week; the second before belongs to the last one.
        let monday = at("2026-02-23T00:00:00Z");
        assert_eq!(Period::Week.window(monday).start, monday);
        assert_eq!(Period::Week.window(monday - 1).end, monday);
    }
}
