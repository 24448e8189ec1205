//! The operators' console in a real browser: a real `lull serve` with a loopback sink, real open
//! windows, a batch the sink refused (parked) and a paused conversation; Debian's headless
//! `chromium` driven by `playwright-core` (tests/browser/console.mjs) loads the pages and clicks
//! redrive, resume, show message text and pause; then the sink and the store must hold what
//! those clicks mean. Cross-site requests are refused and change nothing.
//!
//! Needs `/usr/bin/chromium` (Debian/Ubuntu package `chromium`) and `npm ci --prefix
//! tests/browser` (scripts/test does both). A screenshot of each page is written to
//! `$LULL_CONSOLE_SCREENSHOTS` when set (docs/console/ holds the ones docs/console.md shows),
//! else to a temporary directory.

use std::process::Command;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{ids, meta_text, repo, Capture, Flags, Server};
use serde_json::Value;

const PN: &str = "106540352242922";
const PARKED: &str = "5511911111111";
const PAUSED: &str = "5511922222222";
const OPEN: &str = "5511933333333";
const OTHER: &str = "5511944444444";
const SECRET: &str = "my card ends in 4242 <script>alert(1)</script>";

fn key(user: &str) -> String {
    format!("meta|{PN}|{user}")
}

fn entry<'a>(inspect: &'a [Value], user: &str) -> Option<&'a Value> {
    inspect
        .iter()
        .find(|c| c["conversation"].as_str() == Some(key(user).as_str()))
}

/// A console page's session cookie and CSRF token, as a browser would get them.
async fn session(server: &Server, user: &str) -> (String, String) {
    let resp = reqwest::Client::new()
        .get(format!(
            "http://{}/console/conversation?key={}",
            server.ops_addr,
            key(user).replace('|', "%7C")
        ))
        .send()
        .await
        .expect("console page");
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let html = resp.text().await.expect("html");
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a csrf field")
        .to_string();
    (cookie, token)
}

