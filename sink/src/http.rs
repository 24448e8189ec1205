//! The HTTP sink: POST the batch JSON to the AI step.
//!
//! Headers: `Idempotency-Key: <batch_id>` (a retried hand-off carries the same id, so the
//! receiver can drop repeats) and `X-Lull-Signature` (see [`crate::sign`]). 2xx acknowledges;
//! 408, 429, 5xx, timeouts and connection errors are retried; any other status is permanent
//! (counted and alarmed; the batch stays pending, never dropped).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lull_core::ports::{Sink, SinkError};
use lull_core::{Batch, Millis, Provider};

use crate::signature::sign;

/// Where and how to POST: a URL and the signing secrets (the first one signs; the others are
/// there so a rotation can be staged).
#[derive(Clone, Debug)]
pub struct HttpTarget {
    url: reqwest::Url,
    secrets: Vec<String>,
}

impl HttpTarget {
    pub fn new(url: &str, secrets: Vec<String>) -> Result<HttpTarget, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        Ok(HttpTarget { url, secrets })
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
    /// A sink with one target and a per-request `timeout` (keep it below the hand-off lease).
    pub fn new(default: HttpTarget, timeout: Duration) -> Result<HttpSink, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
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

impl Sink for HttpSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<(), SinkError> {
        let target = self.target(batch);
        let body = batch.to_json();
        let mut req = self
            .client
            .post(target.url.clone())
            .header("content-type", "application/json")
            .header("idempotency-key", batch.batch_id.to_string())
            // The hand-off's budget (never past its lease) overrides the client's timeout.
            .timeout(within);
        if let Some(secret) = target.secrets.first() {
            let t = Millis::now_wall().0 / 1000;
            req = req.header("x-lull-signature", sign(secret.as_bytes(), t, &body));
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError::retryable(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let msg = format!(
            "{} answered {status}",
            target.url.host_str().unwrap_or("sink")
        );
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(SinkError::retryable(msg))
        } else {
            Err(SinkError::permanent(msg))
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // reqwest errors carry the URL, which holds no personal data.
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::{CloseReason, ConversationKey, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn batch() -> Batch {
        Batch::new(
            uuid::Uuid::now_v7(),
            ConversationKey::new(Provider::Meta, "pn", "u"),
            1,
            CloseReason::Quiet,
            Millis(0),
            Millis(8000),
            false,
            vec![Message::text("m", "u", "hi")],
        )
    }

    /// A one-shot HTTP server on loopback answering `status`; returns the request it saw.
    async fn serve_once(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/batches", listener.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let resp =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            s.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf).to_string()
        });
        (url, h)
    }

    #[tokio::test]
    async fn posts_signed_idempotent_json_and_classifies_statuses() {
        let (url, seen) = serve_once(200).await;
        let sink = HttpSink::new(
            HttpTarget::new(&url, vec!["k".into()]).unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        let b = batch();
        sink.deliver(&b, Duration::from_secs(10)).await.unwrap();
        let req = seen.await.unwrap();
        let lower = req.to_ascii_lowercase();
        assert!(lower.starts_with("post /batches "), "{req}");
        assert!(lower.contains(&format!("idempotency-key: {}", b.batch_id)));
        let sig_line = lower
            .lines()
            .find(|l| l.starts_with("x-lull-signature:"))
            .unwrap();
        let header = sig_line.trim_start_matches("x-lull-signature:").trim();
        let body = req.split("\r\n\r\n").nth(1).unwrap();
        let now = Millis::now_wall().0 / 1000;
        crate::verify(b"k", header, body.as_bytes(), now, 60).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["batch_id"], b.batch_id.to_string());

        for (status, retryable) in [
            (500, true),
            (503, true),
            (429, true),
            (408, true),
            (400, false),
            (404, false),
        ] {
            let (url, _seen) = serve_once(status).await;
            let sink = HttpSink::new(
                HttpTarget::new(&url, vec![]).unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
            match sink.deliver(&b, Duration::from_secs(10)).await {
                Err(SinkError::Retryable { .. }) => assert!(retryable, "{status}"),
                Err(SinkError::Permanent { .. }) => assert!(!retryable, "{status}"),
                Ok(()) => panic!("{status} must not acknowledge"),
            }
        }
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let sink = HttpSink::new(
            HttpTarget::new(&url, vec![]).unwrap(),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(matches!(
            sink.deliver(&batch(), Duration::from_secs(10)).await,
            Err(SinkError::Retryable { .. })
        ));
    }

    #[test]
    fn bad_specs_name_the_value() {
        let e = crate::AnySink::parse("ftp://x", vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("ftp://x"), "{e}");
        let e = crate::AnySink::parse("jsonl:", vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("jsonl"), "{e}");
        assert!(matches!(
            crate::AnySink::parse("stdout", vec![]),
            Ok(crate::AnySink::Stdout(_))
        ));
    }
}
