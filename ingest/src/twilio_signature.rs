//! Twilio's request signature checked over the raw form body, before any parameter is decoded
//! into a string of its own.
//!
//! Twilio signs the URL followed by every POST parameter's name and value, sorted by name (and
//! by value for repeated names), decoded. Building that string (or the parameter list) would
//! copy the body once or twice before the request is known to be Twilio's; here the pairs are
//! kept as slices of the body (at most [`MAX_PARAMS`] of them), sorted by their decoded bytes,
//! and decoded on the fly into the MAC through a small buffer. Twilio's Python validator drops
//! repeated identical pairs while its Node one keeps them: when the body has such pairs, both
//! forms are tried.
//!
//! [`MAX_PARAMS`]: crate::parse::twilio::MAX_PARAMS

use std::cmp::Ordering;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::parse::twilio::MAX_PARAMS;
use crate::tenant::Secrets;

/// The hash of a Twilio signature: HMAC-SHA1 with the auth token (the default), or the
/// algorithm `X-Twilio-Webhooks-Signature-Settings` names when a webhook shared key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwilioAlgorithm {
    HmacSha1,
    HmacSha256,
}

/// The bytes of one form-encoded name or value, decoded (`+` is a space, `%XX` a byte; a `%`
/// not followed by two hex digits stays as is), as `application/x-www-form-urlencoded` says.
#[derive(Clone)]
struct Decoded<'a> {
    raw: &'a [u8],
    at: usize,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.raw.get(self.at)?;
        self.at += 1;
        match b {
            b'+' => Some(b' '),
            b'%' => {
                let hi = self.raw.get(self.at).copied().and_then(hex);
                let lo = self.raw.get(self.at + 1).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        self.at += 2;
                        Some(h * 16 + l)
                    }
                    _ => Some(b'%'),
                }
            }
            _ => Some(b),
        }
    }
}

fn decoded(raw: &[u8]) -> Decoded<'_> {
    Decoded { raw, at: 0 }
}

/// One parameter as slices of the body.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The parameters of `body` as slices, in body order (empty pieces between `&` skipped, as
/// form decoders do); `None` when there are more than [`MAX_PARAMS`].
fn pairs(body: &[u8]) -> Option<Vec<Pair<'_>>> {
    let mut out = Vec::new();
    for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_PARAMS {
            return None;
        }
        out.push(match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &piece[piece.len()..]),
        });
    }
    Some(out)
}

/// Why a form `body` cannot be a Twilio request at all, checked before its signature (no
/// parameter is decoded): it is not UTF-8, or it has more than [`MAX_PARAMS`] parameters.
pub fn check_envelope(body: &[u8]) -> Result<(), String> {
    if std::str::from_utf8(body).is_err() {
        return Err("twilio: body is not UTF-8".into());
    }
    if pairs(body).is_none() {
        return Err(format!("twilio: more than {MAX_PARAMS} parameters"));
    }
    Ok(())
}

fn cmp_pairs(a: &Pair<'_>, b: &Pair<'_>) -> Ordering {
    decoded(a.0)
        .cmp(decoded(b.0))
        .then_with(|| decoded(a.1).cmp(decoded(b.1)))
}

enum TwilioMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl TwilioMac {
    fn new(algorithm: TwilioAlgorithm, key: &str) -> Option<TwilioMac> {
        Some(match algorithm {
            TwilioAlgorithm::HmacSha1 => {
                TwilioMac::Sha1(Hmac::new_from_slice(key.as_bytes()).ok()?)
            }
            TwilioAlgorithm::HmacSha256 => {
                TwilioMac::Sha256(Hmac::new_from_slice(key.as_bytes()).ok()?)
            }
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            TwilioMac::Sha1(m) => m.update(data),
            TwilioMac::Sha256(m) => m.update(data),
        }
    }

    /// Feeds decoded bytes through a fixed buffer.
    fn update_decoded(&mut self, raw: &[u8]) {
        let mut buf = [0u8; 1024];
        let mut n = 0;
        for b in decoded(raw) {
            buf[n] = b;
            n += 1;
            if n == buf.len() {
                self.update(&buf);
                n = 0;
            }
        }
        self.update(&buf[..n]);
    }

    fn matches(self, sig: &[u8]) -> bool {
        let mac = match self {
            TwilioMac::Sha1(m) => m.finalize().into_bytes().to_vec(),
            TwilioMac::Sha256(m) => m.finalize().into_bytes().to_vec(),
        };
        bool::from(mac.as_slice().ct_eq(sig))
    }
}

/// True when `sig` (decoded from `X-Twilio-Signature`) is Twilio's signature of `url` and the
/// form `body` under any of `keys` with `algorithm`. A body of more than [`MAX_PARAMS`]
/// parameters never matches.
pub fn verify_form(
    algorithm: TwilioAlgorithm,
    keys: &Secrets,
    sig: &[u8],
    urls: &[String],
    body: &[u8],
) -> bool {
    let Some(mut sorted) = pairs(body) else {
        return false;
    };
    sorted.sort_by(cmp_pairs);
    let repeated = sorted
        .windows(2)
        .any(|w| cmp_pairs(&w[0], &w[1]) == Ordering::Equal);
    let variants: &[bool] = if repeated { &[false, true] } else { &[false] };
    keys.iter().any(|key| {
        urls.iter().any(|url| {
            variants.iter().any(|&dedup| {
                let Some(mut mac) = TwilioMac::new(algorithm, key) else {
                    return false;
                };
                mac.update(url.as_bytes());
                for (i, pair) in sorted.iter().enumerate() {
                    if dedup && i > 0 && cmp_pairs(&sorted[i - 1], pair) == Ordering::Equal {
                        continue;
                    }
                    mac.update_decoded(pair.0);
                    mac.update_decoded(pair.1);
                }
                mac.matches(sig)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_a_form_decoder() {
        let d = |s: &str| String::from_utf8(decoded(s.as_bytes()).collect()).unwrap();
        assert_eq!(d("a+b%20c%2B%3d"), "a b c+=");
        assert_eq!(d("100%"), "100%");
        assert_eq!(d("%zz%4"), "%zz%4");
        assert_eq!(d("%C3%A9"), "é");
    }

    #[test]
    fn too_many_parameters_never_match() {
        let body = "a=1&".repeat(MAX_PARAMS + 1);
        assert!(pairs(body.as_bytes()).is_none());
        assert!(check_envelope(body.as_bytes()).unwrap_err().contains("256"));
        assert!(check_envelope(b"Body=\xff").is_err());
        assert_eq!(pairs(b"&&a=1&&b&").unwrap().len(), 2);
    }
}
