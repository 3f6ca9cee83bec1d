//! Offsets of partitions (ListOffsets to each leader, in the shared client) and the
//! time parsing that `--to-datetime` needs.

use super::CliError;
pub use troupe_actors::client::offsets::{list_offsets, ATTEMPTS, EARLIEST, LATEST, RETRY_BACKOFF};

/// Milliseconds since the epoch for an ISO-8601 date-time as Kafka's tools take it:
/// `2024-05-01T12:00:00`, optionally with `.SSS` and a zone (`Z`, `+02:00`); no zone
/// means UTC. A bare number is taken as epoch milliseconds.
pub fn parse_datetime(s: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError::Usage(format!("cannot read '{s}' as a date-time (YYYY-MM-DDTHH:MM:SS[.SSS][Z|+HH:MM]) or epoch milliseconds"))
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let (date, rest) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 {
        return Err(bad());
    }
    let (y, mo, day): (i64, i64, i64) = (
        d[0].parse().map_err(|_| bad())?,
        d[1].parse().map_err(|_| bad())?,
        d[2].parse().map_err(|_| bad())?,
    );
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        let zh: i64 = zh.parse().map_err(|_| bad())?;
        let zm: i64 = zm.parse().map_err(|_| bad())?;
        (t, sign * (zh * 60 + zm))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() < 2 || t.len() > 3 {
        return Err(bad());
    }
    let h: i64 = t[0].parse().map_err(|_| bad())?;
    let mi: i64 = t[1].parse().map_err(|_| bad())?;
    let sec: i64 = t
        .get(2)
        .map(|x| x.parse())
        .transpose()
        .map_err(|_| bad())?
        .unwrap_or(0);
    let frac3: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: i64 = frac3.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, day);
    Ok(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + sec * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(
            parse_datetime("2024-03-01T00:00:00Z").unwrap(),
            1_709_251_200_000
        );
        assert_eq!(
            parse_datetime("2024-03-01T02:00:00+02:00").unwrap(),
            1_709_251_200_000
        );
        assert_eq!(parse_datetime("1709251200000").unwrap(), 1_709_251_200_000);
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2024-13-01T00:00:00").is_err());
    }
}
