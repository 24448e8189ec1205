//! Signature and credential checks, all in constant time.
//!
//! - Meta: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body with the app secret.
//! - Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 of the public URL followed by every POST
//!   parameter's name and value, sorted by name, under the auth token; or, when
//!   `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256` comes with it, the
//!   same string under a webhook shared key with the named algorithm.
//! - Generic: Standard Webhooks headers (`crate::standard_webhooks`); the body-only
//!   `X-Lull-Signature: sha256=<hex>` is retired (`routes::generic` refuses it).
//! - WAHA: `X-Webhook-Hmac: <hex>`, HMAC-SHA512 of the raw body with the webhook's HMAC key
//!   (`X-Webhook-Hmac-Algorithm: sha512`).
//! - Evolution (which signs nothing): a shared token compared in constant time, or an HS256 JWT
//!   made by Evolution from its `jwt_key`, verified by hand (a JWT crate would be the biggest
//!   dependency of the webhook Lambda for 30 lines of HMAC).
//!
//! Every check takes a list of secrets: any one matching is enough, so secrets rotate without
//! refusing traffic.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::tenant::Secrets;

/// True when `header` is `sha256=<hex>` of HMAC-SHA256(`body`) under any of `secrets`.
pub fn verify_sha256_header(secrets: &Secrets, header: &str, body: &[u8]) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    hex_mac_matches::<Hmac<Sha256>>(secrets, hex_sig, body)
}

/// True when `hex_sig` decodes to the MAC `M` of `body` under any of `secrets`.
fn hex_mac_matches<M: Mac + hmac::digest::KeyInit>(
    secrets: &Secrets,
    hex_sig: &str,
    body: &[u8],
) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    secrets.iter().any(|secret| {
        <M as Mac>::new_from_slice(secret.as_bytes())
            .map(|mut mac| {
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            })
            .unwrap_or(false)
    })
}

/// `sha256=<hex>` of HMAC-SHA256(`body`) under `secret` (for tests, clients and docs).
pub fn sign_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// True when `hex_sig` is the hex HMAC-SHA512 of `body` under any of `secrets` (WAHA).
pub fn verify_sha512_hex(secrets: &Secrets, hex_sig: &str, body: &[u8]) -> bool {
    hex_mac_matches::<Hmac<Sha512>>(secrets, hex_sig, body)
}

/// The hex HMAC-SHA512 of `body` under `secret`, as WAHA sends it in `X-Webhook-Hmac`.
pub fn sign_sha512_hex(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha512>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

// Defined beside the Twilio signature it hashes; named here, where the header choosing it is read.
pub use crate::twilio_signature::TwilioAlgorithm;

/// `X-Twilio-Webhooks-Signature-Settings` names an algorithm lull does not know.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported Twilio signature algorithm")]
pub struct UnsupportedAlgorithm;

/// The algorithm named by `X-Twilio-Webhooks-Signature-Settings` (`key=<id>,algorithm=<name>`):
/// `Ok(None)` when the header names none (HMAC-SHA1 then), an error for an algorithm lull does
/// not know (refused, as Twilio's own validators do).
pub fn twilio_settings_algorithm(
    header: &str,
) -> Result<Option<TwilioAlgorithm>, UnsupportedAlgorithm> {
    for part in header.split(',') {
        if let Some((name, value)) = part.split_once('=') {
            let value = value.trim();
            if name.trim() == "algorithm" && !value.is_empty() {
                return match value.to_ascii_uppercase().as_str() {
                    "HMAC_SHA1" => Ok(Some(TwilioAlgorithm::HmacSha1)),
                    "HMAC_SHA256" => Ok(Some(TwilioAlgorithm::HmacSha256)),
                    _ => Err(UnsupportedAlgorithm),
                };
            }
        }
    }
    Ok(None)
}

/// The strings Twilio may have signed: the URL, then each parameter's name and value, sorted by
/// name (and by value for repeated names). Twilio's Python validator drops repeated identical
/// pairs while its Node one keeps them; when the body has such pairs both forms are returned.
pub fn twilio_signed_strings(url: &str, params: &[(String, String)]) -> Vec<String> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let join = |pairs: &[&(String, String)]| {
        let mut s = String::with_capacity(
            url.len() + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
        );
        s.push_str(url);
        for (k, v) in pairs {
            s.push_str(k);
            s.push_str(v);
        }
        s
    };
    let mut out = vec![join(&sorted)];
    let before = sorted.len();
    sorted.dedup();
    if sorted.len() != before {
        out.push(join(&sorted));
    }
    out
}

