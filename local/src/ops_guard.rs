//! Who may use the ops listener's state-changing routes (`POST /redrive`,
//! `POST /conversations/pause`, `POST /conversations/resume`).
//!
//! Being bound to loopback is not enough: a web page open in the operator's browser can POST
//! to `127.0.0.1:9090` (a "simple" cross-site request, `text/plain`, needs no preflight) and pause
//! any tenant's conversation for a week. So each of these requests must:
//!
//! 1. not come from a browser on another site: an `Origin` other than the listener's own
//!    (`http://<Host>`), or `Sec-Fetch-Site: cross-site` / `same-site`, is refused (403);
//! 2. carry the ops token when one is set (`--ops-token` / `LULL_OPS_TOKEN` / `ops_token`, as
//!    `Authorization: Bearer <token>`, compared in constant time; several, comma-separated, to
//!    rotate) (401); on a non-loopback ops address the token is required: without one set,
//!    these routes answer 403 (the read-only `/healthz` and `/metrics` stay open for probes);
//! 3. say `Content-Type: application/json` (415), which a cross-site form or `fetch` without a
//!    CORS preflight cannot send.
//!
//! `lull redrive` and `lull conversations pause|resume` send all of this themselves.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lull_ingest::Secrets;

/// The rules of one ops listener.
#[derive(Clone, Debug)]
pub struct OpsGuard {
    tokens: Secrets,
    loopback: bool,
}

/// Why an ops request was refused: the status and a reason naming the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        metrics::counter!(lull_core::metrics::REJECTED_REQUESTS, "reason" => "ops").increment(1);
        tracing::warn!(
            status = self.status.as_u16(),
            reason = self.reason,
            "ops request refused"
        );
        (self.status, format!("{}\n", self.reason)).into_response()
    }
}

impl OpsGuard {
    /// The rules for a listener bound to an address that is `loopback` or not, with `tokens`
    /// (empty: no token).
    pub fn new(tokens: Secrets, loopback: bool) -> OpsGuard {
        OpsGuard { tokens, loopback }
    }

    /// Checks a state-changing request's headers (before its body is read).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        if cross_site(headers) {
            return Err(Refused {
                status: StatusCode::FORBIDDEN,
                reason: "cross-site request refused: the ops routes are not for browsers on \
                         other sites",
            });
        }
        if self.tokens.is_empty() {
            if !self.loopback {
                return Err(Refused {
                    status: StatusCode::FORBIDDEN,
                    reason: "the ops listener is not on loopback: set --ops-token \
                             (LULL_OPS_TOKEN) to use this route",
                });
            }
        } else {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().strip_prefix("Bearer "))
                .map(str::trim);
            if !bearer.is_some_and(|b| lull_ingest::auth::matches_any(&self.tokens, b)) {
                return Err(Refused {
                    status: StatusCode::UNAUTHORIZED,
                    reason: "missing or wrong ops token (Authorization: Bearer <--ops-token>)",
                });
            }
        }
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Refused {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason: "expected content-type: application/json",
            });
        }
        Ok(())
    }
}

/// True when a browser says the request comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none` (typed in the address bar), or an `Origin` that is not this listener's.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        if !matches!(site.trim(), "same-origin" | "none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN) {
        None => false,
        Some(origin) => {
            let own = text(header::HOST.as_str()).map(|h| format!("http://{}", h.trim()));
            origin.to_str().ok().map(str::trim) != own.as_deref()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const JSON: (&str, &str) = ("content-type", "application/json");
    const HOST: (&str, &str) = ("host", "127.0.0.1:9090");

    #[test]
    fn a_cli_request_on_loopback_passes() {
        let g = OpsGuard::new(Secrets::default(), true);
        assert_eq!(g.check(&headers(&[JSON, HOST])), Ok(()));
        let own = ("origin", "http://127.0.0.1:9090");
        assert_eq!(g.check(&headers(&[JSON, HOST, own])), Ok(()));
    }

    #[test]
    fn cross_site_requests_are_refused_whatever_they_carry() {
        let g = OpsGuard::new(Secrets::new(["tok"]), true);
        let auth = ("authorization", "Bearer tok");
        for bad in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let r = g.check(&headers(&[JSON, HOST, auth, bad])).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
        }
    }

    #[test]
    fn json_is_required() {
        let g = OpsGuard::new(Secrets::default(), true);
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let r = g
                .check(&headers(&[("content-type", ct), HOST]))
                .unwrap_err();
            assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let r = g.check(&headers(&[HOST])).unwrap_err();
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn a_set_token_is_required_and_any_rotated_one_works() {
        let g = OpsGuard::new(Secrets::new(["old", "new"]), true);
        let r = g.check(&headers(&[JSON, HOST])).unwrap_err();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = g
            .check(&headers(&[JSON, HOST, ("authorization", "Bearer nope")]))
            .unwrap_err();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        for t in ["Bearer old", "Bearer new"] {
            assert_eq!(
                g.check(&headers(&[JSON, HOST, ("authorization", t)])),
                Ok(())
            );
        }
    }

    #[test]
    fn off_loopback_the_token_is_required() {
        let open = OpsGuard::new(Secrets::default(), false);
        let r = open.check(&headers(&[JSON, HOST])).unwrap_err();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let with = OpsGuard::new(Secrets::new(["tok"]), false);
        let auth = ("authorization", "Bearer tok");
        assert_eq!(with.check(&headers(&[JSON, HOST, auth])), Ok(()));
    }
}
