//! Wrongly-signed bodies at each webhook route's size limit, posted concurrently at a real
//! `lull serve`, and its peak resident memory (`VmHWM` of `/proc/<pid>/status`): the memory
//! budget of `docs/architecture.md` ("Budgets") is checked with these, by a test
//! (`tests/local_server_memory.rs`) and by `lull-bench memory` (the figures).
//!
//! Every body is shaped like the gateway's real payload (the shapes of `tests/fixtures/` and
//! `ingest/tests/`: Meta Cloud API `messages`, Evolution v2 `messages.upsert`, Twilio's form
//! parameters, WAHA's `message` event, lull's generic format), names an account of tenant `a`
//! of [`tenants_toml`], and carries a well-formed credential made with a wrong secret: the
//! worst case for a server that parses before it authenticates, since the body is valid and
//! its account is known. Each is filled with many small messages (or, where a request holds one
//! message, one long text) up to exactly the route's body limit.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// Tenant `id`'s `[[tenants]]` entry: every gateway, accounts ending in `n`.
fn tenant_toml(id: &str, n: u8) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
[tenants.meta]
phone_number_ids = ["10000000000000{n}"]
app_secret = "meta-secret-{id}"
[tenants.evolution]
instances = ["inst-{id}"]
token = "evo-token-{id}"
[tenants.twilio]
numbers = ["whatsapp:+1555000000{n}"]
auth_token = "twilio-token-{id}"
public_url = "https://lull.example.com/webhook/twilio"
[tenants.generic]
accounts = ["acct-{id}"]
secret = "generic-secret-{id}"
[tenants.waha]
sessions = ["sess-{id}"]
hmac_key = "waha-key-{id}"
"#
    )
}

/// Two tenants (so no route can take a "single tenant" shortcut), each with every gateway: the
/// `lull.toml` the flood's server starts with.
pub fn tenants_toml() -> String {
    tenant_toml("a", 1) + &tenant_toml("b", 2)
}

/// The secret every flood request is signed with: no tenant has it.
const WRONG: &str = "not-the-secret";

/// One route's flood request.
pub struct Flood {
    pub route: &'static str,
    pub path: &'static str,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: bytes::Bytes,
}

/// The routes measured, by name.
pub const ROUTES: &[&str] = &["meta", "evolution", "twilio", "generic", "waha"];