/// The string Twilio signs, with every parameter (see [`twilio_signed_strings`]).
pub fn twilio_signed_string(url: &str, params: &[(String, String)]) -> String {
    twilio_signed_strings(url, params).swap_remove(0)
}

fn twilio_mac(algorithm: TwilioAlgorithm, key: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algorithm {
        TwilioAlgorithm::HmacSha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).ok()?;
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        TwilioAlgorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    })
}

/// Twilio's signature (base64 HMAC-SHA1) of `url` and `params` under `token`.
pub fn sign_twilio(token: &str, url: &str, params: &[(String, String)]) -> String {
    sign_twilio_with(TwilioAlgorithm::HmacSha1, token, url, params)
}

/// Twilio's signature of `url` and `params` under `key` with `algorithm`.
pub fn sign_twilio_with(
    algorithm: TwilioAlgorithm,
    key: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    twilio_mac(algorithm, key, twilio_signed_string(url, params).as_bytes())
        .map(|m| STANDARD.encode(m))
        .unwrap_or_default()
}

/// True when `header` is Twilio's HMAC-SHA1 signature of `url` and `params` under any of
/// `tokens`.
pub fn verify_twilio(
    tokens: &Secrets,
    header: &str,
    url: &str,
    params: &[(String, String)],
) -> bool {
    verify_twilio_with(TwilioAlgorithm::HmacSha1, tokens, header, url, params)
}

/// True when `header` is Twilio's signature of `url` and `params` under any of `keys` with
/// `algorithm` (constant-time comparison). The routes check the raw body instead
/// ([`crate::twilio_signature::verify_form`]); this encodes `params` as Twilio posts them.
pub fn verify_twilio_with(
    algorithm: TwilioAlgorithm,
    keys: &Secrets,
    header: &str,
    url: &str,
    params: &[(String, String)],
) -> bool {
    let Ok(sig) = STANDARD.decode(header.trim()) else {
        return false;
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    crate::twilio_signature::verify_form(algorithm, keys, &sig, &[url.to_string()], body.as_bytes())
}

/// True when `given` equals any of `secrets` (constant time for equal lengths).
pub fn matches_any(secrets: &Secrets, given: &str) -> bool {
    let mut found = subtle::Choice::from(0);
    for s in secrets.iter() {
        found |= s.as_bytes().ct_eq(given.as_bytes());
    }
    found.into()
}

/// Why a JWT was refused (kept for debug logs; the client only hears "unauthorized").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not three dot-separated parts")]
    Shape,
    #[error("bad base64 or JSON")]
    Encoding,
    #[error("algorithm is not HS256")]
    Algorithm,
    #[error("signature does not match any key")]
    Signature,
    #[error("no exp claim")]
    NoExpiry,
    #[error("expired")]
    Expired,
}

