//! `lull console --aws` against a moto-backed deployment: the real `lull` binary (built with
//! `--features aws`) serves the console with the deployment's variables; its pages list an open
//! window, a batch the sink refused (parked, with its 422 attempt) and a paused conversation,
//! from the due index; its actions (with the session's CSRF token) redrive the parked batch
//! through the configured sink, resume and pause, and what the table and the sink hold then is
//! checked. A cross-site post is refused and changes nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use lull_aws::store::StoreSettings;
use lull_aws::{Accounting, DynamoDbStore, SqsTrigger};
use lull_core::ports::{SystemClock, WindowStore};
use lull_core::protocol::{Claim, Handoff};
use lull_core::turn::PauseReason;
use lull_core::{ConversationKey, Message, Millis, Policy, Provider};
use lull_testkit::{wait_for, PATIENCE};

use common::{lull_aws_bin, moto_endpoint, test_config, Harness};

fn key(user: &str) -> ConversationKey {
    ConversationKey::new(Provider::Meta, "106540352242922", user)
}

/// A sink that refuses every batch with 422 (a permanent failure: the batch parks).
fn refusing_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/batches", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 422 Unprocessable Entity\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    url
}

/// A console running on `addr`, killed on drop.
struct Console(std::process::Child);

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn page(base: &str, path: &str) -> (u16, Option<String>, String) {
    let r = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("console page");
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    (status, cookie, r.text().await.expect("body"))
}

fn csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_string()
}

async fn act(base: &str, action: &str, cookie: &str, form: &str, site: &str) -> u16 {
    client()
        .post(format!("{base}/console/actions/{action}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("sec-fetch-site", site)
        .body(form.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn form(k: &ConversationKey, token: &str, extra: &str) -> String {
    format!(
        "key={}&csrf={token}{extra}",
        k.storage_key().replace('|', "%7C")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lull_console_aws_shows_and_steers_a_moto_deployment() {
    let h = Harness::new(30, 5).await;
    let long =
        Policy::with_times(Duration::from_secs(600), Duration::from_secs(1200)).expect("policy");
    let passthrough = Policy {
        buffering: false,
        ..long
    };
    let (open, parked, paused) = (
        key("5511933333333"),
        key("5511911111111"),
        key("5511922222222"),
    );
    h.webhook
        .append(
            &open,
            &long,
            Message::text("o1", "5511933333333", "hello there"),
        )
        .await
        .expect("append");
    h.webhook
        .append(
            &parked,
            &passthrough,
            Message::text("r1", "5511911111111", "hi"),
        )
        .await
        .expect("append");
    h.webhook
        .append(
            &paused,
            &long,
            Message::text("p1", "5511922222222", "a person please"),
        )
        .await
        .expect("append");
    h.webhook
        .pause(&paused, Some(Duration::from_secs(3600)), PauseReason::Admin)
        .await
        .expect("pause");
    // The parked batch: handed to a sink that refuses it, through the core's flush.
    let refusing = Handoff::new(
        DynamoDbStore::new(
            h.clients.dynamodb.clone(),
            StoreSettings::new(&h.table),
            Accounting::new(),
        ),
        SqsTrigger::new(h.clients.sqs.clone(), &h.queue, Accounting::new()),
        lull_tenants::RoutedSink::new(lull_aws::BatchSink::Any(lull_sink::AnySink::Http(
            lull_sink::HttpSink::new(
                lull_sink::HttpTarget::new(&refusing_sink(), vec![]).expect("target"),
                Duration::from_secs(2),
            )
            .expect("sink"),
        ))),
        SystemClock,
        test_config(),
    );
    refusing
        .flush(&parked, Claim::Redrive)
        .await
        .expect("flush");
    let stored = h.store.load(&parked).await.expect("load").expect("record");
    assert!(stored.is_parked(), "{stored:?}");

    // The console, with the webhook's variables and the flush's sink.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let _console = Console(
        Command::new(lull_aws_bin())
            .args(["console", "--aws", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("LULL_TABLE", &h.table)
            .env("LULL_TRIGGER_QUEUE_URL", &h.queue)
            .env("LULL_SINK", &h.sink.url)
            .env("LULL_SINK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .env("AWS_ENDPOINT_URL", moto_endpoint().await)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn lull console --aws"),
    );
    wait_for("the console to answer", PATIENCE, async || {
        client()
            .get(format!("{base}/console"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // The tenant page: the parked batch with its 422, the open window, the paused conversation.
    let (status, _, html) = page(&base, "/console/tenants/default").await;
    assert_eq!(status, 200, "{html}");
    for (k, said) in [
        (&parked, "HTTP 422"),
        (&open, "window open"),
        (&paused, "paused (admin)"),
    ] {
        let row = html
            .split("<tr>")
            .find(|r| r.contains(&format!("<code>{}</code>", k.storage_key())))
            .unwrap_or_else(|| panic!("{} not listed: {html}", k.storage_key()));
        assert!(row.contains(said), "{said} missing: {row}");
    }
    assert!(!html.contains("hello there"), "message text on a list page");

    // A session, as a browser gets it; then the actions.
    let (status, cookie, html) = page(
        &base,
        &format!(
            "/console/conversation?key={}",
            parked.storage_key().replace('|', "%7C")
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("refused by the sink (422)"), "{html}");
    let cookie = cookie.expect("a session cookie");
    let token = csrf(&html);
    // Cross-site: refused, nothing changes.
    assert_eq!(
        act(
            &base,
            "pause",
            &cookie,
            &form(&open, &token, "&for=1h"),
            "cross-site"
        )
        .await,
        403
    );
    let o = h.store.load(&open).await.expect("load").expect("record");
    assert!(o.turn.pause.is_none(), "a refused request paused it");

    assert_eq!(
        act(
            &base,
            "redrive",
            &cookie,
            &form(&parked, &token, ""),
            "same-origin"
        )
        .await,
        303
    );
    let r = h.store.load(&parked).await.expect("load").expect("record");
    assert!(
        r.pending.is_empty(),
        "the redriven batch is still pending: {r:?}"
    );
    let handed: Vec<_> = h
        .sink
        .batches()
        .into_iter()
        .filter(|b| b.conversation == parked)
        .collect();
    assert_eq!(
        handed.len(),
        1,
        "the parked batch, once, through the flush's sink"
    );
    assert_eq!(handed[0].messages[0].id, "r1");

    assert_eq!(
        act(
            &base,
            "resume",
            &cookie,
            &form(&paused, &token, ""),
            "same-origin"
        )
        .await,
        303
    );
    let p = h.store.load(&paused).await.expect("load").expect("record");
    // A resume ends the pause now (the record keeps when it ended).
    assert!(
        p.paused_until(Millis::now_wall()).is_none(),
        "still paused: {p:?}"
    );
    assert_eq!(
        act(
            &base,
            "pause",
            &cookie,
            &form(&open, &token, "&for=2h"),
            "same-origin"
        )
        .await,
        303
    );
    let o = h.store.load(&open).await.expect("load").expect("record");
    assert!(
        o.paused_until(Millis::now_wall()).is_some(),
        "not paused: {o:?}"
    );
    assert_eq!(o.window.as_ref().map(|w| w.messages.len()), Some(1));
}