/// Repeats `item(i)` between `head` and `tail` (comma-separated) while the body stays within
/// `limit`, then pads with JSON whitespace to exactly `limit` bytes.
fn fill_json(head: &str, tail: &str, limit: usize, item: impl Fn(usize) -> String) -> Vec<u8> {
    let mut body = head.as_bytes().to_vec();
    let mut i = 0;
    loop {
        let next = item(i);
        let sep = usize::from(i > 0);
        if body.len() + sep + next.len() + tail.len() > limit {
            break;
        }
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(next.as_bytes());
        i += 1;
    }
    body.extend_from_slice(tail.as_bytes());
    body.resize(limit.max(body.len()), b' ');
    body
}

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(body: &[u8]) -> String {
    let mut mac = <M as Mac>::new_from_slice(WRONG.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The flood request of `route` (one of [`ROUTES`]) at exactly `limit` bytes.
pub fn request(route: &str, limit: usize) -> Flood {
    let json = "application/json";
    match route {
        // Meta Cloud API `messages` (tests/fixtures/meta_cloud_text.json), many text messages.
        "meta" => {
            let head = concat!(
                r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"#,
                r#""messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"100000000000001"},"#,
                r#""contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":["#
            );
            let body = fill_json(head, "]}}]}]}", limit, |i| {
                format!(
                    r#"{{"from":"16505551234","id":"wamid.flood-{i}","timestamp":"1749416383","type":"text","text":{{"body":"hi"}}}}"#
                )
            });
            let sig = format!("sha256={}", hmac_hex::<Hmac<Sha256>>(&body));
            Flood {
                route: "meta",
                path: "/webhook/meta",
                content_type: json,
                headers: vec![("x-hub-signature-256", sig)],
                body: body.into(),
            }
        }
        // Evolution v2 `messages.upsert` with `data` as an array (accepted by lull's parser).
        "evolution" => {
            let head = r#"{"event":"messages.upsert","instance":"inst-a","data":["#;
            let body = fill_json(head, "]}", limit, |i| {
                format!(
                    r#"{{"key":{{"remoteJid":"5511900000001@s.whatsapp.net","fromMe":false,"id":"FLOOD{i}"}},"pushName":"Ana","message":{{"conversation":"hi"}},"messageType":"conversation","messageTimestamp":1749416383}}"#
                )
            });
            Flood {
                route: "evolution",
                path: "/webhook/evolution",
                content_type: json,
                headers: vec![("apikey", WRONG.to_string())],
                body: body.into(),
            }
        }
        // Twilio's form parameters for one WhatsApp message, with a `Body` as long as the limit
        // allows.
        "twilio" => {
            let head = "MessageSid=SM00000000000000000000000000000001&SmsMessageSid=SM00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001&From=whatsapp%3A%2B5511900000001&To=whatsapp%3A%2B15550000001&NumMedia=0&ProfileName=Ana&WaId=5511900000001&Body=";
            let mut body = head.as_bytes().to_vec();
            body.resize(limit.max(body.len()), b'a');
            let params: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let sig = lull_ingest::auth::sign_twilio(
                WRONG,
                "https://lull.example.com/webhook/twilio",
                &params,
            );
            Flood {
                route: "twilio",
                path: "/webhook/twilio",
                content_type: "application/x-www-form-urlencoded",
                headers: vec![("x-twilio-signature", sig)],
                body: body.into(),
            }
        }
        // lull's generic format (docs/gateways.md), many messages.
        "generic" => {
            let body = fill_json(r#"{"account":"acct-a","messages":["#, "]}", limit, |i| {
                format!(r#"{{"id":"m-{i}","user":"tg:42","kind":"text","text":"hi"}}"#)
            });
            let sig = format!("sha256={}", hmac_hex::<Hmac<Sha256>>(&body));
            Flood {
                route: "generic",
                path: "/webhook/generic",
                content_type: json,
                headers: vec![("x-lull-signature", sig)],
                body: body.into(),
            }
        }
        // WAHA's `message` event (one message per event: `WAHAWebhook` in WAHA's
        // src/structures/webhooks.dto.ts) whose engine data (`_data`) holds many fields.
        "waha" => {
            let head = concat!(
                r#"{"id":"evt_01aaaaaaaaaaaaaaaaaaaaaaaa","timestamp":1749416383000,"event":"message","session":"sess-a","#,
                r#""me":{"id":"15550000001@c.us","pushName":"Shop"},"engine":"WEBJS","#,
                r#""payload":{"id":"false_5511900000001@c.us_AAAA","timestamp":1749416383,"from":"5511900000001@c.us","fromMe":false,"source":"app","body":"hi","hasMedia":false,"_data":{"#
            );
            let body = fill_json(head, "}}}", limit, |i| format!(r#""k{i}":"v""#));
            let sig = hmac_hex::<Hmac<Sha512>>(&body);
            Flood {
                route: "waha",
                path: "/webhook/waha",
                content_type: json,
                headers: vec![
                    ("x-webhook-hmac", sig),
                    ("x-webhook-hmac-algorithm", "sha512".to_string()),
                ],
                body: body.into(),
            }
        }
        other => panic!("no flood request for route {other:?}"),
    }
}

/// Posts `flood` `n` times at once to `base` (`http://addr`) over `n` connections; returns
/// every answer's status (0: the request failed).
pub async fn post_concurrently(base: &str, flood: &Flood, n: usize) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let mut req = client
            .post(format!("{base}{}", flood.path))
            .header("content-type", flood.content_type)
            .body(flood.body.clone());
        for (k, v) in &flood.headers {
            req = req.header(*k, v);
        }
        tasks.spawn(async move {
            match req.send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        });
    }
    let mut statuses = Vec::with_capacity(n);
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap_or(0));
    }
    statuses.sort_unstable();
    statuses
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Writes [`tenants_toml`] as `dir/lull.toml` and returns its path (for `--config`).
pub fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("lull.toml");
    std::fs::write(&path, tenants_toml()).expect("write lull.toml");
    path
}

/// The body limit of `route` in lull's default configuration: the largest body it reads.
pub fn route_limit(_route: &str) -> usize {
    lull_ingest::IngestConfig::default().body_limit
}
