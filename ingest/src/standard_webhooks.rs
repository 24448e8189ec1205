//! Standard Webhooks signatures (<https://www.standardwebhooks.com>) on the generic route, checked
//! with the maintained `standardwebhooks` crate: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64>` (several, space-separated, during a rotation).
//!
//! Unlike the retired body-only signature, the signed content includes the timestamp, and a
//! timestamp more than 5 minutes from lull's clock (the scheme's tolerance) is refused: a captured
//! signed request cannot be replayed later. Secrets are the tenant's generic secrets: a
//! `whsec_<base64>` secret's key is the decoded bytes, any other secret's key is its UTF-8
//! bytes: the sink's rule, called (`lull_sink::standard_webhooks::webhook`, `docs/batch.md`).

use axum::http::HeaderMap;
use standardwebhooks::WebhookError;

use crate::tenant::Secrets;

/// True when the request carries a Standard Webhooks signature (then it is checked as one).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(standardwebhooks::HEADER_WEBHOOK_SIGNATURE)
}

/// Checks the signature against every secret; the error is the reason given to the client.
pub fn verify(secrets: &Secrets, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let mut reason = "webhook-signature does not match the body";
    for secret in secrets.iter() {
        let key = lull_sink::standard_webhooks::webhook(secret, "generic secret");
        // A malformed whsec_ secret matches nothing (config validation names it).
        let Ok(key) = key else { continue };
        match key.verify(body, headers) {
            Ok(()) => return Ok(()),
            Err(WebhookError::TimestampTooOldError | WebhookError::FutureTimestampError) => {
                reason = "webhook-timestamp is more than 5 minutes from lull's clock (a replay, \
                          or a skewed clock)";
            }
            Err(WebhookError::MissingHeader(_) | WebhookError::InvalidHeader(_)) => {
                return Err("webhook-signature needs webhook-id and webhook-timestamp headers");
            }
            Err(WebhookError::InvalidTimestamp) => {
                return Err("webhook-timestamp is not unix seconds");
            }
            Err(_) => {}
        }
    }
    Err(reason)
}

/// The three headers that sign `body` as message `id` at unix second `t` (for tests and
/// clients; lull's own sink signs with `lull_sink`).
pub fn sign(secret: &str, id: &str, t: i64, body: &[u8]) -> Option<[(&'static str, String); 3]> {
    let key = lull_sink::standard_webhooks::webhook(secret, "generic secret").ok()?;
    Some([
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", key.sign(id, t, body).ok()?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn headers(h: [(&'static str, String); 3]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in h {
            map.insert(k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn verifies_with_any_secret_and_refuses_tampering_and_replays() {
        let secrets = Secrets::new(["old-plain", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        let body = br#"{"messages":[]}"#;
        for s in ["old-plain", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"] {
            let h = headers(sign(s, "msg_1", now(), body).unwrap());
            assert!(is_signed(&h));
            assert_eq!(verify(&secrets, &h, body), Ok(()));
            assert!(verify(&secrets, &h, br#"{"messages":[1]}"#).is_err());
        }
        let h = headers(sign("other", "msg_1", now(), body).unwrap());
        assert!(verify(&secrets, &h, body).is_err());
        let old = headers(sign("old-plain", "msg_1", now() - 600, body).unwrap());
        assert!(verify(&secrets, &old, body)
            .unwrap_err()
            .contains("5 minutes"));
        let mut no_id = headers(sign("old-plain", "msg_1", now(), body).unwrap());
        no_id.remove("webhook-id");
        assert!(verify(&secrets, &no_id, body)
            .unwrap_err()
            .contains("webhook-id"));
    }
}
