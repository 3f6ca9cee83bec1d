//! A reader for Java `.properties` files, the format of Kafka's `server.properties`.
//!
//! Kafka reads its config with `java.util.Properties`, so operators write what that class
//! accepts: `key=value`, `key: value` or `key value`; `#` and `!` comment lines; a
//! backslash at the end of a line continues the value on the next one; `\t`, `\n`, `\r`,
//! `\f`, `\uXXXX` escapes, and `\` before any other character stands for that character.
//!
//! Where we are stricter than Java, it is because a broker config is better refused at
//! start-up than silently misread:
//! * a line with a key and no separator (`log.dirs`) is an error, where Java gives `""`;
//! * an empty key (`=5`) and a malformed `\u` escape are errors;
//! * trailing whitespace after a value is trimmed (Java keeps it; Kafka trims
//!   most values itself when it parses them, and a stray space after `9092` should not
//!   matter). An escaped trailing space (`\ `) is kept.
//!
//! The reader returns every pair in file order, duplicates included, so the caller
//! decides what a repeated key means (Java's rule: the last one wins) and can warn.

use super::ConfigError;

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    /// 1-based line where the entry starts; continuation lines do not move it, so error
    /// messages point where the operator will look.
    pub line: usize,
}

/// Parses the text of a properties file into its entries, in file order.
pub fn parse(text: &str) -> Result<Vec<Property>, ConfigError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let start_line = index + 1;
        let first = raw.trim_start();
        // Comments and blank lines are recognised only at the start of a logical line;
        // a continuation line that starts with `#` is part of the value.
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                // Java ends the entry at end of file: the dangling backslash just vanishes.
                None => break,
            }
        }
        out.push(split_entry(&logical, start_line)?);
    }
    Ok(out)
}

/// A line continues when it ends in an odd number of backslashes (`\\` is a literal one).
fn ends_with_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits one logical line into key and value and resolves their escapes.
fn split_entry(line: &str, line_no: usize) -> Result<Property, ConfigError> {
    let syntax = |reason: String| ConfigError::Syntax {
        line: line_no,
        reason,
    };
    // The key ends at the first unescaped `=`, `:` or whitespace.
    let mut key_end = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || c.is_whitespace() {
            key_end = i;
            break;
        }
    }
    let raw_key = &line[..key_end];
    let mut rest = line[key_end..].trim_start();
    let had_separator = if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start();
        true
    } else {
        // `key value` with only whitespace between is valid Java; `key` alone is not
        // accepted here (see the module docs).
        key_end < line.len() && !rest.is_empty()
    };
    if raw_key.is_empty() {
        return Err(syntax("missing key before the separator".into()));
    }
    if !had_separator {
        return Err(syntax(format!(
            "expected `key=value`, found only `{raw_key}`"
        )));
    }
    let key = unescape(raw_key).map_err(&syntax)?;
    let value = unescape(rest).map_err(&syntax)?;
    Ok(Property {
        key,
        value,
        line: line_no,
    })
}

/// Resolves backslash escapes and trims unescaped trailing whitespace.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    // Length of `out` that must survive trimming: everything up to the last escape.
    let mut keep = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            // Only reachable if the caller left a lone trailing backslash; Java drops it.
            break;
        };
        match e {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\u escape `\\u{hex}`"))?;
                out.push(code);
            }
            other => out.push(other),
        }
        keep = out.len();
    }
    let trimmed = out[keep..].trim_end().len();
    out.truncate(keep + trimmed);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value, p.line))
            .collect()
    }

    fn one(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\n  a=1\nb : 2\nc 3\n\td\t=\t4\t\ne=\n";
        assert_eq!(
            pairs(text),
            vec![
                one("a", "1", 4),
                one("b", "2", 5),
                one("c", "3", 6),
                one("d", "4", 7),
                one("e", "", 8),
            ]
        );
    }

    #[test]
    fn value_keeps_later_separators_and_hashes() {
        assert_eq!(
            pairs("listeners=PLAINTEXT://h:9092,X://:1 # not a comment"),
            vec![one(
                "listeners",
                "PLAINTEXT://h:9092,X://:1 # not a comment",
                1
            )]
        );
    }

    #[test]
    fn continuation_lines_join_and_strip_leading_space() {
        let text = "log.dirs=/a,\\\n    /b,\\\n    /c\nnext=1\n";
        assert_eq!(
            pairs(text),
            vec![one("log.dirs", "/a,/b,/c", 1), one("next", "1", 4)]
        );
    }

    #[test]
    fn continuation_line_starting_with_hash_is_value() {
        assert_eq!(pairs("a=x\\\n#y"), vec![one("a", "x#y", 1)]);
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(
            pairs("a=x\\\\\nb=y"),
            vec![one("a", "x\\", 1), one("b", "y", 2)]
        );
    }

    #[test]
    fn dangling_continuation_at_eof_ends_entry() {
        assert_eq!(pairs("a=x\\"), vec![one("a", "x", 1)]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs(r"k\=ey\:x=a\tb\u0041\\c\ "),
            vec![one("k=ey:x", "a\tbA\\c ", 1)]
        );
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            pairs("a=1\r\nb=2\r\n"),
            vec![one("a", "1", 1), one("b", "2", 2)]
        );
    }

    #[test]
    fn duplicates_are_all_returned_in_order() {
        assert_eq!(pairs("a=1\na=2"), vec![one("a", "1", 1), one("a", "2", 2)]);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("a=1\nlog.dirs\n", 2),
            ("\n\n=5", 3),
            ("a=1\nb=\\u12", 2),
            ("a=\\uZZZZ", 1),
        ] {
            match parse(text) {
                Err(ConfigError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: expected a syntax error, got {other:?}"),
            }
        }
    }
}
