//! "The user sees the bot listening", end to end on the local server: the real `lull serve` with
//! three tenants that ask for `on_close = ["read", "typing"]`, each behind a loopback fake of its
//! messaging API (`lull_testkit::fake_api`), and one capture sink.
//!
//! A burst of messages gives one batch, and for that batch exactly one read and one typing call
//! with the provider's exact request shape: Meta Cloud API (developers.facebook.com, WhatsApp
//! Business Platform, "Typing indicators": one `POST /{phone_number_id}/messages` with
//! `status: "read"`, the last `message_id` and `typing_indicator: {"type": "text"}`), Evolution
//! API v2.3 (its Postman collection, `Chat` folder: `POST /chat/markMessageAsRead/{instance}`,
//! `POST /chat/sendPresence/{instance}`, header `apikey`) and WAHA (waha.devlike.pro, "Send
//! messages": `POST /api/sendSeen`, `POST /api/startTyping`, header `X-Api-Key`). The Evolution
//! fake answers 500 and the WAHA fake never answers: their batches still arrive, WAHA's while
//! its calls are still held, and each outcome is counted in `lull_listen_calls_total`.
//!
//! Webhook bodies: Meta's from `fixtures/meta_cloud_text.json`; Evolution's `messages.upsert`
//! shaped like the captured v2.3 body of the shared fixtures
//! (`evolution_v2_3_messages_upsert_text_n8n_fixture.json`); WAHA's `message` event as
//! `WAHAWebhook` in WAHA's `src/structures/webhooks.dto.ts`.

use lull_testkit::fake_api::{Answer, FakeApi, Recorded};
use lull_testkit::listen_calls::{assert_evolution, assert_waha};
use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, meta_text, Capture, Flags, Server};
use serde_json::{json, Value};

const PN: &str = "106540352242922";
const META_USER: &str = "16505551234";
const INSTANCE: &str = "inst-e";
const EVO_USER: &str = "5511900000001@s.whatsapp.net";
const SESSION: &str = "sess-w";
const WAHA_USER: &str = "5511900000002@c.us";

fn now_secs() -> u64 {
    lull_core::Millis::now_wall().0 / 1000
}

fn evolution_text(id: &str) -> Value {
    json!({
        "event": "messages.upsert",
        "instance": INSTANCE,
        "data": {
            "key": {"remoteJid": EVO_USER, "fromMe": false, "id": id},
            "pushName": "Ana",
            "message": {"conversation": format!("text of {id}")},
            "messageType": "conversation",
            "messageTimestamp": now_secs(),
        },
        "date_time": "2026-12-06T12:00:00.000Z",
    })
}

fn waha_text(id: &str) -> Value {
    json!({
        "id": format!("evt_{id}"),
        "timestamp": lull_core::Millis::now_wall().0,
        "event": "message",
        "session": SESSION,
        "me": {"id": "15550000001@c.us", "pushName": "Shop"},
        "engine": "WEBJS",
        "payload": {
            "id": id, "timestamp": now_secs(), "from": WAHA_USER, "fromMe": false,
            "source": "app", "body": format!("text of {id}"), "hasMedia": false,
        },
    })
}

fn tenants_toml(meta: &FakeApi, evo: &FakeApi, waha: &FakeApi) -> String {
    format!(
        r#"
[[tenants]]
id = "shop-meta"
quiet = "1s"
max_wait = "20s"
on_close = ["read", "typing"]
[tenants.meta]
phone_number_ids = ["{PN}"]
access_token = "EAAtoken"
api_url = "{meta}/v26.0"

[[tenants]]
id = "shop-evo"
quiet = "1s"
max_wait = "20s"
on_close = ["read", "typing"]
[tenants.evolution]
instances = ["{INSTANCE}"]
api_url = "{evo}"
api_key = "evo-key"

[[tenants]]
id = "shop-waha"
quiet = "1s"
max_wait = "20s"
on_close = ["read", "typing"]
[tenants.waha]
sessions = ["{SESSION}"]
api_url = "{waha}"
api_key = "waha-key"
"#,
        meta = meta.url,
        evo = evo.url,
        waha = waha.url,
    )
}

