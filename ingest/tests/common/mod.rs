//! Test harness: the router over the core's in-memory store, trigger, sink and a manual clock.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use lull_core::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use lull_core::{Buffer, BufferConfig, ConversationKey, Message, Millis, Provider};
use lull_ingest::auth;
use lull_ingest::{
    router, EvolutionSettings, GenericSettings, IngestConfig, IngestState, MemoryDirectory,
    MetaSettings, Secrets, Tenant, TwilioSettings, WahaSettings,
};

pub const META_SECRET: &str = "meta-app-secret";
pub const VERIFY_TOKEN: &str = "verify-me";
pub const EVO_TOKEN: &str = "evo-token";
pub const EVO_JWT_KEY: &str = "evo-jwt-key";
pub const TWILIO_TOKEN: &str = "twilio-auth-token";
pub const GENERIC_SECRET: &str = "generic-secret";
pub const WAHA_KEY: &str = "waha-hmac-key";
pub const NOW: Millis = Millis(1_780_000_000_000);

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One tenant with every gateway's secret and no account list (owns every account).
pub fn solo_tenant() -> Tenant {
    Tenant {
        id: "solo".into(),
        meta: MetaSettings {
            app_secrets: Secrets::new([META_SECRET]),
            verify_tokens: Secrets::new([VERIFY_TOKEN]),
            ..Default::default()
        },
        evolution: EvolutionSettings {
            tokens: Secrets::new([EVO_TOKEN]),
            jwt_keys: Secrets::new([EVO_JWT_KEY]),
            ..Default::default()
        },
        twilio: TwilioSettings {
            auth_tokens: Secrets::new([TWILIO_TOKEN]),
            ..Default::default()
        },
        generic: GenericSettings {
            secrets: Secrets::new([GENERIC_SECRET]),
            ..Default::default()
        },
        waha: WahaSettings {
            hmac_keys: Secrets::new([WAHA_KEY]),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub struct Harness {
    pub clock: ManualClock,
    pub store: MemoryStore,
    pub trigger: MemoryTrigger,
    pub directory: Arc<MemoryDirectory>,
    pub router: Router,
}

impl Harness {
    pub fn solo() -> Harness {
        Harness::with(
            MemoryDirectory::single(solo_tenant()),
            IngestConfig::default(),
        )
    }

    pub fn with(directory: MemoryDirectory, config: IngestConfig) -> Harness {
        // The captured fixtures carry their capture time (2023-2025) and hand-made bodies say
        // `"timestamp": "1"`: older than the default 7-day horizon at NOW, so refused as
        // possible replays under it (meta.rs, `a_message_older_than_the_dedupe_horizon_...`,
        // tests that rule). Every other test runs under a horizon that covers them.
        let buffer_config = BufferConfig {
            dedupe_horizon: std::time::Duration::from_secs(100 * 365 * 24 * 3600),
            ..BufferConfig::default()
        };
        Harness::with_buffer(directory, config, buffer_config)
    }

    /// A harness whose protocol runs under `buffer_config`.
    pub fn with_buffer(
        directory: MemoryDirectory,
        config: IngestConfig,
        buffer_config: BufferConfig,
    ) -> Harness {
        let store = MemoryStore::new();
        let trigger = MemoryTrigger::new();
        let clock = ManualClock::new(NOW, 7);
        let buffer = Buffer::new(
            store.clone(),
            trigger.clone(),
            MemorySink::new(),
            clock.clone(),
            buffer_config,
        );
        let directory = Arc::new(directory);
        let state = IngestState::new(Arc::new(buffer), directory.clone(), config);
        Harness {
            clock,
            store,
            trigger,
            directory,
            router: router(state),
        }
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every stored message with its conversation key, in key order then receive order.
    pub fn messages(&self) -> Vec<(ConversationKey, Message)> {
        let mut out = Vec::new();
        for c in self.store.conversations() {
            for b in &c.pending {
                out.extend(b.messages.iter().map(|m| (c.key.clone(), m.clone())));
            }
            if let Some(w) = &c.window {
                out.extend(w.messages.iter().map(|m| (c.key.clone(), m.clone())));
            }
        }
        out
    }

    /// The one stored message with this id.
    pub fn message(&self, id: &str) -> (ConversationKey, Message) {
        let found: Vec<_> = self
            .messages()
            .into_iter()
            .filter(|(_, m)| m.id == id)
            .collect();
        assert_eq!(found.len(), 1, "message {id}: {found:?}");
        found.into_iter().next().unwrap()
    }

    /// Nothing stored, nothing armed.
    pub fn assert_empty(&self) {
        assert!(
            self.store.conversations().is_empty(),
            "stored: {:?}",
            self.store.conversations()
        );
        assert_eq!(self.store.dedupe_len(), 0);
        assert!(self.trigger.is_empty(), "a trigger was armed");
    }
}

pub fn key(provider: Provider, account: &str, user: &str) -> ConversationKey {
    ConversationKey::new(provider, account, user)
}

pub fn meta_post(body: &[u8], secret: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/webhook/meta").header("content-type", "application/json");
    if let Some(s) = secret {
        b = b.header("x-hub-signature-256", auth::sign_sha256(s, body));
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

pub fn evolution_post(path: &str, body: &[u8], apikey: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some(k) = apikey {
        b = b.header("apikey", k);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

pub const TWILIO_URL: &str = "https://lull.example.com/webhook/twilio";

pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub fn twilio_post(body: &str, token: Option<&str>) -> Request<Body> {
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut b = Request::post("/webhook/twilio")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "lull.example.com")
        .header("x-forwarded-proto", "https");
    if let Some(t) = token {
        b = b.header(
            "x-twilio-signature",
            auth::sign_twilio(t, TWILIO_URL, &params),
        );
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A generic-format request, signed with Standard Webhooks headers (timestamp now) when
/// `secret` is given.
pub fn generic_post(body: &[u8], secret: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/webhook/generic").header("content-type", "application/json");
    if let Some(s) = secret {
        let now = (Millis::now_wall().0 / 1000) as i64;
        let headers =
            lull_ingest::standard_webhooks::sign(s, "msg_test", now, body).expect("a signing key");
        for (name, value) in headers {
            b = b.header(name, value);
        }
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

/// A WAHA webhook request, signed as WAHA signs it when `key` is given.
pub fn waha_post(body: &[u8], key: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/webhook/waha")
        .header("content-type", "application/json")
        .header("x-webhook-request-id", "req-1")
        .header("x-webhook-timestamp", "1764763202100");
    if let Some(k) = key {
        b = b
            .header("x-webhook-hmac", auth::sign_sha512_hex(k, body))
            .header("x-webhook-hmac-algorithm", "sha512");
    }
    b.body(Body::from(body.to_vec())).unwrap()
}
