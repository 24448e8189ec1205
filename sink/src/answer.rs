//! What an HTTP sink's answer means: acknowledged, worth retrying, or refused.
//!
//! Only a 2xx from the configured URL itself acknowledges a batch: redirects are never followed
//! (a `301`/`302`/`303` would turn the POST into a body-less GET whose 200 "acknowledges" a batch
//! nobody received; a `307`/`308` would send the batch and its signature to another host), so a
//! 3xx is a failure worth retrying, with a hint to point the sink at the final URL. 408, 429 and
//! 5xx are worth retrying, honouring `Retry-After`; every other 4xx is a refusal that the same
//! batch would get again. What each class means for the batch is decided in the core.

use std::time::{Duration, SystemTime};

use lull_core::ports::SinkError;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

/// The hint logged with every redirect.
pub const REDIRECT_HINT: &str = "lull never follows redirects: point the sink at the final URL";

/// Classifies an answer that is not a 2xx. `url` is the URL the batch was posted to (for the
/// host in the reason and to resolve a relative `Location`); `now` is the wall clock, for a
/// `Retry-After` given as an HTTP date.
pub fn classify(status: StatusCode, headers: &HeaderMap, url: &Url, now: SystemTime) -> SinkError {
    let host = url.host_str().unwrap_or("sink");
    let code = status.as_u16();
    if status.is_redirection() {
        let to = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| url.join(loc).ok())
            .map(|u| u.host_str().unwrap_or("?").to_string())
            .unwrap_or_else(|| "nowhere (no Location header)".into());
        return SinkError::Retryable {
            reason: format!("{host} answered {status}, redirecting to {to}; {REDIRECT_HINT}"),
            retry_after: retry_after(headers, now),
            status: Some(code),
        };
    }
    let reason = format!("{host} answered {status}");
    if status.is_server_error() || code == 408 || code == 429 {
        SinkError::Retryable {
            reason,
            retry_after: retry_after(headers, now),
            status: Some(code),
        }
    } else {
        // 400, 401, 403, 404, 410, 413, 422 and every other status: a refusal. (1xx never reach
        // here: the HTTP client handles them itself.)
        SinkError::permanent(reason).with_status(code)
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is
/// zero; anything unparsable is ignored (the usual backoff applies).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A connection-level failure (no answer at all): always worth retrying.
pub fn transport(e: &reqwest::Error, host: &str) -> SinkError {
    let what = if e.is_timeout() {
        "timed out (no answer within the sink timeout)".to_string()
    } else if e.is_connect() {
        // Refused, unreachable, DNS, or the TLS handshake failed: the source chain says which.
        format!("connection failed: {}", chain(e))
    } else {
        format!("request failed: {}", chain(e))
    };
    SinkError::retryable(format!("{host}: {what}"))
}

/// The error and its sources, joined (reqwest's top-level message hides the cause, e.g. a TLS
/// handshake failure or a reset connection). URLs in these messages hold no personal data.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    // Bounded: error chains are short, but never trust a loop to end on its own.
    for _ in 0..8 {
        let Some(cause) = src else { break };
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 12:00:00 GMT").unwrap();
        let h = headers(&[("retry-after", "120")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        let h = headers(&[("retry-after", "Sun, 29 Nov 2026 12:00:30 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        let h = headers(&[("retry-after", "Sun, 29 Nov 2026 11:00:00 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn a_redirect_names_its_target_host_and_the_hint() {
        let url = Url::parse("http://bot.example/batches").unwrap();
        let h = headers(&[("location", "https://elsewhere.example/x")]);
        let e = classify(StatusCode::FOUND, &h, &url, SystemTime::now());
        assert_eq!(e.kind(), "retryable");
        assert!(e.reason().contains("302"), "{e}");
        assert!(e.reason().contains("elsewhere.example"), "{e}");
        assert!(e.reason().contains("final URL"), "{e}");
        let h = headers(&[("location", "/other")]);
        let e = classify(StatusCode::PERMANENT_REDIRECT, &h, &url, SystemTime::now());
        assert!(e.reason().contains("redirecting to bot.example"), "{e}");
    }
}
