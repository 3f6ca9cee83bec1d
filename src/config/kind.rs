//! Types of config values: how a string from a file or a client becomes a typed value,
//! and the type codes DescribeConfigs reports.
//!
//! Parsing follows Kafka's `ConfigDef`: numbers and booleans are trimmed first,
//! booleans are case-insensitive, lists are comma-separated with items trimmed, enums
//! are case-sensitive (Kafka's `in(...)` validators are).

/// Kafka's config types as sent in DescribeConfigs responses (`ConfigType` in the
/// protocol). The discriminants are the wire codes and must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// The unit a duration setting is written in. Kafka spells some settings in minutes or
/// hours (`log.retention.hours`) next to a millisecond twin that takes precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Minutes,
    Hours,
}

impl TimeUnit {
    /// Milliseconds in one unit.
    pub const fn millis(self) -> i64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
        }
    }
}

/// The type and valid range of one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `true` or `false`, any case.
    Boolean,
    /// A 32-bit integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A 16-bit integer in `min..=max` (replication factors).
    Short { min: i64, max: i64 },
    /// A 64-bit integer in `min..=max`.
    Long { min: i64, max: i64 },
    /// A time span written in `unit`, at least `min`. `wire` is the type Kafka declares
    /// for it (INT or LONG), which also bounds it.
    Duration {
        unit: TimeUnit,
        wire: ConfigType,
        min: i64,
    },
    /// Free text.
    String,
    /// One of the listed strings, exactly.
    Enum(&'static [&'static str]),
    /// Comma-separated items; if the slice is not empty, each item must be one of it.
    List(&'static [&'static str]),
    /// A fraction in `[0, 1]` written as a decimal (`0.5`), Kafka's DOUBLE ratios such
    /// as `min.cleanable.dirty.ratio`.
    Ratio,
}

/// A parsed value. Every integer kind parses to `Number`, already range-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Bool(bool),
    Number(i64),
    Text(String),
    List(Vec<String>),
    Ratio(Ratio),
}

/// A fraction in `[0, 1]`, kept in millionths so configs stay `Eq` and print back as
/// they were written (`0.5`, not `0.5000000001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ratio {
    pub millionths: u32,
}

impl Ratio {
    pub fn as_f64(self) -> f64 {
        f64::from(self.millionths) / 1e6
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl ConfigKind {
    /// The type DescribeConfigs reports for this kind.
    pub fn config_type(&self) -> ConfigType {
        match self {
            ConfigKind::Boolean => ConfigType::Boolean,
            ConfigKind::Int { .. } => ConfigType::Int,
            ConfigKind::Short { .. } => ConfigType::Short,
            ConfigKind::Long { .. } => ConfigType::Long,
            ConfigKind::Duration { wire, .. } => *wire,
            ConfigKind::String | ConfigKind::Enum(_) => ConfigType::String,
            ConfigKind::List(_) => ConfigType::List,
            ConfigKind::Ratio => ConfigType::Double,
        }
    }

    /// Parses and checks `value`; the error is a reason, to which the caller adds the
    /// key and value (it knows which name the operator used).
    pub fn parse(&self, value: &str) -> Result<Parsed, String> {
        match *self {
            ConfigKind::Boolean => match value.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Parsed::Bool(true)),
                "false" => Ok(Parsed::Bool(false)),
                _ => Err("expected true or false".into()),
            },
            ConfigKind::Int { min, max }
            | ConfigKind::Short { min, max }
            | ConfigKind::Long { min, max } => number(value, min, max),
            ConfigKind::Duration { wire, min, .. } => {
                let max = if wire == ConfigType::Int {
                    i64::from(i32::MAX)
                } else {
                    i64::MAX
                };
                number(value, min, max)
            }
            ConfigKind::String => Ok(Parsed::Text(value.trim().to_string())),
            ConfigKind::Enum(allowed) => {
                let v = value.trim();
                if allowed.contains(&v) {
                    Ok(Parsed::Text(v.to_string()))
                } else {
                    Err(format!("must be one of {}", allowed.join(", ")))
                }
            }
            ConfigKind::List(allowed) => {
                // Empty items ("a,,b", a trailing comma) are dropped rather than refused:
                // they carry no meaning and are an easy slip in a hand-edited file.
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = items
                    .iter()
                    .find(|i| !allowed.is_empty() && !allowed.contains(&i.as_str()))
                {
                    return Err(format!(
                        "item {bad:?} must be one of {}",
                        allowed.join(", ")
                    ));
                }
                Ok(Parsed::List(items))
            }
            ConfigKind::Ratio => {
                let v: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| "not a number".to_string())?;
                if !(0.0..=1.0).contains(&v) {
                    return Err("must be between 0 and 1".into());
                }
                Ok(Parsed::Ratio(Ratio {
                    millionths: (v * 1e6).round() as u32,
                }))
            }
        }
    }
}