async fn post_form(server: &Server, path: &str, form: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("http://{}{path}", server.ops_addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_and_steers_a_running_server_in_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "/usr/bin/chromium is missing: install the distribution's package `chromium` \
         (scripts/test does, as root)"
    );
    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci --prefix tests/browser` first (scripts/test does)"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = Capture::start().await;
    *sink.state.refuse_once_user.lock().expect("lock") = Some(PARKED.into());
    // Windows stay open for the whole test (a long quiet period); two messages fill one (the
    // size cap), which is how the parked and the paused conversations get a closed batch.
    let flags = Flags::new()
        .set("--quiet", "10m")
        .set("--max-wait", "20m")
        .set("--max-messages", "2")
        .set("--sweep-interval", "200ms")
        .set("--retry-min", "50ms")
        .set("--retry-max", "300ms")
        .set("--sink", &sink.url);
    let server = Server::start(&tmp.path().join("data"), &flags).await;
    let post = async |user: &str, id: &str, text: &str| {
        assert_eq!(server.post_meta(&meta_text(PN, user, id, text)).await, 200);
    };

    // A batch the sink refuses: parked.
    post(PARKED, "r1", "hello").await;
    post(PARKED, "r2", "are you there").await;
    wait_for("the refused batch parked", PATIENCE, async || {
        entry(&server.inspect(), PARKED)
            .is_some_and(|c| c["pending"][0]["parked"] == Value::Bool(true))
    })
    .await;
    // A paused conversation holding a closed batch (the pause holds it back).
    post(PAUSED, "p1", "I want to talk to a person").await;
    let paused = server
        .client_post_ops(
            "/conversations/pause",
            &serde_json::json!({"key": key(PAUSED), "for": "1h"}),
        )
        .await;
    assert_eq!(paused, 200);
    post(PAUSED, "p2", "please").await;
    // Open windows.
    post(OPEN, "o1", SECRET).await;
    post(OTHER, "x1", "just browsing").await;
    wait_for("the paused batch closed and held", PATIENCE, async || {
        entry(&server.inspect(), PAUSED)
            .is_some_and(|c| c["pending"].as_array().is_some_and(|p| p.len() == 1))
    })
    .await;

    // Cross-site attempts are refused, whatever they carry, and change nothing.
    let (cookie, token) = session(&server, OTHER).await;
    let form = format!("key={}&csrf={token}&for=1h", key(OTHER).replace('|', "%7C"));
    let pause = "/console/actions/pause";
    assert_eq!(
        post_form(&server, pause, &form, &[]).await,
        403,
        "no session cookie"
    );
    let wrong = format!(
        "key={}&csrf={}&for=1h",
        key(OTHER).replace('|', "%7C"),
        "ab".repeat(32)
    );
    assert_eq!(
        post_form(&server, pause, &wrong, &[("cookie", &cookie)]).await,
        403,
        "another token"
    );
    let both = [("cookie", cookie.as_str())];
    let cross = [both[0], ("sec-fetch-site", "cross-site")];
    assert_eq!(
        post_form(&server, pause, &form, &cross).await,
        403,
        "Sec-Fetch-Site"
    );
    let origin = [both[0], ("origin", "http://evil.example")];
    assert_eq!(
        post_form(&server, pause, &form, &origin).await,
        403,
        "Origin"
    );
    let rebound = [both[0], ("host", "evil.example:9090")];
    assert_eq!(
        post_form(&server, pause, &form, &rebound).await,
        403,
        "Host (DNS rebinding)"
    );
    assert!(
        entry(&server.inspect(), OTHER).is_some_and(|c| c["paused_until"].is_null()),
        "a refused request paused the conversation"
    );
    // The same form from the console's own page goes through (so the refusals above were the
    // rules, not a broken form).
    let same = [both[0], ("sec-fetch-site", "same-origin")];
    assert_eq!(post_form(&server, pause, &form, &same).await, 303);
    assert!(entry(&server.inspect(), OTHER).is_some_and(|c| !c["paused_until"].is_null()));

    // The browser.
    let shots = std::env::var_os("LULL_CONSOLE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("shots"));
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let keys = serde_json::json!({"parked": key(PARKED), "paused": key(PAUSED), "open": key(OPEN)});
    let out = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("LULL_CONSOLE", format!("http://{}", server.ops_addr))
        .env("LULL_KEYS", keys.to_string())
        .env("LULL_TEXT", SECRET)
        .env("LULL_SHOTS", &shots)
        .output()
        .expect("run node tests/browser/console.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    for click in ["redrive", "resume", "show message text", "pause 2h"] {
        assert!(
            stdout.contains(&format!("clicked: {click} ")),
            "{click} not clicked: {stdout}"
        );
    }
    for page in [
        "console-tenants",
        "console-tenant",
        "console-conversation",
        "console-revealed",
    ] {
        let png = std::fs::read(shots.join(format!("{page}.png"))).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{page}.png is not a PNG");
    }

    // What the clicks did. Redrive: the parked batch went out again, same id, and was taken.
    wait_for("the redriven batch acknowledged", PATIENCE, async || {
        sink.acked().iter().any(|b| ids(b) == ["r1", "r2"])
    })
    .await;
    let tries: Vec<Value> = sink
        .requests()
        .into_iter()
        .filter(|b| ids(b) == ["r1", "r2"])
        .collect();
    assert_eq!(tries.len(), 2, "refused once, then redriven once");
    assert_eq!(tries[0]["batch_id"], tries[1]["batch_id"]);
    // Resume: the batch the pause held went out.
    wait_for("the resumed conversation's batch", PATIENCE, async || {
        sink.acked().iter().any(|b| ids(b) == ["p1", "p2"])
    })
    .await;
    let store = server.inspect();
    assert!(
        entry(&store, PARKED).is_none(),
        "nothing left pending for the redriven one"
    );
    assert!(
        entry(&store, PAUSED).is_none(),
        "nothing left for the resumed one"
    );
    // Pause: the open window is paused (for 2 h), still open, its message not handed off.
    let open = entry(&store, OPEN).expect("the open window");
    assert!(!open["paused_until"].is_null(), "{open}");
    assert_eq!(open["window"]["messages"], 1);
    assert!(!sink.requests().iter().any(|b| ids(b) == ["o1"]));
    assert!(
        !server.logs().contains("4242"),
        "message text reached the server's log"
    );
}