/// Verifies an HS256 JWT under any of `keys`, and that its `exp` (seconds) is after `now_secs`.
pub fn verify_jwt_hs256(keys: &Secrets, token: &str, now_secs: u64) -> Result<(), JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Encoding)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(JwtError::Algorithm);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Encoding)?;
    let signed_part_len = h.len() + 1 + p.len();
    let signed = token.trim().get(..signed_part_len).ok_or(JwtError::Shape)?;
    let ok = keys.iter().any(|key| {
        Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .map(|mut mac| {
                mac.update(signed.as_bytes());
                mac.verify_slice(&sig).is_ok()
            })
            .unwrap_or(false)
    });
    if !ok {
        return Err(JwtError::Signature);
    }
    let payload: serde_json::Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Encoding)?;
    let exp = payload
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or(JwtError::NoExpiry)?;
    if exp <= now_secs as f64 {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// Makes an HS256 JWT with `claims` (tests and docs).
pub fn make_jwt_hs256(key: &str, claims: &serde_json::Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{h}.{p}");
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(v: &[&str]) -> Secrets {
        Secrets::new(v.iter().copied())
    }

    #[test]
    fn sha512_matches_wahas_documented_example() {
        // The example of WAHA's webhook docs (devlikeapro/waha-docs, content/docs/how-to/events).
        let body = br#"{"event":"message","session":"default","engine":"WEBJS"}"#;
        let expected = "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8\
                        097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89";
        assert_eq!(sign_sha512_hex("my-secret-key", body), expected);
        let keys = secrets(&["old", "my-secret-key"]);
        assert!(verify_sha512_hex(&keys, expected, body));
        assert!(verify_sha512_hex(&keys, &expected.to_uppercase(), body));
        assert!(!verify_sha512_hex(&secrets(&["old"]), expected, body));
        assert!(!verify_sha512_hex(&keys, expected, b"{}"));
        assert!(!verify_sha512_hex(&keys, "zz", body));
    }

    #[test]
    fn sha256_header_accepts_any_rotated_secret() {
        let sig = sign_sha256("new", b"body");
        assert!(verify_sha256_header(
            &secrets(&["old", "new"]),
            &sig,
            b"body"
        ));
        assert!(!verify_sha256_header(&secrets(&["old"]), &sig, b"body"));
        assert!(!verify_sha256_header(&secrets(&["new"]), &sig, b"other"));
        assert!(!verify_sha256_header(
            &secrets(&["new"]),
            "sha1=00",
            b"body"
        ));
        assert!(!verify_sha256_header(
            &secrets(&["new"]),
            "sha256=zz",
            b"body"
        ));
    }

    #[test]
    fn twilio_signature_matches_twilios_documented_example() {
        // The example from Twilio's "Validating requests" documentation.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sig = sign_twilio("12345", url, &params);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(verify_twilio(&secrets(&["x", "12345"]), &sig, url, &params));
        assert!(!verify_twilio(&secrets(&["x"]), &sig, url, &params));
    }

    #[test]
    fn jwt_checks_signature_algorithm_and_expiry() {
        let keys = secrets(&["k1"]);
        let good = make_jwt_hs256("k1", &serde_json::json!({"exp": 2000, "app": "evolution"}));
        assert_eq!(verify_jwt_hs256(&keys, &good, 1000), Ok(()));
        assert_eq!(verify_jwt_hs256(&keys, &good, 2000), Err(JwtError::Expired));
        assert_eq!(
            verify_jwt_hs256(&secrets(&["k2"]), &good, 1000),
            Err(JwtError::Signature)
        );
        let no_exp = make_jwt_hs256("k1", &serde_json::json!({"app": "evolution"}));
        assert_eq!(
            verify_jwt_hs256(&keys, &no_exp, 1000),
            Err(JwtError::NoExpiry)
        );
        assert_eq!(verify_jwt_hs256(&keys, "a.b", 1000), Err(JwtError::Shape));
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"exp":9999}"#)
        );
        assert_eq!(
            verify_jwt_hs256(&keys, &none_alg, 1000),
            Err(JwtError::Algorithm)
        );
    }

    #[test]
    fn token_match_is_exact() {
        let s = secrets(&["abc", "def"]);
        assert!(matches_any(&s, "def"));
        assert!(!matches_any(&s, "de"));
        assert!(!matches_any(&s, ""));
        assert!(!matches_any(&Secrets::default(), ""));
    }
}
