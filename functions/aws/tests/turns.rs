//! End of turn on AWS, against moto: Evolution webhooks as API Gateway delivers them to the
//! webhook Lambda's `Router`, its tenant read from the DynamoDB/Secrets Manager store (the admin
//! token too), hand-offs by the flush handler fed by an SQS poller, to an HTTP capture sink.
//!
//! - a `presence.update` composing holds a window past its quiet period (`waited: typing_hold`);
//! - an Evolution `fromMe` message typed on a phone pauses its conversation; `lull conversations
//!   --aws pause` (the real CLI) and the admin route change the pause; the admin route's resume
//!   hands the collected messages off at once, and a pause that runs out hands them off saying
//!   `waited: paused`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lull_aws::tenants::DynamoTenants;
use lull_aws::Accounting;
use lull_core::ports::WindowStore;
use lull_core::turn::{PauseReason, PresenceKind, TurnReason};
use lull_core::{Batch, CloseReason, ConversationKey, Millis, Policy, Provider};
use lull_ingest::{CachedDirectory, IngestConfig, IngestState, TenantSpec};
use serde_json::{json, Value};

use common::apigw::{event, send};
use common::{check_batches, lull_aws_bin, moto_endpoint, unique, Harness};
use lull_testkit::{holds_within, wait_for, PATIENCE};

const INSTANCE: &str = "ElinaIA";
const EVO_TOKEN: &str = "evo-token-on-aws";
const ADMIN_TOKEN: &str = "admin-token-on-aws";
const TYPING_HOLD: Duration = Duration::from_secs(6);

fn spec() -> TenantSpec {
    serde_json::from_value(json!({
        "id": "elina", "quiet": "2s", "max_wait": "60s",
        "typing": true, "typing_grace": "1s", "typing_hold": "6s", "pause": "30m",
        "admin_token": ADMIN_TOKEN,
        "evolution": {"instances": [INSTANCE], "token": EVO_TOKEN}
    }))
    .expect("tenant spec")
}

/// The tenant's policy, as the webhook Lambda's directory resolves it.
fn policy() -> Policy {
    spec().to_tenant(&Policy::default()).expect("tenant").policy
}

/// A provider payload from `ingest/tests/fixtures`, in its real shape.
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../ingest/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut v: Value = serde_json::from_str(&text).expect("fixture JSON");
    // Sent now: a message older than the dedupe horizon is refused as a possible replay.
    if v["data"]["messageTimestamp"].is_number() {
        v["data"]["messageTimestamp"] = json!(lull_core::Millis::now_wall().0 / 1000);
    }
    v
}

fn chat(n: u32) -> String {
    format!("521999000000{n}@s.whatsapp.net")
}

fn key(n: u32) -> ConversationKey {
    ConversationKey::new(Provider::Evolution, INSTANCE, chat(n))
}

/// The user's text message (Evolution v2.3, as captured) in chat `n`.
fn user_message(n: u32, id: &str) -> Value {
    let mut v = fixture("evolution_v2_3_messages_upsert_text_n8n_fixture.json");
    v["data"]["key"]["remoteJid"] = json!(chat(n));
    v["data"]["key"]["remoteJidAlt"] = json!(chat(n));
    v["data"]["key"]["id"] = json!(id);
    v["data"]["source"] = json!("android");
    v
}

/// A message the business side typed on its phone (`fromMe`, `source: ios`) in chat `n`.
fn operator_message(n: u32, id: &str) -> Value {
    let mut v = fixture("evolution_v2_messages_upsert_from_me_operator.json");
    v["data"]["key"]["remoteJid"] = json!(chat(n));
    v["data"]["key"]["id"] = json!(id);
    v
}

/// Evolution's `presence.update`: the user of chat `n` is typing.
fn composing(n: u32) -> Value {
    let mut v = fixture("evolution_v2_presence_update_composing.json");
    v["data"] = json!({
        "id": chat(n),
        "presences": {chat(n): {"lastKnownPresence": "composing"}}
    });
    v
}

struct Rig {
    h: Harness,
    router: axum::Router,
}

