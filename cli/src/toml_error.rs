//! A TOML file that does not parse is reported by position and key name only. The `toml`
//! crate's own message quotes the offending line, and serde's quote the offending value: in
//! `lull.toml` and a tenants file that line is often a secret (`app_secret = "..."` with a typo
//! in its quoting), which would land in a terminal, a CI log or a support ticket.

/// `line L, column C, key K: what went wrong`, with every quoted fragment of the message
/// (a value, or the text around the error) replaced by `…`.
pub fn describe(text: &str, e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        out += &format!("line {line}, column {column}");
        if let Some(key) = key_at(text, start) {
            out += &format!(", key {key}");
        }
        out += ": ";
    }
    out += &unquoted(e.message());
    out
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The key of the line holding byte `at` (`table.key` when under a `[table]` header), when that
/// line is a `key = ...` line with a bare (or dotted bare) key.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let bare = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        .filter(|t| bare(t));
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| bare(k));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k.to_string()),
        (Some(t), None) if line.trim_start().starts_with('[') => Some(t),
        _ => None,
    }
}

/// `message` with its quoted fragments (`` `...` ``, `"..."`, and `'...'` opened after a space)
/// replaced by `…`.
fn unquoted(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        let closing = match c {
            '`' | '"' => Some(c),
            '\'' if prev.is_whitespace() || prev == '(' => Some('\''),
            _ => None,
        };
        match closing {
            Some(close) => {
                // Skip to the closing quote (or the end).
                for n in chars.by_ref() {
                    if n == close {
                        break;
                    }
                }
                out.push('…');
                prev = '…';
            }
            _ => {
                out.push(c);
                prev = c;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = toml::from_str::<crate::config::FileConfig>(text).unwrap_err();
        describe(text, &e)
    }

    #[test]
    fn a_broken_secret_line_is_named_by_position_and_key_only() {
        let text = "quiet = \"8s\"\n[[tenants]]\nid = \"a\"\n[tenants.meta]\napp_secret = \"s3cr3t-v4lue\n";
        let shown = error_of(text);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.starts_with("line 5, column"), "{shown}");
        assert!(shown.contains("key tenants.meta.app_secret"), "{shown}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_not_quoted() {
        let shown = error_of("sink_secret = 123456789\n");
        assert!(!shown.contains("123456789"), "{shown}");
        assert!(
            shown.contains("line 1") && shown.contains("key sink_secret"),
            "{shown}"
        );
        let shown = error_of("meta_app_secret = true\nquiet = \"8s\"\n");
        assert!(shown.contains("key meta_app_secret"), "{shown}");
    }
}
