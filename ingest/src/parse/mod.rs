//! Provider parsers: bytes in, normalised messages out. Pure functions with no I/O and no
//! secrets, so they can be fuzzed and tested on their own; the routes authenticate and append.
//!
//! Each parser reads the whole body before anything is appended. Only the envelope can make a
//! request invalid (not JSON, not the provider's shape, no account): then it is refused with a
//! short reason and nothing is stored. Inside a valid envelope every item is kept or skipped by
//! a rule of `docs/gateways.md` ("What is kept"), and counted: one odd message is never the
//! reason its neighbours are refused, because a gateway retries a refused POST whole (Meta for
//! up to 7 days) and then drops it. A message that cannot be fully read is kept as kind `other`
//! with `provider_type` and what could be read ([`Parsed::partial`]); one without an id or a
//! conversation is skipped ([`Parsed::ignored`]).
//!
//! Parsers stop at their caps while reading: arrays are read as raw slices of the body, at most
//! [`MAX_ITEMS`] elements each ([`raw_array`]); the rest are skipped unread and only counted
//! ([`Parsed::beyond_cap`]), so a body of a million tiny items costs no million allocations.

pub mod evolution;
pub mod generic;
pub mod meta;
pub mod presence;
mod tally;
pub mod twilio;
pub mod waha;

pub use tally::Tally;

use lull_core::Message;
use serde_json::value::RawValue;

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
    /// Events acknowledged without buffering, and items skipped by a rule, counted per metric
    /// `reason` label (statuses, other events, `no_id`, `no_sender`, ...).
    pub ignored: Tally,
    /// Items kept with only what could be read, by metric `reason` label (`missing_object`,
    /// `unreadable_content`, `too_many_contacts`, ...): one entry per item concerned.
    pub partial: Vec<&'static str>,
    /// Items present beyond the parser's cap ([`MAX_ITEMS`]), skipped unread: a request with any
    /// is over the message limit (413), whatever its other items.
    pub beyond_cap: usize,
}

impl Parsed {
    pub(crate) fn add_account(&mut self, account: &str) {
        if !self.accounts.iter().any(|a| a == account) {
            self.accounts.push(account.to_string());
        }
    }
}

/// At most this many items (messages, entries, changes, records) are read from one array of a
/// body; the request limit (`max_messages_per_request`, default 1,000) is at most this.
pub const MAX_ITEMS: usize = 1000;

/// At most this many shared contact cards (vCards) are read from one message (WhatsApp shares a
/// few at a time); the rest are skipped and the message is counted as partial.
pub const MAX_CONTACTS: usize = 64;

/// The first `cap` elements of a raw JSON array, each still raw (borrowed from the body), and
/// how many more it holds (skipped unread: serde's iterative skipper, no tree, no allocation).
pub(crate) struct RawArray<'a> {
    pub items: Vec<&'a RawValue>,
    pub beyond: usize,
}

/// Reads `raw` as an array into a [`RawArray`] of at most `cap` elements.
pub(crate) fn raw_array(raw: &RawValue, cap: usize) -> Result<RawArray<'_>, serde_json::Error> {
    struct Capped(usize);
    impl<'de> serde::de::Visitor<'de> for Capped {
        type Value = RawArray<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = RawArray {
                items: Vec::new(),
                beyond: 0,
            };
            while out.items.len() < self.0 {
                match seq.next_element::<&'de RawValue>()? {
                    Some(item) => out.items.push(item),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                out.beyond += 1;
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let out = serde::Deserializer::deserialize_seq(&mut de, Capped(cap))?;
    de.end()?;
    Ok(out)
}

/// A raw JSON value's string, when it is one (never an error: an odd type reads as absent).
pub(crate) fn raw_str(raw: Option<&RawValue>) -> Option<String> {
    raw.filter(|r| r.get().trim_start().starts_with('"'))
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// A raw JSON value read as `T`, when it is one.
pub(crate) fn raw_as<'a, T: serde::Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// 16 hex digits of the SHA-256 of an edit's new content: the deterministic part of an edit's
/// id when the gateway gives the edit no id of its own, so a retried event dedupes and two
/// different edits of one message do not.
pub(crate) fn content_hash(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
