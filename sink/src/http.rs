//! The HTTP sink: POST the batch JSON to the AI step.
//!
//! Headers: `Idempotency-Key: <batch_id>` (a retried hand-off carries the same id, so the
//! receiver can drop repeats) and the Standard Webhooks signature headers (see
//! [`crate::standard_webhooks`]). What each answer means is in [`crate::answer`]: only a 2xx of
//! the configured URL acknowledges (redirects are never followed); the response body is never
//! read on success and at most [`DIAGNOSTIC_BYTES`] of it on failure, so a huge or endless body
//! costs nothing, and the timeout bounds the whole call. (`lull check` alone also reads that much
//! of a 2xx, for the verification echo: [`HttpSink::deliver_with_receipt`].)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lull_core::ports::{Acknowledged, Sink, SinkError};
use lull_core::{Batch, Millis, Provider};

use crate::answer;
use crate::receipt::{Receipt, Verified};
use crate::standard_webhooks::{self, SigningKey};

/// How much of a failed answer's body is read, for a debug-level diagnostic (and of any answer's
/// body for a [`Receipt`]).
pub const DIAGNOSTIC_BYTES: usize = 4096;

/// Where and how to POST: a URL and the signing secrets (every one signs, so a rotation can be
/// staged: the consumer accepts a batch when any signature verifies).
#[derive(Clone, Debug)]
pub struct HttpTarget {
    url: reqwest::Url,
    keys: Vec<SigningKey>,
}

impl HttpTarget {
    /// Checks the URL and every secret (`whsec_<base64>` or a plain secret); the error names
    /// what is wrong, never a secret.
    pub fn new(url: &str, secrets: Vec<String>) -> Result<HttpTarget, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        let keys = secrets
            .iter()
            .map(|s| SigningKey::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpTarget { url, keys })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

/// POSTs batches to a default target, or to a tenant's own target when one is set.
#[derive(Clone, Debug)]
pub struct HttpSink {
    client: reqwest::Client,
    default: HttpTarget,
    tenants: Arc<HashMap<(Provider, String), HttpTarget>>,
}

impl HttpSink {
    /// A sink with one target and a `timeout` for each whole call (connect, send, answer): the
    /// configured sink timeout, which the core keeps below the hand-off lease.
    pub fn new(default: HttpTarget, timeout: Duration) -> Result<HttpSink, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lull/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSink {
            client,
            default,
            tenants: Arc::new(HashMap::new()),
        })
    }

    /// Routes one tenant's (provider, account) batches to its own target.
    pub fn with_tenant(
        mut self,
        provider: Provider,
        account: impl Into<String>,
        target: HttpTarget,
    ) -> Self {
        Arc::make_mut(&mut self.tenants).insert((provider, account.into()), target);
        self
    }

    fn target(&self, batch: &Batch) -> &HttpTarget {
        let c = &batch.conversation;
        self.tenants
            .get(&(c.provider, c.account.clone()))
            .unwrap_or(&self.default)
    }
}

impl HttpSink {
    /// Signs and POSTs `batch` to its target, within `within`; `Err` when no answer came.
    async fn post(
        &self,
        batch: &Batch,
        within: Duration,
    ) -> Result<(reqwest::Response, &HttpTarget), SinkError> {
        let target = self.target(batch);
        let host = target.url.host_str().unwrap_or("sink");
        let body = batch.to_json();
        let id = batch.batch_id.to_string();
        let t = i64::try_from(Millis::now_wall().0 / 1000).unwrap_or(i64::MAX);
        let signed = standard_webhooks::headers(&target.keys, &id, t, &body)
            .ok_or_else(|| SinkError::permanent("the batch JSON is not UTF-8"))?;
        let mut req = self
            .client
            .post(target.url.clone())
            .header("content-type", "application/json")
            .header("idempotency-key", &id)
            // The hand-off's budget (never past its lease) overrides the client's timeout.
            .timeout(within);
        for (name, value) in signed {
            req = req.header(name, value);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| answer::transport(&e, host))?;
        Ok((resp, target))
    }

    /// Delivers `batch` as [`Sink::deliver`] does (the same signed request, the same meaning of
    /// every answer) and also returns a [`Receipt`]: the status, the time to it, and what the
    /// answer's body says about the signature, read from at most [`DIAGNOSTIC_BYTES`] of it (on
    /// a 2xx too, unlike a hand-off). For `lull check --send-test-batch`; hand-offs use
    /// `deliver`, which never reads a 2xx's body.
    pub async fn deliver_with_receipt(&self, batch: &Batch, within: Duration) -> Receipt {
        let started = Instant::now();
        let (resp, target) = match self.post(batch, within).await {
            Ok(answered) => answered,
            Err(e) => {
                return Receipt {
                    outcome: Err(e),
                    elapsed: started.elapsed(),
                    status: None,
                    verified: Verified::NotReported,
                }
            }
        };
        let elapsed = started.elapsed();
        let status = resp.status();
        let outcome = outcome(&resp, &target.url);
        let prefix = body_prefix(resp, DIAGNOSTIC_BYTES).await;
        Receipt {
            outcome,
            elapsed,
            status: Some(status.as_u16()),
            verified: Verified::from_body(&prefix),
        }
    }
}

/// What the answer means for the batch ([`answer::classify`]); a redirect is logged, with the
/// hint, at warning level.
fn outcome(resp: &reqwest::Response, url: &reqwest::Url) -> Result<(), SinkError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let err = answer::classify(status, resp.headers(), url, SystemTime::now());
    if status.is_redirection() {
        tracing::warn!(
            status = status.as_u16(),
            reason = err.reason(),
            "sink redirected"
        );
    }
    Err(err)
}

/// The answer header by which a bot declares, in the 2xx acknowledging a batch, that it
/// discarded its reply because the user wrote again (value `superseded`, any case).
pub const REPLY_HEADER: &str = "lull-reply";

impl Sink for HttpSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let (resp, target) = self.post(batch, within).await?;
        let status = resp.status();
        let Err(err) = outcome(&resp, &target.url) else {
            // Acknowledged. The body is dropped unread (the connection with it, if unfinished).
            let superseded = resp
                .headers()
                .get(REPLY_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("superseded"));
            return Ok(Acknowledged { superseded });
        };
        // The body may echo personal data: debug level only, and a bounded prefix.
        let prefix = body_prefix(resp, DIAGNOSTIC_BYTES).await;
        tracing::debug!(status = status.as_u16(), body = %String::from_utf8_lossy(&prefix), "sink answer");
        Err(err)
    }
}

/// At most `limit` bytes of the body: a huge or endless body is cut off here (and its connection
/// dropped), a slow one by the client's timeout.
async fn body_prefix(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - out.len());
                out.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every answer of a real server, and the signed request itself: `tests/http_answers.rs`.

    #[test]
    fn bad_specs_name_the_value() {
        let t = Duration::from_secs(60);
        let e = crate::AnySink::parse("ftp://x", vec![], t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp://x"), "{e}");
        let e = crate::AnySink::parse("jsonl:", vec![], t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("jsonl"), "{e}");
        assert!(matches!(
            crate::AnySink::parse("stdout", vec![], t),
            Ok(crate::AnySink::Stdout(_))
        ));
        let e = crate::AnySink::parse("http://x/", vec!["whsec_!!".into()], t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whsec_") && !e.contains("!!"), "{e}");
    }
}
