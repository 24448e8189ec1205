//! The account a raw body names, found without parsing the body, so the request can be
//! authenticated before anything is built from it.
//!
//! A gateway's secret belongs to the tenant that owns the account the body names (Meta
//! `phone_number_id`, Evolution `instance`, WAHA `session`, generic `account`, Twilio `To`).
//! The routes read that account here with one pass over the bytes that allocates nothing in
//! proportion to the body (a fixed stack of at most [`MAX_DEPTH`] levels, and the one value
//! found, at most [`MAX_HINT`] bytes), look its tenant up, check the signature over the raw
//! body with that tenant's secrets, and only then parse. The hint only chooses whose secret
//! is tried: after parsing, every account the body names must belong to the tenant the
//! signature proved (403 otherwise), so a body whose hint names one tenant and whose messages
//! name another stores nothing.
//!
//! The scan follows JSON's structure (strings with their escapes, objects, arrays), so a key
//! inside a message's text never matches; a key written with escapes (`"in\u0073tance"`) is
//! not recognised (no gateway writes one), and such a body is refused like one naming no
//! account.

/// Deepest nesting tracked; deeper levels are skipped (no gateway's account is that deep).
pub const MAX_DEPTH: usize = 16;

/// Longest account value read (longer: no hint; accounts are capped at 256 bytes anyway).
pub const MAX_HINT: usize = 512;

/// One step of a path into a JSON document.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// The value of this key of an object.
    Key(&'static str),
    /// Any element of an array.
    Each,
}

/// Meta: `entry[].changes[].value.metadata.phone_number_id`.
pub const META: &[Step] = &[
    Step::Key("entry"),
    Step::Each,
    Step::Key("changes"),
    Step::Each,
    Step::Key("value"),
    Step::Key("metadata"),
    Step::Key("phone_number_id"),
];
/// Evolution: the top-level `instance`.
pub const EVOLUTION: &[Step] = &[Step::Key("instance")];
/// WAHA: the top-level `session`.
pub const WAHA: &[Step] = &[Step::Key("session")];
/// lull's generic format: the top-level `account`.
pub const GENERIC: &[Step] = &[Step::Key("account")];

#[derive(Clone, Copy)]
struct Frame {
    object: bool,
    /// The current key of an object (a range of the body), `None` before the first.
    key: Option<(usize, usize)>,
}

