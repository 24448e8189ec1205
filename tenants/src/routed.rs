//! Per-tenant sinks: each tenant's batches go to its own HTTP endpoint (signed with its own
//! secret); everyone else's go to the default sink.
//!
//! Routes are looked up at every hand-off through [`SinkRoutes`] (the tenant directory, which
//! reloads the tenant store after a short TTL), so a tenant added, re-pointed or removed while
//! running is routed without a restart, and a removed tenant's accepted batches still reach the
//! sink they were accepted for. The account is normalised by the directory exactly as tenant
//! lookup normalises it (`whatsapp:+1...` and `+1...` are one Twilio number).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_core::ports::{Acknowledged, Sink, SinkError};
use lull_core::{Batch, Provider};

use lull_sink::{AnySink, HttpSink, HttpTarget};

/// A tenant's own HTTP sink: its URL and signing secrets (the first signs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SinkRoute {
    pub url: String,
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for SinkRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SinkRoute({}, {} secret(s))",
            self.url,
            self.secrets.len()
        )
    }
}

/// The future of a route lookup: `Ok(None)` means the default sink.
pub type RouteFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<SinkRoute>, String>> + Send + 'a>>;

/// Where the batches of one (provider, account) go.
pub trait SinkRoutes: Send + Sync {
    fn route<'a>(&'a self, provider: Provider, account: &'a str) -> RouteFuture<'a>;
}

/// The most distinct routes kept with a built HTTP client (more: the cache starts over).
const MAX_CLIENTS: usize = 1024;

/// Routes a batch by its conversation's (provider, account) to a tenant's HTTP target, or to the
/// default sink (any sink: lull-sink's, or the Lambdas' SQS FIFO one).
#[derive(Clone)]
pub struct RoutedSink<D = AnySink> {
    default: D,
    routes: Option<Arc<dyn SinkRoutes>>,
    timeout: Duration,
    clients: Arc<Mutex<HashMap<SinkRoute, HttpSink>>>,
}

impl<D: std::fmt::Debug> std::fmt::Debug for RoutedSink<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedSink")
            .field("default", &self.default)
            .field("routed", &self.routes.is_some())
            .finish()
    }
}

impl<D> RoutedSink<D> {
    /// Every batch to `default`.
    pub fn new(default: D) -> RoutedSink<D> {
        RoutedSink {
            default,
            routes: None,
            timeout: Duration::from_secs(10),
            clients: Arc::default(),
        }
    }

    /// Batches whose (provider, account) has a route go there, with `timeout` per request.
    pub fn with_routes(mut self, routes: Arc<dyn SinkRoutes>, timeout: Duration) -> RoutedSink<D> {
        self.routes = Some(routes);
        self.timeout = timeout;
        self
    }

    fn client(&self, route: SinkRoute) -> Result<HttpSink, SinkError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&route) {
            return Ok(c.clone());
        }
        let target = HttpTarget::new(&route.url, route.secrets.clone())
            .map_err(|e| SinkError::permanent(format!("tenant sink: {e}")))?;
        let sink = HttpSink::new(target, self.timeout)
            .map_err(|e| SinkError::retryable(format!("tenant sink client: {e}")))?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(route, sink.clone());
        Ok(sink)
    }
}

impl<D: Sink> Sink for RoutedSink<D> {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<Acknowledged, SinkError> {
        let c = &batch.conversation;
        let Some(routes) = &self.routes else {
            return self.default.deliver(batch, within).await;
        };
        // The lookup counts against the call's budget: the hand-off still ends within it.
        let deadline = Instant::now() + within;
        let route = tokio::time::timeout(within, routes.route(c.provider, &c.account))
            .await
            .map_err(|_| SinkError::retryable("tenant directory: timed out"))?;
        let left = deadline.saturating_duration_since(Instant::now());
        match route {
            Ok(Some(route)) => self.client(route)?.deliver(batch, left).await,
            Ok(None) => self.default.deliver(batch, left).await,
            // Retried: the batch must go to its tenant's sink, never to the default one.
            Err(e) => Err(SinkError::retryable(format!("tenant directory: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_core::{CloseReason, ConversationKey, Message, Millis};
    use lull_sink::JsonlSink;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn batch(account: &str) -> Batch {
        Batch::new(
            uuid::Uuid::now_v7(),
            ConversationKey::new(Provider::Meta, account, "u"),
            1,
            CloseReason::Quiet,
            Millis(0),
            Millis(8000),
            false,
            vec![Message::text(format!("m-{account}"), "u", "hi")],
        )
    }

    #[tokio::test]
    async fn a_tenants_batches_go_to_its_own_endpoint_and_the_rest_to_the_default() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/tenant-a", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("m-pn-a") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let dir = std::env::temp_dir().join(format!("lull-routed-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("default.jsonl");
        struct One(String);
        impl SinkRoutes for One {
            fn route<'a>(&'a self, p: Provider, account: &'a str) -> RouteFuture<'a> {
                let hit = (p == Provider::Meta && account == "pn-a").then(|| SinkRoute {
                    url: self.0.clone(),
                    secrets: vec!["tenant-a-secret".into()],
                });
                Box::pin(async move { Ok(hit) })
            }
        }
        let sink = RoutedSink::new(AnySink::Jsonl(JsonlSink::new(&file)))
            .with_routes(Arc::new(One(url)), Duration::from_secs(5));
        sink.deliver(&batch("pn-a"), Duration::from_secs(10))
            .await
            .unwrap();
        sink.deliver(&batch("pn-b"), Duration::from_secs(10))
            .await
            .unwrap();
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST /tenant-a "), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("webhook-signature: v1,"));
        let lines = std::fs::read_to_string(&file).unwrap();
        assert_eq!(lines.lines().count(), 1);
        assert!(lines.contains("m-pn-b") && !lines.contains("m-pn-a"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
