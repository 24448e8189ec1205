//! Human handover from Chatwoot through a real `lull serve` and its real routes: an agent's
//! reply in Chatwoot pauses the conversation (the user's next messages are held, not handed to
//! the sink), resolving it resumes it (one batch, `waited: paused`), the bot's own message
//! through Chatwoot pauses nothing; a wrong signature, an unknown tenant, a stale timestamp and
//! a missing delivery id are refused (401), and a replayed delivery is refused (409), by this
//! process and, after a restart, by the conversation's record in the store.
//!
//! The Chatwoot payloads are `tests/fixtures/chatwoot/` (shapes from Chatwoot's source, named in
//! its README), signed as Chatwoot's `Webhooks::Trigger` signs them.

use std::path::Path;
use std::time::Duration;

use lull_ingest::chatwoot_signature::sign;
use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, repo, Capture, Flags, Server};
use serde_json::{json, Value};

const TOKEN: &str = "evo-token-for-chatwoot-tests";
const SECRET: &str = "chatwoot-webhook-secret-for-tests";

fn user(n: u32) -> String {
    format!("55119876500{n:02}@s.whatsapp.net")
}

fn phone(n: u32) -> String {
    format!("+55119876500{n:02}")
}

fn key(n: u32) -> String {
    format!("evolution|shop|{}", user(n))
}

async fn start(tmp: &Path, capture: &Capture) -> Server {
    let config = tmp.join("lull.toml");
    std::fs::write(
        &config,
        format!(
            r#"
sink = "{}"

[[tenants]]
id = "shop"
quiet = "2s"
max_wait = "60s"
pause = "30m"

[tenants.evolution]
instances = ["shop"]
token = "{TOKEN}"

[tenants.chatwoot]
secret = "{SECRET}"

[[tenants.chatwoot.inboxes]]
id = 3
provider = "evolution"
account = "shop"
"#,
            capture.url
        ),
    )
    .expect("write lull.toml");
    Server::start_with(
        &tmp.join("data"),
        &Flags::new().set("--config", config.to_str().expect("utf-8 path")),
    )
    .await
}

