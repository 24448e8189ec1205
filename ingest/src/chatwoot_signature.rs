//! Chatwoot's webhook signature, as its `Webhooks::Trigger#request_headers`
//! (`lib/webhooks/trigger.rb`) sends it when the webhook has a secret:
//!
//! ```text
//! X-Chatwoot-Timestamp: <unix seconds>
//! X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! X-Chatwoot-Delivery:  <a UUID per delivery, the same on each retry of it>
//! ```
//!
//! The timestamp is signed with the body, and one more than [`TOLERANCE`] from lull's clock is
//! refused, so a captured request can be replayed only within that window; the route refuses a
//! replay inside it by the delivery id and the signature (`crate::routes::chatwoot`). The MAC is
//! compared in constant time (`hmac`'s `verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::tenant::Secrets;

/// How far the signed timestamp may be from lull's clock, either way (5 minutes, as Standard
/// Webhooks and Stripe use).
pub const TOLERANCE_SECS: u64 = 300;

/// Why a signed request is refused (the 401 reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Chatwoot-Timestamp is not unix seconds")]
    BadTimestamp,
    #[error(
        "X-Chatwoot-Timestamp is more than 5 minutes from lull's clock (a replay, or a skewed clock)"
    )]
    OutsideTolerance,
    /// A wrong secret, a changed body, an unknown tenant or one without a Chatwoot secret: one
    /// answer for all, so a caller without the secret learns nothing.
    #[error("X-Chatwoot-Signature does not match (or this tenant has no chatwoot.secret)")]
    Mismatch,
}

/// Checks `signature` (`sha256=<hex>`) over `timestamp` and `body` with any of `secrets`, and
/// the timestamp against `now_secs`. The MAC is checked first: an unsigned caller never learns
/// whether its timestamp would have passed.
pub fn verify(
    secrets: &Secrets,
    signature: &str,
    timestamp: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<u64, SignatureError> {
    let sig = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h.trim()).ok())
        .ok_or(SignatureError::Mismatch)?;
    let matches = secrets
        .iter()
        .any(|secret| mac(secret, timestamp, body).is_some_and(|m| m.verify_slice(&sig).is_ok()));
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if ts.abs_diff(now_secs) > TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(ts)
}

/// The `X-Chatwoot-Signature` value Chatwoot sends for `body` at `timestamp` (for tests and
/// docs).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    match mac(secret, timestamp, body) {
        Some(m) => format!("sha256={}", hex::encode(m.finalize().into_bytes())),
        None => String::new(),
    }
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_and_refuses_tampering_and_old_timestamps() {
        let secrets = Secrets::new(["old", "new"]);
        let body = br#"{"event":"message_created"}"#;
        // HMAC-SHA256("new", "1700000000.{...}") computed independently with Python's hmac:
        // hmac.new(b"new", b"1700000000." + body, hashlib.sha256).hexdigest()
        let sig = sign("new", "1700000000", body);
        assert_eq!(
            sig,
            "sha256=f308a3f62ef21815560469934368c9be76cee835060d918067e35328fc793986"
        );
        assert_eq!(
            verify(&secrets, &sig, "1700000000", body, 1_700_000_100),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify(&secrets, &sig, "1700000000", b"{}", 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secrets, &sig, "1700000001", body, 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secrets, &sig, "1700000000", body, 1_700_000_301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(
                &Secrets::new(["other"]),
                &sig,
                "1700000000",
                body,
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
