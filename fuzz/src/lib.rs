//! Fuzzing the whole webhook `Router`, not only the parsers.
//!
//! Each `router_*` target builds the real router (`lull_ingest::router`) over lull-core's
//! in-memory store, trigger and sink, fresh for every input, and sends it one request made from
//! the input: the first [`CONTROL`] bytes choose the route, method, headers, signing (correct,
//! wrong or none; for Twilio the auth token or a webhook shared key), unsigned mode, the tenant
//! directory (one tenant, two tenants, one without secrets) and forwarded-header trust; the
//! rest is the body (or, for `GET /webhook/meta`, the query). After each request it checks:
//!
//! - no 5xx (the memory adapters never fail), no panic, no allocation over libFuzzer's
//!   `-malloc_limit_mb`, no RSS over `-rss_limit_mb`;
//! - a refused request stores nothing and arms nothing;
//! - a request with no credential, or a wrong one, is never accepted unless unsigned mode
//!   applies to a tenant without secrets;
//! - every stored conversation key and message id is within the store's key limits.
//!
//! Run instructions are in `fuzz/README.md`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use tower::ServiceExt;

use lull_core::memory::{ManualClock, MemorySink, MemoryStore, MemoryTrigger};
use lull_core::{Buffer, BufferConfig, Millis};
use lull_ingest::auth::{self, TwilioAlgorithm};
use lull_ingest::{
    router, EvolutionSettings, GenericSettings, IngestConfig, IngestState, MemoryDirectory,
    MetaSettings, Secrets, Tenant, TwilioSettings, WEBHOOK_ROUTES,
};

/// Control bytes at the start of every input.
pub const CONTROL: usize = 4;
/// The body limit the fuzzed router runs with: small, so inputs can cross it.
pub const BODY_LIMIT: usize = 32 * 1024;

pub const META_SECRET: &str = "meta-app-secret";
pub const VERIFY_TOKEN: &str = "verify-me";
pub const EVO_TOKEN: &str = "evo-token";
pub const EVO_JWT_KEY: &str = "evo-jwt-key";
pub const TWILIO_TOKEN: &str = "twilio-auth-token";
pub const TWILIO_SHARED_KEY: &str = "twilio-shared-key";
pub const GENERIC_SECRET: &str = "generic-secret";
pub const HOST: &str = "lull.example.com";

/// Which gateway's routes a target drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway {
    Meta,
    Evolution,
    Twilio,
    Generic,
}

impl Gateway {
    fn prefix(self) -> &'static str {
        match self {
            Gateway::Meta => "/webhook/meta",
            Gateway::Evolution => "/webhook/evolution",
            Gateway::Twilio => "/webhook/twilio",
            Gateway::Generic => "/webhook/generic",
        }
    }

    /// This gateway's (method, path template) pairs from `WEBHOOK_ROUTES`.
    fn routes(self) -> Vec<(&'static str, &'static str)> {
        WEBHOOK_ROUTES
            .iter()
            .copied()
            .filter(|(_, p)| *p == self.prefix() || p.starts_with(&format!("{}/", self.prefix())))
            .collect()
    }
}

/// The tenant directory an input runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directory {
    /// One tenant with every secret and no account list (owns every account).
    Solo,
    /// Two tenants with secrets and accounts ("a" signs; "b" owns the other accounts).
    Two,
    /// One tenant without any secret.
    Secretless,
}

fn tenant(id: &str, accounts: Option<[&str; 4]>, secret_suffix: &str) -> Tenant {
    let s = |v: &str| Secrets::new([format!("{v}{secret_suffix}")]);
    let list = |i: usize| accounts.map(|a| vec![a[i].to_string()]).unwrap_or_default();
    Tenant {
        id: id.into(),
        meta: MetaSettings {
            phone_number_ids: list(0),
            app_secrets: s(META_SECRET),
            verify_tokens: s(VERIFY_TOKEN),
        },
        evolution: EvolutionSettings {
            instances: list(1),
            tokens: s(EVO_TOKEN),
            jwt_keys: s(EVO_JWT_KEY),
            ..Default::default()
        },
        twilio: TwilioSettings {
            numbers: list(2),
            auth_tokens: s(TWILIO_TOKEN),
            shared_keys: s(TWILIO_SHARED_KEY),
            public_url: None,
        },
        generic: GenericSettings {
            accounts: list(3),
            secrets: s(GENERIC_SECRET),
        },
        ..Default::default()
    }
}

