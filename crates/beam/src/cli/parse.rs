//! Value parsers for flags, each with an error that says what to type instead.

use std::ops::RangeInclusive;
use std::time::Duration;

/// Parses `10/s`, `600/m` or `600` (per minute) into requests per minute.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("'{s}' is not a rate: use N/s or N/m, e.g. 10/s or 600/m");
    let (n, unit) = s.trim().split_once('/').unwrap_or((s.trim(), "m"));
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let rate = match unit.trim() {
        "s" | "sec" | "second" => Rate::PerSecond(n),
        "m" | "min" | "minute" => Rate::PerMinute(n),
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(format!("'{s}': the rate must be at least 1"));
    }
    Ok(rate)
}

/// A visitor rate limit as given: the period decides the burst (one
/// period's worth), so `5/s` never lets 300 requests through at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// N per second.
    PerSecond(u32),
    /// N per minute.
    PerMinute(u32),
}

/// Parses `1048576`, `512k`, `10MB`, `1GiB` (k/M/G are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size: use e.g. 512k, 10MB, 1G"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("ib")
        .trim_end_matches('b')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("'{s}' has an unknown unit: use k, M or G")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' must be between 1 byte and 16 EiB"))
}

/// Parses `120`, `250ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: use e.g. 250ms, 30s, 2m, 1h, 7d"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "d" => Ok(Duration::from_secs(n * 86_400)),
        _ => Err(format!("'{s}' has an unknown unit: use ms, s, m, h or d")),
    }
}

/// Parses `BASE[,CAP]` reconnect delays (`250ms,5s`; CAP defaults to BASE,
/// and may not be below it).
pub fn parse_backoff(s: &str) -> Result<beam_client::Backoff, String> {
    let (base, cap) = s.split_once(',').unwrap_or((s, s));
    let base = parse_duration(base)?;
    let cap = parse_duration(cap)?;
    if base.is_zero() || cap < base {
        return Err(format!(
            "'{s}' is not BASE[,CAP]: BASE must be above zero and CAP at least BASE, e.g. 250ms,5s"
        ));
    }
    Ok(beam_client::Backoff { base, cap })
}

/// Parses `FIRST-LAST` (or a single port).
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("'{s}' is not a port range: use FIRST-LAST, e.g. 20000-20999");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ranges_parse_with_clear_errors() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert_eq!(
            parse_duration("3d").unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        let b = parse_backoff("250ms,5s").unwrap();
        assert_eq!(
            (b.base, b.cap),
            (Duration::from_millis(250), Duration::from_secs(5))
        );
        assert_eq!(parse_backoff("1s").unwrap().cap, Duration::from_secs(1));
        assert!(
            parse_backoff("5s,1s")
                .unwrap_err()
                .contains("CAP at least BASE")
        );
        assert!(parse_backoff("0ms").unwrap_err().contains("above zero"));
        assert!(
            parse_backoff("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert_eq!(parse_port_range("20000-20010").unwrap(), 20000..=20010);
        assert_eq!(parse_port_range("5000").unwrap(), 5000..=5000);
        assert_eq!(parse_rate("10/s").unwrap(), Rate::PerSecond(10));
        assert_eq!(parse_rate("90").unwrap(), Rate::PerMinute(90));
        assert!(parse_rate("0/m").unwrap_err().contains("at least 1"));
        assert!(parse_rate("5/h").unwrap_err().contains("not a rate"));
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("0").is_err());
        for bad in ["0-10", "10-5", "a-b", "70000-70001"] {
            assert!(
                parse_port_range(bad)
                    .unwrap_err()
                    .contains("not a port range")
            );
        }
    }
}
