//! `Listening`: the `on_close` calls reach a loopback fake of each API with the exact request
//! shape (Meta Cloud API: developers.facebook.com "Typing indicators"; WAHA: waha.devlike.pro
//! `POST /api/sendSeen`, `POST /api/startTyping`), and a fake that never answers neither delays
//! nor fails the hand-off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lull_core::listen::{ApiAccess, Listen, OnClose};
use lull_core::ports::Sink;
use lull_core::{Batch, CloseReason, ConversationKey, Message, Millis, Provider};
use lull_sink::{JsonlSink, ListenFuture, ListenRoutes, Listening};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback HTTP server that records each request (head and body) and answers 200, or never
/// answers when `hang`.
async fn fake(hang: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            log.lock().unwrap().push(text);
                            break;
                        }
                    }
                }
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"success\":true}")
                    .await;
            });
        }
    });
    (url, seen)
}

struct Routes(Listen);

impl ListenRoutes for Routes {
    fn listen<'a>(&'a self, _: Provider, _: &'a str) -> ListenFuture<'a> {
        let l = self.0.clone();
        Box::pin(async move { Ok(Some(l)) })
    }
}

fn batch(provider: Provider, account: &str, user: &str, ids: &[&str]) -> Batch {
    Batch::new(
        uuid::Uuid::now_v7(),
        ConversationKey::new(provider, account, user),
        1,
        CloseReason::Quiet,
        // Closed just now: a batch closed long ago gets no sign (`lull_core::listen::LATE_AFTER_MS`).
        Millis::now_wall(),
        Millis::now_wall(),
        false,
        ids.iter()
            .map(|id| Message::text(*id, user, "hi"))
            .collect(),
    )
}

fn body_of(req: &str) -> serde_json::Value {
    serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[tokio::test]
async fn meta_gets_one_read_and_typing_call_and_a_hanging_waha_never_holds_the_hand_off() {
    let (meta_url, meta_seen) = fake(false).await;
    let (waha_url, waha_seen) = fake(true).await;
    let listen = Listen {
        on_close: OnClose {
            read: true,
            typing: true,
        },
        meta: Some(ApiAccess {
            api_url: format!("{meta_url}/v26.0"),
            token: "EAAtoken".into(),
        }),
        waha: Some(ApiAccess {
            api_url: waha_url,
            token: "waha-key".into(),
        }),
        evolution: None,
    };
    let dir = std::env::temp_dir().join(format!("lull-listen-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("batches.jsonl");
    // An hour's bound: a hand-off that waited for the hanging fake could not end in this test.
    let sink = Listening::new(
        JsonlSink::new(&file),
        Arc::new(Routes(listen)),
        Duration::from_secs(3600),
    )
    .unwrap();

    let b = batch(
        Provider::Meta,
        "106540352242922",
        "16505551234",
        &["wamid.A", "wamid.B"],
    );
    sink.deliver(&b, Duration::from_secs(10)).await.unwrap();
    // The same batch again (a retried hand-off): no second call.
    sink.deliver(&b, Duration::from_secs(10)).await.unwrap();
    let w = batch(
        Provider::Waha,
        "default",
        "11111111111@c.us",
        &["false_11111111111@c.us_AAA"],
    );
    sink.deliver(&w, Duration::from_secs(10)).await.unwrap();
    // Both batches reached the sink although the WAHA fake holds its calls.
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), 3);

    lull_testkit::wait_for(
        "one Meta call and two WAHA calls",
        Duration::from_secs(30),
        async || meta_seen.lock().unwrap().len() == 1 && waha_seen.lock().unwrap().len() == 2,
    )
    .await;
    let meta = meta_seen.lock().unwrap()[0].clone();
    assert!(
        meta.starts_with("POST /v26.0/106540352242922/messages HTTP/1.1"),
        "{meta}"
    );
    assert!(meta
        .to_ascii_lowercase()
        .contains("authorization: bearer eaatoken"));
    assert_eq!(
        body_of(&meta),
        serde_json::json!({"messaging_product": "whatsapp", "status": "read",
            "message_id": "wamid.B", "typing_indicator": {"type": "text"}})
    );
    let waha = waha_seen.lock().unwrap().clone();
    let seen = waha
        .iter()
        .find(|r| r.starts_with("POST /api/sendSeen "))
        .unwrap();
    assert!(seen.to_ascii_lowercase().contains("x-api-key: waha-key"));
    assert_eq!(
        body_of(seen),
        serde_json::json!({"session": "default", "chatId": "11111111111@c.us",
            "messageIds": ["false_11111111111@c.us_AAA"]})
    );
    let typing = waha
        .iter()
        .find(|r| r.starts_with("POST /api/startTyping "))
        .unwrap();
    assert_eq!(
        body_of(typing),
        serde_json::json!({"session": "default", "chatId": "11111111111@c.us"})
    );
    // `settle` is bounded: the hanging calls do not hold it beyond its bound.
    sink.settle(Duration::from_millis(50)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
