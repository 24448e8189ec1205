//! Reply guard tokens: a batch's [`GuardClaim`] sealed into the path of its reply guard URL
//! (`docs/batch.md`, "The reply guard").
//!
//! The token is the only credential the guard route takes, so it must be unguessable, bound to
//! one batch, unforgeable and free of personal data (URLs end up in access logs): it is the
//! claim (conversation, generation, count at close, expiry) encrypted and authenticated with
//! ChaCha20-Poly1305 (`ring`, already linked for TLS) under a key of its own per batch,
//! HMAC-SHA256(deployment key, batch id). The batch id travels in the clear beside it, as the
//! key's input and as associated data. One key per batch id (unique forever) makes a fixed
//! nonce safe and the token deterministic: a retried hand-off carries the same bytes. Opening
//! checks the tag in constant time (`ring`) and tells a caller nothing but "no such guard".
//!
//! The deployment key: locally derived from the data directory's key file, on AWS a Secrets
//! Manager secret (`docs/deploy.md`). Rotating it ends every guard issued under the old one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lull_core::guard::{GuardClaim, GuardSeal, ReplyGuard};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;
use uuid::Uuid;

/// The token format's version (its first byte).
const VERSION: u8 = 1;

/// The longest token the route reads (a claim holds a conversation key of at most three
/// 256-byte parts, JSON-escaped: well under this).
pub const MAX_TOKEN_CHARS: usize = 4096;

/// The path of the guard route, before the token.
pub const GUARD_PATH: &str = "/guard/";

/// A token that does not open: malformed, forged, or sealed under another key. Deliberately
/// one case, so an answer reveals nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no such reply guard")]
pub struct BadToken;

/// The deployment's reply guard key. `Debug` never prints it.
#[derive(Clone)]
pub struct GuardKey(hmac::Key);

impl std::fmt::Debug for GuardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuardKey(redacted)")
    }
}

impl GuardKey {
    /// The guard key derived from a deployment secret (its own purpose: the secret may also key
    /// other things, such as the log hashes).
    pub fn derive(secret: &[u8]) -> GuardKey {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let k = hmac::sign(&outer, b"lull reply guard key v1");
        GuardKey(hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()))
    }

    fn aead(&self, batch_id: &Uuid) -> LessSafeKey {
        let k = hmac::sign(&self.0, batch_id.as_bytes());
        // 32 bytes of HMAC-SHA256 are exactly a ChaCha20-Poly1305 key.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, k.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC-SHA256 output is a 32-byte key"));
        LessSafeKey::new(unbound)
    }

    /// The token of `claim`: base64url(version, batch id, sealed claim).
    pub fn seal(&self, claim: &GuardClaim) -> String {
        let mut header = [0u8; 17];
        header[0] = VERSION;
        header[1..].copy_from_slice(claim.batch_id.as_bytes());
        // Serialising plain data with string keys cannot fail.
        let mut body = serde_json::to_vec(claim).unwrap_or_default();
        let sealed = self.aead(&claim.batch_id).seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::from(header),
            &mut body,
        );
        if sealed.is_err() {
            // Only for inputs beyond ChaCha20's 256 GiB limit.
            return String::new();
        }
        let mut out = header.to_vec();
        out.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The claim `token` was sealed from, when it opens under this key.
    pub fn open(&self, token: &str) -> Result<GuardClaim, BadToken> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(BadToken);
        }
        let mut raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadToken)?;
        if raw.len() < 17 + 16 || raw[0] != VERSION {
            return Err(BadToken);
        }
        let mut header = [0u8; 17];
        header.copy_from_slice(&raw[..17]);
        let batch_id = Uuid::from_slice(&header[1..]).map_err(|_| BadToken)?;
        let plain = self
            .aead(&batch_id)
            .open_in_place(
                Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
                Aad::from(header),
                &mut raw[17..],
            )
            .map_err(|_| BadToken)?;
        let mut claim: GuardClaim = serde_json::from_slice(plain).map_err(|_| BadToken)?;
        claim.batch_id = batch_id;
        Ok(claim)
    }
}

/// Seals claims into URLs under a public base URL (`--public-url`; on AWS the HTTP API's URL).
#[derive(Clone, Debug)]
pub struct GuardUrls {
    base: String,
    key: GuardKey,
}

impl GuardUrls {
    pub fn new(base: &str, key: GuardKey) -> GuardUrls {
        GuardUrls {
            base: base.trim_end_matches('/').to_string(),
            key,
        }
    }
}

impl GuardSeal for GuardUrls {
    fn reply_guard(&self, claim: &GuardClaim) -> ReplyGuard {
        ReplyGuard {
            url: format!("{}{GUARD_PATH}{}", self.base, self.key.seal(claim)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::{ConversationKey, Provider};

    fn claim() -> GuardClaim {
        GuardClaim {
            key: ConversationKey::new(Provider::Meta, "106540352242922", "16505551234"),
            gen: 7,
            batch_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            accepted: 3,
            expires_at: 1_800_000_000_000,
            closed_at: 1_799_000_000_000,
        }
    }

    #[test]
    fn a_token_opens_to_its_claim_and_is_the_same_on_every_retry() {
        let k = GuardKey::derive(b"deployment secret");
        let t = k.seal(&claim());
        assert_eq!(
            t,
            k.seal(&claim()),
            "deterministic: retries carry the same bytes"
        );
        assert_eq!(k.open(&t), Ok(claim()));
        // No phone number or account in the clear.
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("16505551234") && !text.contains("106540352242922"));
        assert!(!t.contains("16505551234"));
    }

    #[test]
    fn forged_tampered_foreign_and_oversized_tokens_do_not_open() {
        let k = GuardKey::derive(b"deployment secret");
        let t = k.seal(&claim());
        assert_eq!(
            GuardKey::derive(b"another deployment").open(&t),
            Err(BadToken)
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in [0, 5, 20, raw.len() - 1] {
            raw[i] ^= 1;
            assert_eq!(
                k.open(&URL_SAFE_NO_PAD.encode(&raw)),
                Err(BadToken),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        // Another batch's id with this batch's sealed claim.
        raw[16] ^= 0x40;
        assert_eq!(k.open(&URL_SAFE_NO_PAD.encode(&raw)), Err(BadToken));
        for bad in ["", "!!!", "AAAA", &"A".repeat(MAX_TOKEN_CHARS + 1)] {
            assert_eq!(k.open(bad), Err(BadToken), "{bad:.8}");
        }
        let mut other = claim();
        other.gen = 8;
        assert_ne!(k.seal(&other), t);
    }

    #[test]
    fn urls_join_the_base_and_the_token() {
        let k = GuardKey::derive(b"s");
        let u = GuardUrls::new("https://lull.example.com/", k.clone()).reply_guard(&claim());
        let token = u
            .url
            .strip_prefix("https://lull.example.com/guard/")
            .unwrap();
        assert_eq!(k.open(token), Ok(claim()));
        assert_eq!(format!("{k:?}"), "GuardKey(redacted)");
    }
}