/// The first string value at `path` in the JSON `body` (unescaped and trimmed), if any.
pub fn json_account(body: &[u8], path: &[Step]) -> Option<String> {
    let mut stack = [Frame {
        object: false,
        key: None,
    }; MAX_DEPTH];
    let mut depth = 0usize;
    // In an object: the next string is a key (not a value).
    let mut expect_key = false;
    let mut i = 0usize;
    while i < body.len() {
        match body[i] {
            b'{' | b'[' => {
                if depth < MAX_DEPTH {
                    stack[depth] = Frame {
                        object: body[i] == b'{',
                        key: None,
                    };
                }
                depth += 1;
                expect_key = body[i] == b'{';
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = depth > 0 && depth <= MAX_DEPTH && stack[depth - 1].object;
                i += 1;
            }
            b'"' => {
                let end = string_end(body, i + 1)?;
                if expect_key {
                    if depth > 0 && depth <= MAX_DEPTH {
                        stack[depth - 1].key = Some((i + 1, end));
                    }
                    expect_key = false;
                } else if at(body, &stack[..depth.min(MAX_DEPTH)], depth, path) {
                    return decode(&body[i..=end]);
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index of the quote closing the string whose content starts at `from`.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    while from < body.len() {
        match body[from] {
            b'\\' => from += 2,
            b'"' => return Some(from),
            _ => from += 1,
        }
    }
    None
}

/// True when the value being read (at `depth`, under `stack`) is at `path`.
fn at(body: &[u8], stack: &[Frame], depth: usize, path: &[Step]) -> bool {
    depth == path.len()
        && stack.len() == depth
        && stack.iter().zip(path).all(|(frame, step)| match step {
            Step::Each => !frame.object,
            Step::Key(k) => {
                frame.object && frame.key.is_some_and(|(s, e)| &body[s..e] == k.as_bytes())
            }
        })
}

/// A quoted JSON string (quotes included) as its trimmed value; `None` when longer than
/// [`MAX_HINT`], invalid or empty.
fn decode(quoted: &[u8]) -> Option<String> {
    if quoted.len() > MAX_HINT + 2 {
        return None;
    }
    let s: String = serde_json::from_slice(quoted).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The `name` parameter of a form-encoded `body` (decoded and trimmed), read without decoding
/// any other parameter; `None` when absent, longer than [`MAX_HINT`] or empty.
pub fn form_param(body: &[u8], name: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if k != name.as_bytes() || v.len() > MAX_HINT * 3 {
            return None;
        }
        let (_, value) = form_urlencoded::parse(pair).next()?;
        let value = value.trim();
        (!value.is_empty() && value.len() <= MAX_HINT).then(|| value.to_string())
    })
}

/// Twilio: the business number, `To`, or `From` for a status callback of an outbound message
/// (`MessageStatus`/`SmsStatus` other than `received`), as `parse::twilio` reads them.
pub fn twilio_account(body: &[u8]) -> Option<String> {
    let status = form_param(body, "MessageStatus").or_else(|| form_param(body, "SmsStatus"));
    match status {
        Some(s) if s != "received" => form_param(body, "From"),
        _ => form_param(body, "To"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_account_where_each_gateway_puts_it() {
        let meta = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp",
             "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
             "messages":[{"id":"w","text":{"body":"x"}}]}}]}]}"#;
        assert_eq!(json_account(meta, META).as_deref(), Some("106540352242922"));
        let evo = br#"{"event":"messages.upsert","data":{"instance":"inner"},"instance":" shop "}"#;
        assert_eq!(json_account(evo, EVOLUTION).as_deref(), Some("shop"));
        let waha = br#"{"id":"e","metadata":{"session":"no"},"session":"default","payload":{}}"#;
        assert_eq!(json_account(waha, WAHA).as_deref(), Some("default"));
        assert_eq!(
            json_account(br#"{"account":"sh\u006fp","messages":[]}"#, GENERIC).as_deref(),
            Some("shop")
        );
    }

    #[test]
    fn keys_inside_strings_or_at_other_depths_never_match() {
        // A message text spelling the key, an escaped quote before it, the key one level
        // deeper, and a key that is an array element: none is the account.
        let body = br#"{"messages":[{"text":"\"account\":\"evil\""},{"account":"deep"}],
            "list":["account","x"],"x\"account":"evil2","account":"real"}"#;
        assert_eq!(json_account(body, GENERIC).as_deref(), Some("real"));
        assert_eq!(json_account(br#"{"account":""}"#, GENERIC), None);
        assert_eq!(json_account(br#"{"account":7}"#, GENERIC), None);
        assert_eq!(json_account(br#"{"account":"x"#, GENERIC), None);
        assert_eq!(json_account(b"]]]", GENERIC), None);
        let long = format!(r#"{{"account":"{}"}}"#, "a".repeat(MAX_HINT + 1));
        assert_eq!(json_account(long.as_bytes(), GENERIC), None);
    }

    #[test]
    fn deep_nesting_is_skipped_not_tracked() {
        let mut body = String::from(r#"{"x":"#);
        body.push_str(&"[".repeat(10 * MAX_DEPTH));
        body.push_str(&"]".repeat(10 * MAX_DEPTH));
        body.push_str(r#","account":"after"}"#);
        assert_eq!(
            json_account(body.as_bytes(), GENERIC).as_deref(),
            Some("after")
        );
    }

    #[test]
    fn reads_one_form_parameter() {
        let body = b"Body=To%3Dx&From=whatsapp%3A%2B1&To=whatsapp%3A%2B15550001&To=second";
        assert_eq!(
            form_param(body, "To").as_deref(),
            Some("whatsapp:+15550001")
        );
        assert_eq!(form_param(b"A=1&To=", "To"), None);
        assert_eq!(form_param(b"Tox=1", "To"), None);
    }
}
