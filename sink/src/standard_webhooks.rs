//! Signing hand-offs with Standard Webhooks (<https://www.standardwebhooks.com>), through the
//! maintained `standardwebhooks` crate, so consumers verify with the library of their language:
//!
//! - `webhook-id`: the batch id (the same on every retry of the batch),
//! - `webhook-timestamp`: unix seconds of this attempt,
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, one per
//!   configured secret, space-separated, so a rotation can be staged: the consumer accepts the
//!   batch when any one verifies.
//!
//! A secret is either a Standard Webhooks secret, `whsec_<base64 key>`, whose key is the decoded
//! bytes (what every `standardwebhooks` library expects), or a plain secret from before, whose
//! key is its UTF-8 bytes as they are (the libraries take raw key bytes too; see
//! `docs/batch.md`, "Signatures").

use standardwebhooks::Webhook;

/// The prefix of a Standard Webhooks secret.
pub const WHSEC_PREFIX: &str = "whsec_";

/// The one rule for a secret's key, signing out and verifying in: `whsec_<base64>` is the
/// decoded bytes, any other secret its UTF-8 bytes. The error names what is wrong, never the
/// secret (`what` says which setting it is).
pub fn webhook(secret: &str, what: &str) -> Result<Webhook, String> {
    if secret.starts_with(WHSEC_PREFIX) {
        Webhook::new(secret).map_err(|e| {
            format!("a {what} starts with {WHSEC_PREFIX} but the rest is not base64 ({e})")
        })
    } else {
        Webhook::from_bytes(secret.as_bytes().to_vec())
            .map_err(|e| format!("a {what} is unusable ({e})"))
    }
}

/// One signing key, checked when the sink is configured.
#[derive(Clone)]
pub struct SigningKey {
    webhook: std::sync::Arc<Webhook>,
    /// A plain (pre-Standard-Webhooks) secret: also signs the deprecated `X-Lull-Signature`.
    legacy: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(if self.legacy.is_some() {
            "SigningKey(plain)"
        } else {
            "SigningKey(whsec)"
        })
    }
}

impl SigningKey {
    /// Parses a configured secret; the error names what is wrong (never the secret itself).
    pub fn parse(secret: &str) -> Result<SigningKey, String> {
        if secret.is_empty() {
            return Err("a sink signing secret is empty".into());
        }
        let webhook = webhook(secret, "sink signing secret")?;
        Ok(SigningKey {
            webhook: std::sync::Arc::new(webhook),
            legacy: (!secret.starts_with(WHSEC_PREFIX)).then(|| secret.to_string()),
        })
    }

    /// `v1,<base64>` for `body` sent as message `id` at unix second `t`.
    fn sign(&self, id: &str, t: i64, body: &[u8]) -> Option<String> {
        self.webhook.sign(id, t, body).ok()
    }
}

/// The headers that sign `body` as message `id` at unix second `t` with every key: the three
/// Standard Webhooks headers and, while a plain secret is configured, the deprecated
/// `X-Lull-Signature` made with the first plain one. `None` when the body is not UTF-8 (a batch
/// always is: it is JSON).
pub fn headers(
    keys: &[SigningKey],
    id: &str,
    t: i64,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    if keys.is_empty() {
        return Some(Vec::new());
    }
    let mut sigs = Vec::with_capacity(keys.len());
    for k in keys {
        sigs.push(k.sign(id, t, body)?);
    }
    let mut out = vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", sigs.join(" ")),
    ];
    if let Some(plain) = keys.iter().find_map(|k| k.legacy.as_deref()) {
        let t = u64::try_from(t).unwrap_or(0);
        out.push((
            crate::signature::TIMESTAMPED_SIGNATURE_HEADER,
            crate::signature::sign(plain.as_bytes(), t, body),
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(secret: &str, id: &str, t: i64, body: &[u8], sig: &str) -> bool {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", t.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        let wh = if secret.starts_with(WHSEC_PREFIX) {
            Webhook::new(secret).unwrap()
        } else {
            Webhook::from_bytes(secret.as_bytes().to_vec()).unwrap()
        };
        wh.verify(body, &h).is_ok()
    }

    #[test]
    fn matches_the_specifications_test_vector() {
        // The vector of the Standard Webhooks reference libraries.
        let k = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let h = headers(
            &[k],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(
            h[2],
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string()
            )
        );
        assert_eq!(h.len(), 3, "no legacy header for a whsec_ secret");
    }

    #[test]
    fn signs_with_every_key_and_each_verifies_alone() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let new = "plain-old-secret";
        let keys = [
            SigningKey::parse(old).unwrap(),
            SigningKey::parse(new).unwrap(),
        ];
        let body = br#"{"batch_id":"b"}"#;
        let h = headers(&keys, "b", now, body).unwrap();
        let sig = &h.iter().find(|(n, _)| *n == "webhook-signature").unwrap().1;
        assert_eq!(sig.split(' ').count(), 2);
        assert!(verify(old, "b", now, body, sig));
        assert!(verify(new, "b", now, body, sig));
        assert!(!verify(new, "b", now, br#"{"batch_id":"c"}"#, sig));
        let legacy = &h.iter().find(|(n, _)| *n == "x-lull-signature").unwrap().1;
        let now = u64::try_from(now).unwrap();
        crate::verify(new.as_bytes(), legacy, body, now, 60).unwrap();
    }

    #[test]
    fn bad_secrets_are_named_without_their_value() {
        let e = SigningKey::parse("whsec_not base64!").unwrap_err();
        assert!(e.contains("whsec_") && !e.contains("not base64!"), "{e}");
        assert!(SigningKey::parse("").is_err());
        assert!(headers(&[], "b", 0, b"{}").unwrap().is_empty());
    }
}
