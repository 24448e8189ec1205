//! Reply guard tokens: a batch's [`GuardClaim`] sealed into the path of its reply guard URL
//! (`docs/batch.md`, "The reply guard").
//!
//! The token is the only credential the guard route takes, so it must be unguessable, bound to
//! one batch, unforgeable and free of personal data (URLs end up in access logs): it is the
//! claim (conversation, generation, count at close, expiry) encrypted and authenticated with
//! ChaCha20-Poly1305 (`ring`, already linked for TLS) under a key of its own per batch, derived
//! from the deployment key and the batch id. The batch id travels in the clear beside it, as
//! the key's input and as associated data.
//!
//! **Version 2** (what [`GuardKey::seal`] makes) carries its 96-bit nonce in the token. The
//! nonce is synthetic (SIV-style): HMAC-SHA256 of the deployment key, the batch id and the
//! sealed plaintext, cut to 96 bits. Two seals of one batch with different claims (a changed
//! dedupe horizon moves `expires_at`) get different nonces, so a nonce is never reused with
//! another plaintext under a key; the same claim gets the same token, so a retried hand-off still
//! carries the same bytes (`docs/batch.md`: retries are identical, and receivers that check an
//! `Idempotency-Key` against the body rely on it). A random nonce would break that.
//!
//! **Version 1** (sealed before: a fixed zero nonce, safe only while every seal of a batch had
//! the same claim) is still opened, since its tokens are valid for the dedupe horizon; it is no
//! longer made.
//!
//! Opening checks the tag in constant time (`ring`), decodes into a fixed buffer (nothing sized
//! from the request is allocated before the tag verified) and tells a caller nothing but "no such
//! guard".
//!
//! The deployment key: derived from the data directory's key file locally, from the log secret
//! (`LULL_LOG_SECRET`, the `LogSecret` parameter) on AWS. Rotating it ends every guard issued
//! under the old one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use lull_core::guard::{GuardClaim, GuardSeal, ReplyGuard};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;
use uuid::Uuid;

/// The first token format: fixed zero nonce. Opened, never sealed any more.
const V1: u8 = 1;

/// The token format sealed now: a synthetic nonce carried in the token.
const V2: u8 = 2;

/// Version byte and batch id: the associated data.
const HEADER: usize = 17;

/// Poly1305's tag.
const TAG: usize = 16;

/// The longest token the route reads. The longest claim holds a conversation key of three
/// 256-byte parts (`lull_core::key::MAX_KEY_PART_BYTES`) of characters JSON escapes sixfold:
/// about 4.7 KB of JSON, 6.3 K characters of token; a usual one is about 200.
pub const MAX_TOKEN_CHARS: usize = 8192;

/// The decode buffer: what [`MAX_TOKEN_CHARS`] base64url characters decode to at most.
const MAX_RAW: usize = MAX_TOKEN_CHARS / 4 * 3;

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

/// A ChaCha20-Poly1305 key from 32 bytes of HMAC-SHA256.
fn aead_key(k: hmac::Tag) -> LessSafeKey {
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, k.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC-SHA256 output is a 32-byte key"));
    LessSafeKey::new(unbound)
}