/// The value of `lull_listen_calls_total` with these labels (0 when not counted yet).
fn listen_count(metrics: &str, provider: &str, action: &str, outcome: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lull_listen_calls_total{"))
        .filter(|l| {
            l.contains(&format!("provider=\"{provider}\""))
                && l.contains(&format!("action=\"{action}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn metrics(server: &Server) -> String {
    match server.get("/metrics").await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn body(r: &Recorded) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

/// The batch of `user` the sink acknowledged.
fn batch_of(sink: &Capture, user: &str) -> Option<Value> {
    sink.unique_batches()
        .into_iter()
        .find(|b| b["conversation"]["user"] == user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_gets_one_read_and_one_typing_call_and_a_failing_or_hanging_api_holds_no_hand_off()
{
    let meta_api = FakeApi::start(Answer::Ok).await;
    let evo_api = FakeApi::start(Answer::Fail).await;
    let waha_api = FakeApi::start(Answer::Hang).await;
    let sink = Capture::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("lull.toml");
    std::fs::write(&config, tenants_toml(&meta_api, &evo_api, &waha_api)).expect("lull.toml");
    let data = tmp.path().join("data");
    // A listen timeout far beyond a hand-off: WAHA's batch arriving while its calls are held
    // shows the hand-off does not wait for them.
    let server = Server::start(
        &data,
        &Flags::new()
            .set("--config", config.to_string_lossy())
            .set("--sink", &sink.url)
            .set("--listen-timeout", "8s")
            .set("--sweep-interval", "200ms"),
    )
    .await;

    for id in ["wamid.A", "wamid.B", "wamid.C"] {
        assert_eq!(
            server.post_meta(&meta_text(PN, META_USER, id, "hi")).await,
            200
        );
    }
    for id in ["EVO1", "EVO2"] {
        let b = serde_json::to_vec(&evolution_text(id)).expect("json");
        assert_eq!(server.post_json("/webhook/evolution", &b, &[]).await, 200);
    }
    let waha_ids = [
        format!("false_{WAHA_USER}_AAA1"),
        format!("false_{WAHA_USER}_AAA2"),
    ];
    for id in &waha_ids {
        let b = serde_json::to_vec(&waha_text(id)).expect("json");
        assert_eq!(server.post_json("/webhook/waha", &b, &[]).await, 200);
    }

    wait_for("the three batches", PATIENCE, async || {
        sink.unique_batches().len() >= 3
    })
    .await;
    // WAHA's batch was acknowledged while the fake still held both its calls: it did not wait.
    assert!(
        waha_api.open() <= 2,
        "at most WAHA's two calls are held: {:?}",
        waha_api.requests()
    );
    let meta_batch = batch_of(&sink, META_USER).expect("Meta batch");
    assert_eq!(ids(&meta_batch), ["wamid.A", "wamid.B", "wamid.C"]);
    let evo_batch = batch_of(&sink, EVO_USER).expect("Evolution batch");
    assert_eq!(ids(&evo_batch), ["EVO1", "EVO2"]);
    let waha_batch = batch_of(&sink, WAHA_USER).expect("WAHA batch");
    assert_eq!(ids(&waha_batch), waha_ids);
    assert_eq!(sink.unique_batches().len(), 3, "one batch per burst");

    // Every outcome counted: Meta's one call sent, Evolution's two failed (500), WAHA's two
    // timed out (the fake never answers).
    let mut m = String::new();
    wait_for("every on_close outcome counted", PATIENCE, async || {
        m = metrics(&server).await;
        listen_count(&m, "meta", "read+typing", "sent") == 1
            && listen_count(&m, "evolution", "read", "failed") == 1
            && listen_count(&m, "evolution", "typing", "failed") == 1
            && listen_count(&m, "waha", "read", "timeout") == 1
            && listen_count(&m, "waha", "typing", "timeout") == 1
    })
    .await;

    // Meta: one call for the batch, marking its last message read with the indicator.
    assert_eq!(meta_api.requests().len(), 1, "{:#?}", meta_api.requests());
    let meta = meta_api.only(&format!("/v26.0/{PN}/messages"));
    assert_eq!(meta.method, "POST");
    assert_eq!(meta.header("authorization"), Some("Bearer EAAtoken"));
    assert_eq!(meta.header("content-type"), Some("application/json"));
    assert_eq!(
        body(&meta),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.C",
               "typing_indicator": {"type": "text"}})
    );

    // Evolution: one read call naming every message of the batch, one presence call.
    let delay = lull_core::listen::EVOLUTION_TYPING_MS;
    assert_evolution(
        &evo_api,
        INSTANCE,
        EVO_USER,
        &["EVO1", "EVO2"],
        "evo-key",
        delay,
    );
    // WAHA: one sendSeen with both ids, one startTyping.
    let waha_ids: Vec<&str> = waha_ids.iter().map(String::as_str).collect();
    assert_waha(&waha_api, SESSION, WAHA_USER, &waha_ids, "waha-key");

    // No message text or phone number in the server's log at its default level.
    let logs = server.logs();
    for secret in ["text of", META_USER, "5511900000001", "EAAtoken", "evo-key"] {
        assert!(!logs.contains(secret), "{secret:?} in the log:\n{logs}");
    }
    // Nothing else was counted (no second call for any batch).
    let total: u64 = ["sent", "failed", "timeout"]
        .iter()
        .flat_map(|o| {
            [
                ("meta", "read+typing"),
                ("evolution", "read"),
                ("evolution", "typing"),
                ("waha", "read"),
                ("waha", "typing"),
            ]
            .map(|(p, a)| listen_count(&m, p, a, o))
        })
        .sum();
    assert_eq!(total, 5, "{m}");
}
