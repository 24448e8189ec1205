//! `Listening`: the `on_close` calls reach a loopback fake of each API with the exact request
//! shape (Meta Cloud API: developers.facebook.com "Typing indicators"; WAHA: waha.devlike.pro
//! `POST /api/sendSeen`, `POST /api/startTyping`), and a fake that never answers neither delays
//! nor fails the hand-off.

use std::sync::Arc;
use std::time::Duration;

use lull_core::listen::{ApiAccess, Listen, OnClose};
use lull_core::ports::Sink;
use lull_core::{Batch, CloseReason, ConversationKey, Message, Millis, Provider};
use lull_sink::{JsonlSink, ListenFuture, ListenNow, ListenRoutes, Listening};
use lull_testkit::fake_api::{Answer, FakeApi};

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

fn body_of(r: &lull_testkit::fake_api::Recorded) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test]
async fn meta_gets_one_read_and_typing_call_and_a_hanging_waha_never_holds_the_hand_off() {
    let meta_api = FakeApi::start(Answer::Ok).await;
    let waha_api = FakeApi::start(Answer::Hang).await;
    let listen = Listen {
        on_close: OnClose {
            read: true,
            typing: true,
        },
        meta: Some(ApiAccess {
            api_url: format!("{}/v26.0", meta_api.url),
            token: "EAAtoken".into(),
        }),
        waha: Some(ApiAccess {
            api_url: waha_api.url.clone(),
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
        async || meta_api.requests().len() == 1 && waha_api.open() == 2,
    )
    .await;
    let meta = meta_api.only("/v26.0/106540352242922/messages");
    assert_eq!(meta.method, "POST");
    assert_eq!(meta.header("authorization"), Some("Bearer EAAtoken"));
    assert_eq!(
        body_of(&meta),
        serde_json::json!({"messaging_product": "whatsapp", "status": "read",
            "message_id": "wamid.B", "typing_indicator": {"type": "text"}})
    );
    let seen = waha_api.only("/api/sendSeen");
    assert_eq!(seen.header("x-api-key"), Some("waha-key"));
    assert_eq!(
        body_of(&seen),
        serde_json::json!({"session": "default", "chatId": "11111111111@c.us",
            "messageIds": ["false_11111111111@c.us_AAA"]})
    );
    assert_eq!(
        body_of(&waha_api.only("/api/startTyping")),
        serde_json::json!({"session": "default", "chatId": "11111111111@c.us"})
    );
    // `settle` is bounded: the hanging calls do not hold it beyond its bound.
    sink.settle(Duration::from_millis(50)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory that knows every tenant's setting at once and counts the lookups it is asked.
struct Known {
    now: ListenNow,
    lookups: std::sync::atomic::AtomicUsize,
}

impl ListenRoutes for Known {
    fn listen<'a>(&'a self, _: Provider, _: &'a str) -> ListenFuture<'a> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { Ok(None) })
    }

    fn listen_now(&self, _: Provider, _: &str) -> ListenNow {
        self.now.clone()
    }
}

#[tokio::test]
async fn a_tenant_known_to_show_nothing_costs_no_task_and_no_lookup() {
    let dir = std::env::temp_dir().join(format!("lull-listen-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("batches.jsonl");
    let api = FakeApi::start(Answer::Ok).await;
    let on = Listen {
        on_close: OnClose {
            read: true,
            typing: true,
        },
        meta: Some(ApiAccess {
            api_url: format!("{}/v26.0", api.url),
            token: "EAAtoken".into(),
        }),
        waha: None,
        evolution: None,
    };
    let mut off_setting = on.clone();
    off_setting.on_close = OnClose::default();
    for (what, now, tasks) in [
        ("no tenant / on_close off", ListenNow::Off, 0),
        ("a setting with nothing on", ListenNow::On(off_setting), 0),
        (
            "on, for a provider without such calls",
            ListenNow::On(on.clone()),
            0,
        ),
        ("on", ListenNow::On(on.clone()), 1),
    ] {
        let routes = Arc::new(Known {
            now,
            lookups: Default::default(),
        });
        let sink = Listening::new(
            JsonlSink::new(&file),
            routes.clone(),
            Duration::from_secs(5),
        )
        .unwrap();
        let provider = if what.contains("without") {
            Provider::Twilio
        } else {
            Provider::Meta
        };
        for _ in 0..3 {
            let b = batch(provider, "106540352242922", "16505551234", &["wamid.A"]);
            sink.deliver(&b, Duration::from_secs(10)).await.unwrap();
        }
        sink.settle(Duration::from_secs(30)).await;
        // One task per batch when there is something to send (3 batches, once each)...
        assert_eq!(sink.tasks_started(), 3 * tasks, "{what}");
        // ...and never a lookup: the setting was known at once.
        assert_eq!(
            routes.lookups.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{what}"
        );
    }
    // Only the tenant that is on reached the API: one call per batch.
    lull_testkit::wait_for("three Meta calls", Duration::from_secs(30), async || {
        api.requests().len() == 3
    })
    .await;
    assert_eq!(api.requests().len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