fn directory(kind: Directory) -> MemoryDirectory {
    match kind {
        Directory::Solo => MemoryDirectory::single(tenant("solo", None, "")),
        Directory::Secretless => MemoryDirectory::single(Tenant {
            id: "open".into(),
            ..Default::default()
        }),
        Directory::Two => MemoryDirectory::new(vec![
            tenant("a", Some(["111", "inst-a", "+1000", "a"]), ""),
            tenant("b", Some(["222", "inst-b", "+2000", "b"]), "-b"),
        ])
        .unwrap_or_default(),
    }
}

/// How the request is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signing {
    None,
    Wrong,
    Right,
}

/// One decoded input.
struct Case<'a> {
    gateway: Gateway,
    route: usize,
    method: Method,
    signing: Signing,
    allow_unsigned: bool,
    directory: Directory,
    trust_forwarded: bool,
    forwarded_headers: bool,
    wrong_content_type: bool,
    twilio_shared_key: bool,
    variant: u8,
    extra_header: u8,
    body: &'a [u8],
}

impl<'a> Case<'a> {
    fn decode(gateway: Gateway, data: &'a [u8]) -> Option<Case<'a>> {
        let (c, body) = data.split_at_checked(CONTROL)?;
        let signing = match c[1] & 3 {
            0 => Signing::None,
            1 => Signing::Wrong,
            _ => Signing::Right,
        };
        let directory = match (c[1] >> 3) % 3 {
            0 => Directory::Solo,
            1 => Directory::Two,
            _ => Directory::Secretless,
        };
        let method = match (c[0] >> 4) % 6 {
            0..=2 => Method::POST,
            3 => Method::GET,
            4 => Method::PUT,
            _ => Method::HEAD,
        };
        Some(Case {
            gateway,
            route: usize::from(c[0] & 0x0f),
            method,
            signing,
            allow_unsigned: c[1] & 4 != 0,
            directory,
            trust_forwarded: c[1] & 0x20 != 0,
            forwarded_headers: c[1] & 0x40 != 0,
            wrong_content_type: c[1] & 0x80 != 0 && c[2] & 0x80 != 0,
            twilio_shared_key: c[2] & 0x40 != 0,
            variant: c[2] & 0x3f,
            extra_header: c[3],
            body,
        })
    }

    /// The concrete path of the chosen route (path secrets and events filled in).
    fn path(&self) -> String {
        let routes = self.gateway.routes();
        let (_, template) = routes[self.route % routes.len()];
        let event = [
            "messages-upsert",
            "MESSAGES_UPSERT",
            "connection-update",
            "%FF",
            "x.y",
        ][usize::from(self.variant) % 5];
        let secret = match self.signing {
            Signing::Right if self.variant & 0x08 != 0 => EVO_TOKEN,
            _ => "not-the-token",
        };
        template
            .replace("{event}", event)
            .replace("{secret}", secret)
    }

    fn content_type(&self) -> &'static str {
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        let json = "application/json";
        let (right, wrong) = match self.gateway {
            Gateway::Twilio => (form, json),
            _ => (json, form),
        };
        if self.wrong_content_type {
            wrong
        } else {
            right
        }
    }

    /// The request, or `None` when the input makes no valid URI.
    fn request(&self) -> Option<Request<Body>> {
        let mut path = self.path();
        if self.method == Method::GET && self.gateway == Gateway::Meta {
            path.push('?');
            path.push_str(&String::from_utf8_lossy(self.body));
        }
        let uri: Uri = path.parse().ok()?;
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .header("content-type", self.content_type())
            .header(
                "host",
                if self.variant & 0x10 != 0 {
                    "lull.example.com:8443"
                } else {
                    HOST
                },
            );
        if self.forwarded_headers {
            b = b
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", "evil.example");
        }
        b = match self.extra_header % 8 {
            0 => b.header(
                "x-twilio-webhooks-signature-settings",
                "key=k,algorithm=HMAC_MD5",
            ),
            1 => b.header("authorization", "Bearer a.b.c"),
            2 => b.header("apikey", ""),
            3 => b.header("x-hub-signature-256", "sha256=zz"),
            4 => b.header("content-length", "0"),
            _ => b,
        };
        for (name, value) in self.credentials() {
            b = b.header(name, value);
        }
        b.body(Body::from(self.body.to_vec())).ok()
    }

