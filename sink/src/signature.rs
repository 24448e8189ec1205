//! `X-Lull-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: lets a receiver
//! check that a batch came from lull and refuse replays of old ones (compare `t` with its clock).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header of lull's own timestamped *outbound* signature (deprecated: sent only while a plain
/// secret is configured, beside the Standard Webhooks headers). Not to be confused with the
/// retired *inbound* body-only `sha256=<hex>` of `/webhook/generic`, which shared the name and
/// is now refused.
pub const TIMESTAMPED_SIGNATURE_HEADER: &str = "x-lull-signature";

fn mac(secret: &[u8], t: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` signed at unix time `t`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

/// Why a signature did not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature timestamp {t} is outside the tolerance")]
    Expired { t: u64 },
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies a header for `body` at unix time `now`, accepting timestamps within `tolerance_s`.
/// Receivers in Rust can use this; others follow `docs/batch.md`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > tolerance_s {
        return Err(SignatureError::Expired { t });
    }
    let ok = v1
        .iter()
        .any(|sig| mac(secret, t, body).verify_slice(sig).is_ok());
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_tampering_and_replays() {
        let h = sign(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(b"s3cret", &h, b"{\"a\":1}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify(b"s3cret", &h, b"{\"a\":2}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &h, b"{\"a\":1}", 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", &h, b"{\"a\":1}", 1_700_001_000, 300),
            Err(SignatureError::Expired { t: 1_700_000_000 })
        );
        assert_eq!(
            verify(b"s3cret", "garbage", b"", 0, 300),
            Err(SignatureError::Malformed)
        );
    }
}
