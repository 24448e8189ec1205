//! What keeps another web site from using an operator's browser against the console. The ops
//! listener has no login (whoever reaches it is the operator: loopback by default), so the
//! threat is a page the operator visits that makes the browser talk to `127.0.0.1:9090`:
//!
//! - **DNS rebinding** (a hostile name resolving to 127.0.0.1 makes the console same-origin with
//!   the hostile page): every console request must name an IP address or `localhost` in its
//!   `Host` header, else 403. Reading pages is refused too, since they hold personal data.
//! - **Cross-site requests** (a hostile form posting to the console): every action is a POST
//!   with a form body (`application/x-www-form-urlencoded`), carrying a token bound to the
//!   browser's session (`csrf` = HMAC-SHA256 of the session cookie under a key minted at
//!   start-up); the session cookie is `HttpOnly; SameSite=Strict`, so a cross-site request does
//!   not even carry it; and a POST whose `Sec-Fetch-Site` is not `same-origin`, or whose
//!   `Origin` is not the console's own, is refused before its form is read. Every refusal is a
//!   403 naming the rule, and changes nothing.
//! - Pages are never cached (`no-store`), framed (`frame-ancestors 'none'`) or scripted (the
//!   content security policy allows no script at all).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The session cookie's name.
pub const COOKIE: &str = "lull_console";

/// A request the console refuses: answered with its status and plain text naming the rule.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("console: {}\n", self.reason),
        )
            .into_response()
    }
}

/// A refusal with `status`, naming the rule.
pub fn refuse(status: StatusCode, reason: &str) -> Refusal {
    Refusal {
        status,
        reason: reason.to_string(),
    }
}

/// The browser's session as a page sees it.
pub struct Session {
    /// The `Set-Cookie` value when the browser had no (valid) session yet.
    pub set_cookie: Option<String>,
    /// The CSRF token the page's forms carry.
    pub token: String,
}

/// The console's key for CSRF tokens: random per process, so a restart invalidates open forms.
pub struct Guard {
    key: [u8; 32],
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Guard {
    pub fn new() -> Guard {
        let mut key = [0u8; 32];
        // No random source at all is not a state to serve a console in; fail loudly at start.
        getrandom::fill(&mut key).expect("the operating system's random source");
        Guard { key }
    }

    fn mac(&self, session: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(session.as_bytes());
        mac
    }

    /// A page load: the `Host` rule, and the browser's session (a new one when it has none).
    pub fn page(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        host_allowed(headers)?;
        let (session, set_cookie) = match session_cookie(headers) {
            Some(s) => (s, None),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))?;
                let s = hex::encode(bytes);
                let cookie = format!("{COOKIE}={s}; Path=/console; HttpOnly; SameSite=Strict");
                (s, Some(cookie))
            }
        };
        let token = hex::encode(self.mac(&session).finalize().into_bytes());
        Ok(Session { set_cookie, token })
    }

    /// An action (a POST): the `Host` rule, `Sec-Fetch-Site` and `Origin` when the browser sent
    /// them, a form body, and the CSRF token of the session cookie.
    pub fn action(&self, headers: &HeaderMap, csrf: &str) -> Result<(), Refusal> {
        let host = host_allowed(headers)?;
        let forbidden = |why: &str| Err(refuse(StatusCode::FORBIDDEN, why));
        if let Some(site) = headers.get("sec-fetch-site") {
            if site.as_bytes() != b"same-origin" {
                return forbidden("cross-site request refused (Sec-Fetch-Site is not same-origin)");
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .is_some_and(|(scheme, rest)| {
                    (scheme == "http" || scheme == "https") && rest.eq_ignore_ascii_case(host)
                });
            if !ok {
                return forbidden("cross-site request refused (Origin is not this console)");
            }
        }
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !form {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "an action is a form post (application/x-www-form-urlencoded)",
            ));
        }
        let Some(session) = session_cookie(headers) else {
            return forbidden("no console session cookie (load a console page first)");
        };
        let Ok(given) = hex::decode(csrf.trim()) else {
            return forbidden("bad CSRF token");
        };
        if self.mac(&session).verify_slice(&given).is_err() {
            return forbidden("the CSRF token does not match this session (reload the page)");
        }
        Ok(())
    }
}

/// The `Host` header, when it names an IP address or `localhost` (any port); else a 403.
fn host_allowed(headers: &HeaderMap) -> Result<&str, Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok() {
        Ok(host)
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "Host {host:?} is not an IP address or localhost: refused (DNS rebinding); open \
                 the console by the ops listener's address"
            ),
        ))
    }
}

/// The session id from the `Cookie` header, when well formed (64 hex digits).
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_session_token_opens_actions_and_nothing_else_does() {
        let g = Guard::new();
        let first = g.page(&headers(&[("host", "127.0.0.1:9090")])).unwrap();
        let cookie = first.set_cookie.unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let session = cookie.split(';').next().unwrap().to_string();
        let form = "application/x-www-form-urlencoded";
        let ok = headers(&[
            ("host", "127.0.0.1:9090"),
            ("cookie", &session),
            ("content-type", form),
            ("origin", "http://127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin"),
        ]);
        // The same session's page gives the same token.
        let again = g.page(&ok).unwrap();
        assert!(again.set_cookie.is_none());
        assert_eq!(again.token, first.token);
        assert!(g.action(&ok, &first.token).is_ok());
        // Another session's token, no token, cross-site, another origin, a rebinding host, JSON.
        let other = Guard::new()
            .page(&headers(&[("host", "localhost")]))
            .unwrap();
        let status = |r: Result<(), Refusal>| r.unwrap_err().status;
        assert_eq!(status(g.action(&ok, &other.token)), StatusCode::FORBIDDEN);
        assert_eq!(status(g.action(&ok, "")), StatusCode::FORBIDDEN);
        let mut cross = ok.clone();
        cross.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(
            status(g.action(&cross, &first.token)),
            StatusCode::FORBIDDEN
        );
        let mut origin = ok.clone();
        origin.insert("origin", "http://evil.example".parse().unwrap());
        assert_eq!(
            status(g.action(&origin, &first.token)),
            StatusCode::FORBIDDEN
        );
        let mut rebound = ok.clone();
        rebound.insert("host", "evil.example:9090".parse().unwrap());
        assert_eq!(
            status(g.action(&rebound, &first.token)),
            StatusCode::FORBIDDEN
        );
        assert!(g.page(&rebound).is_err());
        let mut json = ok.clone();
        json.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(
            status(g.action(&json, &first.token)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut no_cookie = ok.clone();
        no_cookie.remove("cookie");
        assert_eq!(
            status(g.action(&no_cookie, &first.token)),
            StatusCode::FORBIDDEN
        );
        // IPv6 literals are addresses too.
        assert!(g.page(&headers(&[("host", "[::1]:9090")])).is_ok());
    }
}