async fn user_says(server: &Server, n: u32, id: &str) {
    let body = json!({
        "event": "messages.upsert",
        "instance": "shop",
        "data": {
            "key": {"remoteJid": user(n), "fromMe": false, "id": id},
            "pushName": "Cliente",
            "message": {"conversation": format!("text of {id}")},
            "messageType": "conversation",
            "messageTimestamp": lull_core::Millis::now_wall().0 / 1000,
            "source": "android"
        }
    });
    let status = server
        .post_json(
            "/webhook/evolution",
            body.to_string().as_bytes(),
            &[("apikey", TOKEN.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{}", server.logs());
}

/// A fixture of `tests/fixtures/chatwoot/`, aimed at conversation `n`'s contact.
fn fixture(name: &str, n: u32) -> Vec<u8> {
    let path = repo().join("tests/fixtures/chatwoot").join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    text.replace("+5511987650001", &phone(n)).into_bytes()
}

/// One signed delivery as Chatwoot sends it.
#[derive(Clone)]
struct Delivery {
    body: Vec<u8>,
    timestamp: String,
    signature: String,
    id: String,
}

impl Delivery {
    fn new(body: Vec<u8>) -> Delivery {
        Delivery::at(body, now_secs(), SECRET)
    }

    fn at(body: Vec<u8>, ts: u64, secret: &str) -> Delivery {
        let timestamp = ts.to_string();
        Delivery {
            signature: sign(secret, &timestamp, &body),
            timestamp,
            body,
            id: uuid::Uuid::now_v7().to_string(),
        }
    }
}

fn now_secs() -> u64 {
    lull_core::Millis::now_wall().0 / 1000
}

/// POSTs `d` to `/webhook/chatwoot` with `query`; (status, body).
async fn send(server: &Server, d: &Delivery, query: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/webhook/chatwoot{query}", server.addr))
        .header("content-type", "application/json")
        .header("x-chatwoot-signature", &d.signature)
        .header("x-chatwoot-timestamp", &d.timestamp)
        .header("x-chatwoot-delivery", &d.id)
        .body(d.body.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("post chatwoot");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn answered(server: &Server, d: &Delivery) -> Value {
    let (status, body) = send(server, d, "?tenant=shop").await;
    assert_eq!(status, 200, "{body}\n{}", server.logs());
    serde_json::from_str(&body).expect("json answer")
}

fn conversation(server: &Server, n: u32) -> Option<Value> {
    server
        .inspect()
        .into_iter()
        .find(|c| c["conversation"] == key(n))
}

fn batches_of(capture: &Capture, n: u32) -> Vec<Value> {
    capture
        .unique_batches()
        .into_iter()
        .filter(|b| b["conversation"]["user"] == user(n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reply_pauses_resolving_resumes_and_the_bot_never_pauses() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let mut server = start(tmp.path(), &capture).await;

    // An agent answers conversation 1 in Chatwoot: paused, the user's next message is held.
    user_says(&server, 1, "u1-1").await;
    let reply = Delivery::new(fixture("message_created_agent.json", 1));
    let answer = answered(&server, &reply).await;
    assert_eq!(answer["paused"], 1, "{answer}");
    user_says(&server, 1, "u1-2").await;

    // The bot's own message in conversation 2 (sender type agent_bot) pauses nothing: its
    // batch comes after its quiet period, which began after conversation 1's last message.
    user_says(&server, 2, "u2-1").await;
    let bot = Delivery::new(fixture("message_created_agent_bot.json", 2));
    let answer = answered(&server, &bot).await;
    assert_eq!(
        (answer["paused"].clone(), answer["ignored"].clone()),
        (json!(0), json!(1))
    );
    wait_for("conversation 2's batch", PATIENCE, async || {
        !batches_of(&capture, 2).is_empty()
    })
    .await;
    assert_eq!(ids(&batches_of(&capture, 2)[0]), ["u2-1"]);
    assert!(batches_of(&capture, 1).is_empty(), "conversation 1 is held");
    let c = conversation(&server, 1).expect("conversation 1");
    assert_eq!(c["window"]["waiting_for"], "paused", "{c}");
    assert_eq!(c["window"]["messages"], 2, "{c}");

    // Replays: the same request, the same signed request under a new delivery id, and
    // Chatwoot's own retry (same delivery id, a new timestamp and signature): 409, nothing.
    assert_eq!(send(&server, &reply, "?tenant=shop").await.0, 409);
    let renamed = Delivery {
        id: uuid::Uuid::now_v7().to_string(),
        ..reply.clone()
    };
    assert_eq!(send(&server, &renamed, "?tenant=shop").await.0, 409);
    let retry = Delivery {
        id: reply.id.clone(),
        ..Delivery::new(reply.body.clone())
    };
    assert_eq!(send(&server, &retry, "?tenant=shop").await.0, 409);

    // Refused before anything is applied: a wrong secret, an unknown tenant (the same answer),
    // a timestamp outside the tolerance, no delivery id.
    let resolve_body = fixture("conversation_status_changed_resolved.json", 1);
    let forged = Delivery::at(resolve_body.clone(), now_secs(), "not-the-secret");
    let (status, wrong_secret) = send(&server, &forged, "?tenant=shop").await;
    assert_eq!(status, 401, "{wrong_secret}");
    let valid = Delivery::new(resolve_body.clone());
    let (status, unknown) = send(&server, &valid, "?tenant=nobody").await;
    assert_eq!((status, unknown.as_str()), (401, wrong_secret.as_str()));
    let stale = Delivery::at(resolve_body.clone(), now_secs() - 600, SECRET);
    let (status, why) = send(&server, &stale, "?tenant=shop").await;
    assert!(status == 401 && why.contains("5 minutes"), "{status} {why}");
    let no_id = Delivery {
        id: String::new(),
        ..valid.clone()
    };
    let (status, why) = send(&server, &no_id, "?tenant=shop").await;
    assert!(
        status == 401 && why.contains("X-Chatwoot-Delivery"),
        "{status} {why}"
    );
    assert!(batches_of(&capture, 1).is_empty(), "still paused");

    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"provider="chatwoot""#) && metrics.contains(r#"reason="bot_message""#),
        "the skipped bot message is counted"
    );

    // After a restart (no memory of the process left), the replay is refused by the
    // conversation's record: the delivery's ids were written with the pause.
    assert!(server.terminate().await, "{}", server.logs());
    let server = start(tmp.path(), &capture).await;
    assert_eq!(send(&server, &renamed, "?tenant=shop").await.0, 409);

    // Resolving the conversation in Chatwoot resumes it: one batch, held past its quiet period.
    let answer = answered(&server, &valid).await;
    assert_eq!(answer["resumed"], 1, "{answer}");
    wait_for(
        "conversation 1's batch after resolve",
        PATIENCE,
        async || !batches_of(&capture, 1).is_empty(),
    )
    .await;
    let b = &batches_of(&capture, 1)[0];
    assert_eq!(ids(b), ["u1-1", "u1-2"]);
    assert_eq!(b["waited"], "paused", "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_to_a_person_pauses_and_unmatched_deliveries_are_counted_not_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let capture = Capture::start().await;
    let server = start(tmp.path(), &capture).await;
    user_says(&server, 5, "u5-1").await;
    let answer = answered(
        &server,
        &Delivery::new(fixture("conversation_updated_assigned.json", 5)),
    )
    .await;
    assert_eq!(answer["paused"], 1, "{answer}");
    let c = conversation(&server, 5).expect("conversation 5");
    assert!(c["paused_until"].is_string(), "{c}");

    // A contact lull holds no conversation for, and an inbox the tenant does not map: 200,
    // ignored.
    let answer = answered(
        &server,
        &Delivery::new(fixture("message_created_agent.json", 9)),
    )
    .await;
    assert_eq!(answer["ignored"], 1, "{answer}");
    let other_inbox = String::from_utf8(fixture("message_created_agent.json", 5))
        .expect("utf-8")
        .replace(r#""id": 3,"#, r#""id": 4,"#)
        .replace(r#""inbox_id": 3,"#, r#""inbox_id": 4,"#);
    let answer = answered(&server, &Delivery::new(other_inbox.into_bytes())).await;
    assert_eq!(answer["ignored"], 1, "{answer}");
    // A body that is not an event, correctly signed: 400.
    let (status, _) = send(&server, &Delivery::new(b"[1,2]".to_vec()), "?tenant=shop").await;
    assert_eq!(status, 400);
}