impl Rig {
    /// A deployment on moto whose one tenant is stored as `lull tenants apply --aws` stores it,
    /// read by the webhook Lambda's cached directory.
    async fn new() -> Rig {
        let h = Harness::new(3, 50).await;
        let store = DynamoTenants::new(
            h.clients.dynamodb.clone(),
            h.clients.secrets.clone(),
            &h.table,
            format!("{}/", unique("lull/turns")),
            Accounting::new(),
        );
        store
            .apply(vec![spec()], &h.policy, Millis::now_wall(), Duration::ZERO)
            .await
            .expect("apply the tenant");
        let directory = Arc::new(CachedDirectory::new(
            Arc::new(store),
            Duration::from_secs(10),
            h.policy,
            None,
        ));
        let router = lull_ingest::router(IngestState::new(
            h.webhook.clone(),
            directory,
            IngestConfig::default(),
        ));
        Rig { h, router }
    }

    /// POSTs an Evolution webhook through API Gateway; it must be accepted.
    async fn evolution(&self, body: &Value) -> Value {
        let headers = [
            ("content-type", "application/json".to_string()),
            ("apikey", EVO_TOKEN.to_string()),
        ];
        let body = body.to_string();
        let (status, text) = send(
            &self.router,
            &event("/webhook/evolution", &headers, body.as_bytes(), false),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("JSON answer")
    }

    /// `POST /admin/conversations/{action}` through API Gateway with `token` as bearer.
    async fn admin(&self, action: &str, token: Option<&str>, body: &Value) -> (u16, String) {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let path = format!("/admin/conversations/{action}");
        send(
            &self.router,
            &event(&path, &headers, body.to_string().as_bytes(), false),
        )
        .await
    }

    /// `lull conversations --aws ARGS` (the real CLI) with the webhook Lambda's variables.
    fn cli(&self, args: &[&str], endpoint: &str) -> (bool, String) {
        let out = Command::new(lull_aws_bin())
            .arg("conversations")
            .arg("--aws")
            .args(args)
            .env("LULL_TABLE", &self.h.table)
            .env("LULL_TRIGGER_QUEUE_URL", &self.h.queue)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run lull conversations --aws");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn batches(&self, n: u32) -> Vec<Batch> {
        check_batches(&self.h.sink.batches(), &policy())
            .into_iter()
            .filter(|b| b.conversation == key(n))
            .collect()
    }

    async fn pause_of(&self, n: u32) -> Option<lull_core::turn::Pause> {
        let conv = self.h.store.load(&key(n)).await.expect("load");
        conv.expect("conversation").turn.pause
    }
}

fn ids(b: &Batch) -> Vec<&str> {
    b.messages.iter().map(|m| m.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn composing_holds_a_window_past_its_quiet_period() {
    let r = Rig::new().await;
    let poller = r.h.start_poller();
    let answer = r.evolution(&user_message(1, "u1-1")).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let answer = r.evolution(&composing(1)).await;
    assert_eq!(answer["presence"], 1, "{answer}");
    let conv = r.h.store.load(&key(1)).await.expect("load").expect("conv");
    let presence = conv.turn.presence.expect("presence stored");
    assert_eq!(presence.kind, PresenceKind::Composing);
    assert_eq!(
        conv.window.expect("window").messages.len(),
        1,
        "presence is no message"
    );

    wait_for("the held batch", PATIENCE, async || {
        !r.batches(1).is_empty()
    })
    .await;
    let b = &r.batches(1)[0];
    assert_eq!(ids(b), ["u1-1"]);
    assert_eq!(b.reason, CloseReason::Quiet);
    assert_eq!(b.waited, Some(TurnReason::TypingHold), "{b:?}");
    // Held past the 2 s quiet period, until the typing hold after the presence ran out.
    assert!(
        b.closed_at.since(presence.at) >= TYPING_HOLD,
        "closed {:?} after composing",
        b.closed_at.since(presence.at)
    );
    poller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_pauses_the_cli_and_the_admin_route_change_the_pause_and_resume_hands_off() {
    let r = Rig::new().await;
    let endpoint = moto_endpoint().await;
    let poller = r.h.start_poller();

    // A person on the business phone writes in chats 2 and 3: both pause for the tenant's 30 min.
    for n in [2, 3] {
        r.evolution(&user_message(n, &format!("u{n}-1"))).await;
        let answer = r.evolution(&operator_message(n, &format!("op-{n}"))).await;
        assert_eq!(answer["accepted"], 0, "not buffered: {answer}");
        let pause = r.pause_of(n).await.expect("paused");
        assert_eq!(pause.reason, PauseReason::Operator);
        assert!(
            pause.until.since(Millis::now_wall()) > Duration::from_secs(25 * 60),
            "{pause:?}"
        );
    }
    let answer = r.evolution(&user_message(2, "u2-2")).await;
    assert_eq!(answer["accepted"], 1, "still collecting: {answer}");

    // `lull conversations --aws`: a longer pause by hand; a bad key is named.
    let (ok, out) = r.cli(&["pause", &key(2).storage_key(), "--for", "2h"], &endpoint);
    assert!(ok && out.contains("paused until"), "{out}");
    let pause = r.pause_of(2).await.expect("paused");
    assert_eq!(pause.reason, PauseReason::Admin);
    assert!(pause.until.since(Millis::now_wall()) > Duration::from_secs(3600));
    let (ok, out) = r.cli(&["pause", "evolution|ElinaIA"], &endpoint);
    assert!(!ok && out.contains("evolution|ElinaIA"), "{out}");

    // The admin route shortens chat 3's pause: it runs out and the batch says it waited for it.
    let (status, text) = r
        .admin(
            "pause",
            Some(ADMIN_TOKEN),
            &json!({"key": key(3).storage_key(), "for": "3s"}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let until = r.pause_of(3).await.expect("paused").until;

    // Refused admin requests change nothing.
    let before = r.pause_of(2).await;
    let resume2 = json!({"key": key(2).storage_key()});
    for (token, body, want) in [
        (None, resume2.clone(), 401),
        (Some("not-the-token"), resume2.clone(), 401),
        (
            Some(ADMIN_TOKEN),
            json!({"key": key(2).storage_key(), "for": "1h"}),
            400,
        ),
        (
            Some(ADMIN_TOKEN),
            json!({"key": ConversationKey::new(Provider::Evolution, "OtherInstance", chat(2)).storage_key()}),
            401,
        ),
    ] {
        let (status, text) = r.admin("resume", token, &body).await;
        assert_eq!(status, want, "{token:?} {body}: {text}");
        assert_eq!(
            r.pause_of(2).await,
            before,
            "{token:?} {body} changed the pause"
        );
    }

    wait_for("chat 3's batch after its pause", PATIENCE, async || {
        !r.batches(3).is_empty()
    })
    .await;
    let b3 = &r.batches(3)[0];
    assert_eq!(ids(b3), ["u3-1"]);
    assert_eq!(b3.waited, Some(TurnReason::Paused), "{b3:?}");
    assert!(b3.closed_at >= until, "handed off before the pause ended");

    // Chat 2 stays paused well past its quiet period...
    let quiet = policy().quiet;
    assert!(
        !holds_within(quiet * 3, async || !r.batches(2).is_empty()).await,
        "a paused conversation was handed off"
    );
    // ...until the admin route resumes it: handed off at once, saying the pause held it.
    let resumed_at = Millis::now_wall();
    let (status, text) = r.admin("resume", Some(ADMIN_TOKEN), &resume2).await;
    assert_eq!((status, text.as_str()), (200, "resumed\n"));
    let ended = r.pause_of(2).await.expect("the ended pause");
    assert!(ended.until <= Millis::now_wall(), "{ended:?}");
    wait_for("chat 2's batch after resume", PATIENCE, async || {
        !r.batches(2).is_empty()
    })
    .await;
    let b2 = &r.batches(2)[0];
    assert_eq!(ids(b2), ["u2-1", "u2-2"]);
    assert_eq!(b2.waited, Some(TurnReason::Paused), "{b2:?}");
    assert!(b2.closed_at >= resumed_at, "handed off before the resume");
    poller.stop().await;
}