fn number(value: &str, min: i64, max: i64) -> Result<Parsed, String> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| "not an integer".to_string())?;
    if n < min {
        Err(format!("must be at least {min}"))
    } else if n > max {
        Err(format!("must be at most {max}"))
    } else {
        Ok(Parsed::Number(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(ConfigKind::Boolean.parse(" TRUE "), Ok(Parsed::Bool(true)));
        assert!(ConfigKind::Boolean.parse("yes").is_err());
        let int = ConfigKind::Int { min: 1, max: 10 };
        assert_eq!(int.parse(" 7"), Ok(Parsed::Number(7)));
        assert!(int.parse("0").unwrap_err().contains("at least 1"));
        assert!(int.parse("11").unwrap_err().contains("at most 10"));
        assert!(int.parse("7x").unwrap_err().contains("not an integer"));
        let dur = ConfigKind::Duration {
            unit: TimeUnit::Hours,
            wire: ConfigType::Int,
            min: 1,
        };
        assert!(dur.parse("2147483648").is_err());
        let e = ConfigKind::Enum(&["CreateTime", "LogAppendTime"]);
        assert!(e.parse("createtime").is_err());
        assert_eq!(e.parse("CreateTime"), Ok(Parsed::Text("CreateTime".into())));
        let l = ConfigKind::List(&["delete", "compact"]);
        assert_eq!(
            l.parse("compact, delete,"),
            Ok(Parsed::List(vec!["compact".into(), "delete".into()]))
        );
        assert!(l.parse("delete,purge").unwrap_err().contains("purge"));
        assert_eq!(ConfigKind::List(&[]).parse(""), Ok(Parsed::List(vec![])));
        let half = Ratio {
            millionths: 500_000,
        };
        assert_eq!(ConfigKind::Ratio.parse(" 0.5"), Ok(Parsed::Ratio(half)));
        assert_eq!(ConfigKind::Ratio.parse("5e-1"), Ok(Parsed::Ratio(half)));
        assert_eq!(half.to_string(), "0.5");
        assert!(ConfigKind::Ratio
            .parse("1.5")
            .unwrap_err()
            .contains("between"));
        assert!(ConfigKind::Ratio.parse("NaN").is_err());
        assert!(ConfigKind::Ratio.parse("half").is_err());
        assert_eq!(ConfigKind::Ratio.config_type(), ConfigType::Double);
    }

    #[test]
    fn wire_codes_are_kafkas() {
        assert_eq!(ConfigType::Boolean.code(), 1);
        assert_eq!(ConfigType::Long.code(), 5);
        assert_eq!(ConfigType::Password.code(), 9);
        let d = ConfigKind::Duration {
            unit: TimeUnit::Millis,
            wire: ConfigType::Long,
            min: 0,
        };
        assert_eq!(d.config_type(), ConfigType::Long);
        assert_eq!(ConfigKind::Enum(&[]).config_type(), ConfigType::String);
    }
}