impl GuardKey {
    /// The guard key derived from a deployment secret (its own purpose: the secret may also key
    /// other things, such as the log hashes).
    pub fn derive(secret: &[u8]) -> GuardKey {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let k = hmac::sign(&outer, b"lull reply guard key v1");
        GuardKey(hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()))
    }

    /// A version 1 token's key: HMAC(key, batch id).
    fn v1_key(&self, batch_id: &Uuid) -> LessSafeKey {
        aead_key(hmac::sign(&self.0, batch_id.as_bytes()))
    }

    /// A version 2 token's key: HMAC(key, "v2 seal\0" || batch id), apart from version 1's and
    /// from the nonces' (different inputs of one PRF).
    fn v2_key(&self, batch_id: &Uuid) -> LessSafeKey {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"v2 seal\0");
        ctx.update(batch_id.as_bytes());
        aead_key(ctx.sign())
    }

    /// A version 2 token's nonce: HMAC(key, "v2 nonce" || batch id || plaintext), 96 bits.
    fn v2_nonce(&self, batch_id: &Uuid, plain: &[u8]) -> [u8; NONCE_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"v2 nonce");
        ctx.update(batch_id.as_bytes());
        ctx.update(plain);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ctx.sign().as_ref()[..NONCE_LEN]);
        nonce
    }

    /// The token of `claim`: base64url(version 2, batch id, nonce, sealed claim).
    pub fn seal(&self, claim: &GuardClaim) -> String {
        let mut header = [0u8; HEADER];
        header[0] = V2;
        header[1..].copy_from_slice(claim.batch_id.as_bytes());
        // Serialising plain data with string keys cannot fail.
        let mut body = serde_json::to_vec(claim).unwrap_or_default();
        let nonce = self.v2_nonce(&claim.batch_id, &body);
        let sealed = self.v2_key(&claim.batch_id).seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        );
        if sealed.is_err() {
            // Only for inputs beyond ChaCha20's 256 GiB limit.
            return String::new();
        }
        let mut out = Vec::with_capacity(HEADER + NONCE_LEN + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The claim `token` was sealed from (version 2, or 1 from before), when it opens under
    /// this key.
    pub fn open(&self, token: &str) -> Result<GuardClaim, BadToken> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(BadToken);
        }
        let mut buf = [0u8; MAX_RAW];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token, &mut buf)
            .map_err(|_| BadToken)?;
        let raw = &mut buf[..n];
        if raw.len() < HEADER + TAG {
            return Err(BadToken);
        }
        let (header, rest) = raw.split_at_mut(HEADER);
        let header: [u8; HEADER] = (&*header).try_into().map_err(|_| BadToken)?;
        let batch_id = Uuid::from_slice(&header[1..]).map_err(|_| BadToken)?;
        let (key, nonce, sealed) = match header[0] {
            V1 => (self.v1_key(&batch_id), [0u8; NONCE_LEN], rest),
            V2 if rest.len() >= NONCE_LEN + TAG => {
                let (nonce, sealed) = rest.split_at_mut(NONCE_LEN);
                let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| BadToken)?;
                (self.v2_key(&batch_id), nonce, sealed)
            }
            _ => return Err(BadToken),
        };
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                sealed,
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

    /// A version 1 token of [`claim`] under `derive(b"deployment secret")`, as the code before
    /// version 2 sealed it (fixed zero nonce): such tokens are out there for the dedupe horizon.
    const V1_TOKEN: &str = "AQGQAAAAAHAAgAAAAAAAAAEnZLb2D1ICEQztYHfKXA_dWH_Hz0_CWfVY0f-9a88PdV9wzanVPCuNEoc-_YP_d-1M9ySDqvE1Tmb0sb0Ar55tzBREOFAVW9IITEq4DRljaX0Pwi0N357vM4VP6MlVUuCA38HqtrVBbl_UNgGNYlGttBqdwluSgbCNL2BLOEMp72ZWJR3WAY1WbRA";

    fn raw(t: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(t).unwrap()
    }

    fn token(raw: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(raw)
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
        assert_eq!(raw(&t)[0], V2);
        assert_eq!(k.open(&t), Ok(claim()));
        // No phone number or account in the clear.
        let text = String::from_utf8_lossy(&raw(&t)).to_string();
        assert!(!text.contains("16505551234") && !text.contains("106540352242922"));
        assert!(!t.contains("16505551234"));
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn tokens_sealed_before_version_2_still_open() {
        let k = GuardKey::derive(b"deployment secret");
        assert_eq!(k.open(V1_TOKEN), Ok(claim()));
        assert_eq!(
            GuardKey::derive(b"another deployment").open(V1_TOKEN),
            Err(BadToken)
        );
        // The same bytes under the version 2 byte: not a version 2 token.
        let mut r = raw(V1_TOKEN);
        r[0] = V2;
        assert_eq!(k.open(&token(&r)), Err(BadToken));
    }

    #[test]
    fn two_claims_of_one_batch_never_share_a_nonce() {
        // A dedupe horizon changed between two hand-offs of one batch: the same key, another
        // plaintext. Version 1 reused its nonce here; version 2 draws another.
        let k = GuardKey::derive(b"deployment secret");
        let a = k.seal(&claim());
        let mut later = claim();
        later.expires_at += 86_400_000;
        let b = k.seal(&later);
        let nonce = |t: &str| raw(t)[HEADER..HEADER + NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
        assert_eq!(k.open(&b), Ok(later));
        // Same length claims: the ciphertexts XOR to no plaintext difference.
        let (ra, rb) = (raw(&a), raw(&b));
        assert_eq!(ra.len(), rb.len());
        let differing = ra[HEADER + NONCE_LEN..]
            .iter()
            .zip(&rb[HEADER + NONCE_LEN..])
            .filter(|(x, y)| x != y)
            .count();
        assert!(differing > ra.len() / 2, "independent keystreams");
    }

    #[test]
    fn tampered_forged_foreign_truncated_and_oversized_tokens_do_not_open() {
        let k = GuardKey::derive(b"deployment secret");
        let t = k.seal(&claim());
        assert_eq!(
            GuardKey::derive(b"another deployment").open(&t),
            Err(BadToken)
        );
        let mut r = raw(&t);
        // Every byte flipped in turn: version, batch id, nonce, ciphertext, tag.
        for i in 0..r.len() {
            r[i] ^= 1;
            assert_eq!(k.open(&token(&r)), Err(BadToken), "byte {i}");
            r[i] ^= 1;
        }
        // Wrong versions.
        for v in [0u8, 3, 0xff] {
            let mut w = r.clone();
            w[0] = v;
            assert_eq!(k.open(&token(&w)), Err(BadToken), "version {v}");
        }
        // Truncated anywhere, and too long by a byte.
        for n in 0..r.len() {
            assert_eq!(k.open(&token(&r[..n])), Err(BadToken), "first {n} bytes");
        }
        let mut long = r.clone();
        long.push(0);
        assert_eq!(k.open(&token(&long)), Err(BadToken));
        // Not base64url, padded, or past the bound (a fixed buffer: nothing allocated for it).
        for bad in [
            String::new(),
            "!!!".into(),
            "AAAA".into(),
            format!("{t}="),
            format!("{t}A"),
            "A".repeat(MAX_TOKEN_CHARS),
            "A".repeat(MAX_TOKEN_CHARS + 1),
            "\u{e9}".repeat(MAX_TOKEN_CHARS),
        ] {
            assert_eq!(k.open(&bad), Err(BadToken), "{bad:.8}");
        }
        let mut other = claim();
        other.gen = 8;
        assert_ne!(k.seal(&other), t);
    }

    #[test]
    fn the_longest_claim_seals_into_a_token_the_route_reads() {
        let part = "\u{1}".repeat(lull_core::key::MAX_KEY_PART_BYTES);
        let mut c = claim();
        c.key =
            ConversationKey::new(Provider::Evolution, part.clone(), part.clone()).in_group(part);
        c.gen = u64::MAX;
        c.accepted = u64::MAX;
        c.expires_at = u64::MAX;
        c.closed_at = u64::MAX;
        let k = GuardKey::derive(b"s");
        let t = k.seal(&c);
        assert!(t.len() <= MAX_TOKEN_CHARS, "{}", t.len());
        assert_eq!(k.open(&t), Ok(c));
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