    /// The credential headers of this case.
    fn credentials(&self) -> Vec<(&'static str, String)> {
        let right = self.signing == Signing::Right;
        let body = self.body;
        match (self.signing, self.gateway) {
            (Signing::None, _) => Vec::new(),
            (_, Gateway::Meta) => vec![(
                "x-hub-signature-256",
                auth::sign_sha256(if right { META_SECRET } else { "nope" }, body),
            )],
            // Standard Webhooks, timestamped now (the body-only X-Lull-Signature is retired).
            (_, Gateway::Generic) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let secret = if right { GENERIC_SECRET } else { "nope" };
                lull_ingest::standard_webhooks::sign(secret, "msg_fuzz", now, body)
                    .map(Vec::from)
                    .unwrap_or_default()
            }
            (_, Gateway::Evolution) => match (right, self.variant % 3) {
                (false, _) => vec![("apikey", "wrong".to_string())],
                (true, 0) => vec![("apikey", EVO_TOKEN.to_string())],
                (true, 1) => vec![("authorization", format!("Bearer {EVO_TOKEN}"))],
                (true, _) => vec![(
                    "authorization",
                    format!(
                        "Bearer {}",
                        auth::make_jwt_hs256(EVO_JWT_KEY, &serde_json::json!({"exp": 4e9}))
                    ),
                )],
            },
            (_, Gateway::Twilio) => {
                let params: Vec<(String, String)> = form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let url = format!("https://{HOST}{}", self.path());
                let (algorithm, key) = match (self.twilio_shared_key, right) {
                    (false, true) => (TwilioAlgorithm::HmacSha1, TWILIO_TOKEN),
                    (true, true) => (TwilioAlgorithm::HmacSha256, TWILIO_SHARED_KEY),
                    (_, false) => (TwilioAlgorithm::HmacSha1, "nope"),
                };
                let mut h = vec![(
                    "x-twilio-signature",
                    auth::sign_twilio_with(algorithm, key, &url, &params),
                )];
                if self.twilio_shared_key {
                    h.push((
                        "x-twilio-webhooks-signature-settings",
                        "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256".to_string(),
                    ));
                }
                h
            }
        }
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Sends the request `data` describes to a fresh router and checks the outcome (see the module
/// docs). Panics on a violation, which libFuzzer reports as a crash.
pub fn run(gateway: Gateway, data: &[u8]) {
    let Some(case) = Case::decode(gateway, data) else {
        return;
    };
    let Some(req) = case.request() else {
        return;
    };
    let store = MemoryStore::new();
    let trigger = MemoryTrigger::new();
    let buffer = Buffer::new(
        store.clone(),
        trigger.clone(),
        MemorySink::new(),
        ManualClock::new(Millis(1_780_000_000_000), 7),
        BufferConfig::default(),
    );
    let config = IngestConfig {
        body_limit: BODY_LIMIT,
        allow_unsigned: case.allow_unsigned,
        trust_forwarded: case.trust_forwarded,
        ..IngestConfig::default()
    };
    let state = IngestState::new(
        Arc::new(buffer),
        Arc::new(directory(case.directory)),
        config,
    );
    let app = router(state);
    let (status, body) = RUNTIME.with(|rt| {
        rt.block_on(async move {
            let resp = app.oneshot(req).await.expect("the router is infallible");
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .expect("a short response body");
            (status, body)
        })
    });
    check(&case, status, &body, &store, &trigger);
}

fn check(
    case: &Case<'_>,
    status: StatusCode,
    body: &[u8],
    store: &MemoryStore,
    trigger: &MemoryTrigger,
) {
    let text = String::from_utf8_lossy(body);
    assert!(!status.is_server_error(), "{status}: {text}");
    if !status.is_success() {
        assert!(
            store.conversations().is_empty(),
            "{status} but stored: {text}"
        );
        assert_eq!(store.dedupe_len(), 0, "{status} but a dedupe record exists");
        assert!(trigger.is_empty(), "{status} but a trigger was armed");
        return;
    }
    let unsigned_applies = case.allow_unsigned && case.directory == Directory::Secretless;
    let is_handshake = case.method == Method::GET;
    if !unsigned_applies && !is_handshake {
        assert_eq!(
            case.signing,
            Signing::Right,
            "a request without the right credential was accepted: {status} {text}"
        );
    }
    for conv in store.conversations() {
        let messages = conv
            .pending
            .iter()
            .flat_map(|b| b.messages.iter())
            .chain(conv.window.iter().flat_map(|w| w.messages.iter()));
        for m in messages {
            assert_eq!(
                conv.key.check_lengths(&m.id),
                Ok(()),
                "an over-long key was stored"
            );
        }
    }
}
