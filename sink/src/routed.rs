//! Per-tenant sinks: each tenant's batches go to its own HTTP endpoint (signed with its own
//! secret); everyone else's go to the default sink.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lull_core::ports::{Sink, SinkError};
use lull_core::{Batch, Provider};

use crate::{AnySink, HttpSink, HttpTarget};

/// Routes a batch by its conversation's (provider, account) to a tenant's HTTP target, or to the
/// default sink.
#[derive(Clone, Debug)]
pub struct RoutedSink {
    default: AnySink,
    tenants: Option<HttpSink>,
    routed: Arc<HashSet<(Provider, String)>>,
}

impl RoutedSink {
    /// Every batch to `default`, until routes are added.
    pub fn new(default: AnySink) -> RoutedSink {
        RoutedSink {
            default,
            tenants: None,
            routed: Arc::new(HashSet::new()),
        }
    }

    /// Sends the batches of (`provider`, `account`) to `target`, with `timeout` per request.
    pub fn route(
        mut self,
        provider: Provider,
        account: &str,
        target: HttpTarget,
        timeout: Duration,
    ) -> Result<RoutedSink, reqwest::Error> {
        let http = match self.tenants.take() {
            Some(h) => h,
            None => HttpSink::new(target.clone(), timeout)?,
        };
        self.tenants = Some(http.with_tenant(provider, account, target));
        Arc::make_mut(&mut self.routed).insert((provider, account.to_string()));
        Ok(self)
    }
}

impl Sink for RoutedSink {
    async fn deliver(&self, batch: &Batch, within: Duration) -> Result<(), SinkError> {
        let c = &batch.conversation;
        match &self.tenants {
            Some(http) if self.routed.contains(&(c.provider, c.account.clone())) => {
                http.deliver(batch, within).await
            }
            _ => self.default.deliver(batch, within).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonlSink;
    use lull_core::{CloseReason, ConversationKey, Message, Millis};
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
        let sink = RoutedSink::new(AnySink::Jsonl(JsonlSink::new(&file)))
            .route(
                Provider::Meta,
                "pn-a",
                HttpTarget::new(&url, vec!["tenant-a-secret".into()]).unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
        sink.deliver(&batch("pn-a"), Duration::from_secs(10))
            .await
            .unwrap();
        sink.deliver(&batch("pn-b"), Duration::from_secs(10))
            .await
            .unwrap();
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST /tenant-a "), "{seen}");
        assert!(seen.to_ascii_lowercase().contains("x-lull-signature: t="));
        let lines = std::fs::read_to_string(&file).unwrap();
        assert_eq!(lines.lines().count(), 1);
        assert!(lines.contains("m-pn-b") && !lines.contains("m-pn-a"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
