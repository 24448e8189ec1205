//! Provider parsers: bytes in, normalised messages out. Pure functions with no I/O and no
//! secrets, so they can be fuzzed and tested on their own; the routes authenticate and append.
//!
//! Each parser reads the whole body before anything is appended: a request is either entirely
//! valid or refused with a short reason.

pub mod evolution;
pub mod generic;
pub mod meta;
pub mod presence;
pub mod twilio;
pub mod waha;

use lull_core::Message;

/// One message and the conversation it belongs to, before the tenant is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The business side as the body names it (Meta `phone_number_id`, Evolution instance,
    /// Twilio `To` number, generic `account`): it must belong to the authenticated tenant.
    pub account: String,
    /// The user key (for groups, the group id).
    pub user: String,
    /// The group id, for group conversations.
    pub group: Option<String>,
    pub message: Message,
    /// Set when the message is buffered only if the tenant opts in (Evolution `fromMe`,
    /// `status@broadcast`).
    pub opt_in: Option<OptIn>,
}

/// Messages a tenant may choose to buffer; ignored (and counted) by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptIn {
    /// Sent by the business itself (Evolution `fromMe: true`), by its API (the bot).
    FromMe,
    /// Sent by a person on the business side (Evolution `fromMe: true` from the WhatsApp app on a
    /// phone or desktop): besides the opt-in, it pauses the conversation's hand-offs.
    Operator,
    /// A WhatsApp status update (`status@broadcast`).
    StatusBroadcast,
}

impl OptIn {
    /// The `reason` label of the ignored-events metric.
    pub fn label(self) -> &'static str {
        match self {
            OptIn::FromMe => "from_me",
            OptIn::Operator => "operator",
            OptIn::StatusBroadcast => "status_broadcast",
        }
    }
}

/// What a request body holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Every account the body names, in order of first appearance (also those with only
    /// statuses or ignored events): all must belong to the authenticated tenant.
    pub accounts: Vec<String>,
    /// The messages, in body order (which is receive order).
    pub items: Vec<Item>,
    /// Events acknowledged without buffering, by metric `reason` label (statuses, other events).
    pub ignored: Vec<&'static str>,
}

impl Parsed {
    pub(crate) fn add_account(&mut self, account: &str) {
        if !self.accounts.iter().any(|a| a == account) {
            self.accounts.push(account.to_string());
        }
    }
}

/// The body is not a valid request of its format; the reason is short and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        ParseError(s.into())
    }

    /// A serde_json error, without the offending value (it may be personal data).
    pub(crate) fn json(context: &str, e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Io => "unreadable body",
            Category::Syntax => "malformed JSON",
            Category::Data => "unexpected JSON shape",
            Category::Eof => "truncated JSON",
        };
        // serde's "missing field `x`" / "invalid type ... expected y" messages name fields and
        // types; keep the message but cut anything quoted from the input.
        let msg = e.to_string();
        let detail = if msg.starts_with("missing field") || msg.starts_with("unknown variant") {
            msg
        } else if let Some(exp) = msg.split(", expected ").nth(1) {
            format!("expected {exp}")
        } else {
            format!("at line {} column {}", e.line(), e.column())
        };
        ParseError(format!("{context}: {what}: {detail}"))
    }
}

/// A protobuf Long as JSON: `{"low": .., "high": .., "unsigned": ..}`.
#[derive(serde::Deserialize)]
struct Long {
    low: i64,
    #[serde(default)]
    high: i64,
}

/// Unix seconds (string, integer, float, or protobuf Long) as milliseconds, when sensible.
/// Reads the raw JSON of one field, so an odd value costs no tree of its own.
pub(crate) fn unix_secs_raw(raw: &serde_json::value::RawValue) -> Option<lull_core::Millis> {
    let text = raw.get().trim();
    let secs = match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?,
        b'{' => {
            let l: Long = serde_json::from_str(text).ok()?;
            ((l.high as u64 & 0xffff_ffff) << 32) | (l.low as u64 & 0xffff_ffff)
        }
        b'0'..=b'9' => match serde_json::from_str::<u64>(text) {
            Ok(n) => n,
            Err(_) => serde_json::from_str::<f64>(text)
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)? as u64,
        },
        _ => return None,
    };
    Some(lull_core::Millis(secs.saturating_mul(1000)))
}

/// `Some(s)` for a non-empty string.
pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
