//! The HTTP sink against real loopback servers that misbehave: every answer a sink can give,
//! and what the sink makes of it (acknowledged, retryable with its Retry-After, or permanent).
//! See `docs/batch.md`, "What each answer does".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lull_core::ports::{Acknowledged, Sink, SinkError};
use lull_core::{Batch, CloseReason, ConversationKey, Message, Millis, Provider};
use lull_sink::{HttpSink, HttpTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A guard against a hang: every call here ends well inside it (it is not a speed assertion).
const HANG: Duration = Duration::from_secs(120);

fn batch() -> Batch {
    Batch::new(
        uuid::Uuid::now_v7(),
        ConversationKey::new(Provider::Meta, "pn", "u"),
        1,
        CloseReason::Quiet,
        Millis(0),
        Millis(8000),
        false,
        vec![Message::text("m", "u", "hi")],
    )
}

/// What a scripted server does once it has read a whole request.
#[derive(Clone)]
enum Act {
    /// Answers with the head (status line and headers, without the blank line) and a body.
    Answer { head: String, body: Body },
    /// Resets the connection after reading part of the request.
    Reset,
    /// Never answers.
    Stall,
    /// Answers a plain HTTP 200 to the first bytes it reads, whatever they are (a TLS client's
    /// hello included).
    PlainAtOnce,
}

#[derive(Clone)]
enum Body {
    Fixed(String),
    /// Chunked, forever (until the client goes away).
    Endless,
}

fn answer(status: &str, headers: &[&str]) -> Act {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    Act::Answer {
        head,
        body: Body::Fixed(String::new()),
    }
}

/// A server's record: requests it read in full, and bytes of body it managed to write.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// The last request read in full, as text.
    last: std::sync::Mutex<String>,
    body_bytes_written: AtomicUsize,
    client_went_away: AtomicUsize,
}

/// A loopback server doing `act` for every connection; returns its base URL and its record.
async fn serve(act: Act) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(handle(s, act.clone(), record.clone()));
        }
    });
    (url, seen)
}

async fn read_request(s: &mut TcpStream, seen: &Seen) {
    let buf = read_all(s).await;
    *seen.last.lock().unwrap() = String::from_utf8_lossy(&buf).into_owned();
    seen.requests.fetch_add(1, Ordering::SeqCst);
}

async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return buf;
        };
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

async fn handle(mut s: TcpStream, act: Act, seen: Arc<Seen>) {
    match act {
        Act::Reset => {
            let mut some = [0u8; 16];
            let _ = s.read(&mut some).await;
            // SO_LINGER 0: closing sends a TCP reset, not a clean FIN.
            let _ = s.set_zero_linger();
            drop(s);
        }
        Act::PlainAtOnce => {
            let mut some = [0u8; 512];
            let _ = s.read(&mut some).await;
            seen.requests.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
        Act::Stall => {
            read_request(&mut s, &seen).await;
            // Hold the connection open, answering nothing, until the client gives up.
            let mut rest = [0u8; 64];
            while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
            seen.client_went_away.fetch_add(1, Ordering::SeqCst);
        }
        Act::Answer { head, body } => {
            read_request(&mut s, &seen).await;
            match body {
                Body::Fixed(b) => {
                    let r = format!("{head}content-length: {}\r\n\r\n{b}", b.len());
                    let _ = s.write_all(r.as_bytes()).await;
                }
                Body::Endless => {
                    let r = format!("{head}transfer-encoding: chunked\r\n\r\n");
                    if s.write_all(r.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                    while s.write_all(chunk.as_bytes()).await.is_ok() {
                        seen.body_bytes_written.fetch_add(0x4000, Ordering::SeqCst);
                    }
                    seen.client_went_away.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}

const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn sink(url: &str, timeout: Duration) -> HttpSink {
    HttpSink::new(HttpTarget::new(url, vec![WHSEC.into()]).unwrap(), timeout).unwrap()
}

async fn deliver(url: &str, timeout: Duration) -> Result<Acknowledged, SinkError> {
    tokio::time::timeout(HANG, sink(url, timeout).deliver(&batch(), timeout))
        .await
        .expect("the sink call ended inside the guard")
}

fn retryable(r: Result<Acknowledged, SinkError>) -> (String, Option<Duration>) {
    match r {
        Err(SinkError::Retryable {
            reason,
            retry_after,
            ..
        }) => (reason, retry_after),
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[tokio::test]
async fn posts_signed_idempotent_json() {
    let (url, seen) = serve(answer("200 OK", &[])).await;
    // A plain (pre-Standard-Webhooks) secret, and a whsec_ one staged for rotation.
    let sink = HttpSink::new(
        HttpTarget::new(&format!("{url}/batches"), vec!["k".into(), WHSEC.into()]).unwrap(),
        Duration::from_secs(30),
    )
    .unwrap();
    let b = batch();
    sink.deliver(&b, Duration::from_secs(30)).await.unwrap();
    let req = seen.last.lock().unwrap().clone();
    let (head, body) = req.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /batches "), "{req}");
    let mut h = reqwest::header::HeaderMap::new();
    for line in head.lines().skip(1) {
        let (n, v) = line.split_once(':').unwrap();
        h.append(
            reqwest::header::HeaderName::from_bytes(n.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    assert_eq!(h["idempotency-key"], b.batch_id.to_string().as_str());
    assert_eq!(h["webhook-id"], b.batch_id.to_string().as_str());
    assert_eq!(h["content-type"], "application/json");
    // Standard Webhooks, verified with the maintained crate as a consumer would, with either key.
    for key in [
        standardwebhooks::Webhook::from_bytes(b"k".to_vec()).unwrap(),
        standardwebhooks::Webhook::new(WHSEC).unwrap(),
    ] {
        key.verify(body.as_bytes(), &h).unwrap();
        assert!(key.verify(body.replace("hi", "ho").as_bytes(), &h).is_err());
    }
    // The deprecated header, while a plain secret is configured.
    let legacy = h["x-lull-signature"].to_str().unwrap();
    let now = Millis::now_wall().0 / 1000;
    lull_sink::verify(b"k", legacy, body.as_bytes(), now, 60).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["batch_id"], b.batch_id.to_string());
}

#[tokio::test]
async fn redirects_are_never_followed_and_are_retryable_failures() {
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let (target, target_seen) = serve(answer("200 OK", &[])).await;
        let loc = format!("location: {target}/elsewhere");
        let (url, seen) = serve(answer(status, &[&loc])).await;
        let (reason, _) = retryable(deliver(&url, Duration::from_secs(30)).await);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1, "{status}");
        assert_eq!(
            target_seen.requests.load(Ordering::SeqCst),
            0,
            "{status}: the redirect target must receive nothing"
        );
        assert!(reason.contains(&status[..3]), "{status}: {reason}");
        assert!(
            reason.contains("redirecting to 127.0.0.1"),
            "{status}: {reason}"
        );
        assert!(
            reason.contains("point the sink at the final URL"),
            "{status}: {reason}"
        );
    }
}

#[tokio::test]
async fn only_a_2xx_acknowledges() {
    for status in ["200 OK", "201 Created", "202 Accepted", "204 No Content"] {
        let (url, seen) = serve(answer(status, &[])).await;
        deliver(&url, Duration::from_secs(30)).await.unwrap();
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn refusals_are_permanent() {
    for status in [
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "410 Gone",
        "413 Payload Too Large",
        "422 Unprocessable Entity",
        "405 Method Not Allowed",
        "418 I'm a teapot",
    ] {
        let (url, _) = serve(answer(status, &["retry-after: 5"])).await;
        match deliver(&url, Duration::from_secs(30)).await {
            Err(SinkError::Permanent { reason, .. }) => {
                assert!(reason.contains(&status[..3]), "{reason}")
            }
            other => panic!("{status}: expected permanent, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn transient_statuses_are_retryable_and_honour_retry_after() {
    let in_90s = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
    for status in [
        "408 Request Timeout",
        "429 Too Many Requests",
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
    ] {
        let (url, _) = serve(answer(status, &[])).await;
        let (reason, after) = retryable(deliver(&url, Duration::from_secs(30)).await);
        assert!(reason.contains(&status[..3]), "{reason}");
        assert_eq!(after, None, "{status} without Retry-After");

        let (url, _) = serve(answer(status, &["retry-after: 7"])).await;
        let (_, after) = retryable(deliver(&url, Duration::from_secs(30)).await);
        assert_eq!(after, Some(Duration::from_secs(7)), "{status}");

        let date = format!("retry-after: {in_90s}");
        let (url, _) = serve(answer(status, &[&date])).await;
        let (_, after) = retryable(deliver(&url, Duration::from_secs(30)).await);
        let after = after.expect("an HTTP-date Retry-After is read");
        assert!(
            after > Duration::from_secs(30) && after <= Duration::from_secs(90),
            "{status}: {after:?}"
        );
    }
}

#[tokio::test]
async fn connection_refused_and_reset_are_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let (reason, _) = retryable(deliver(&refused, Duration::from_secs(30)).await);
    assert!(reason.contains("connection failed"), "{reason}");

    let (url, _) = serve(Act::Reset).await;
    retryable(deliver(&url, Duration::from_secs(30)).await);
}

#[tokio::test]
async fn a_tls_failure_is_retryable() {
    // An https URL to a plain HTTP server, which answers 200 to the TLS hello: the handshake
    // fails, and the 200 acknowledges nothing.
    let (url, seen) = serve(Act::PlainAtOnce).await;
    let https = url.replace("http://", "https://");
    let (reason, _) = retryable(deliver(&https, Duration::from_secs(30)).await);
    assert!(reason.contains("connection failed"), "{reason}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_retryable() {
    let (url, seen) = serve(Act::Stall).await;
    let (reason, _) = retryable(deliver(&url, Duration::from_secs(1)).await);
    assert!(reason.contains("timed out"), "{reason}");
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    went_away(&seen).await;
}

#[tokio::test]
async fn an_endless_body_neither_hangs_nor_is_read() {
    // A 200 acknowledges at its status line; the body is never read.
    let (url, seen) = serve(Act::Answer {
        head: "HTTP/1.1 200 OK\r\n".into(),
        body: Body::Endless,
    })
    .await;
    deliver(&url, Duration::from_secs(600)).await.unwrap();
    went_away(&seen).await;

    // A 500 is retryable; at most a small prefix of its body is read, then the connection is
    // dropped (the server sees the client go away long before the 600 s timeout).
    let (url, seen) = serve(Act::Answer {
        head: "HTTP/1.1 500 Internal Server Error\r\n".into(),
        body: Body::Endless,
    })
    .await;
    let (reason, _) = retryable(deliver(&url, Duration::from_secs(600)).await);
    assert!(
        reason.contains("500") && !reason.contains("timed out"),
        "{reason}"
    );
    went_away(&seen).await;
}

/// Waits until the server has seen the client go away (it notices a closed connection on its
/// next write or read).
async fn went_away(seen: &Seen) {
    lull_testkit::wait_for("the client to go away", HANG, async || {
        seen.client_went_away.load(Ordering::SeqCst) == 1
    })
    .await;
}

/// `lull check`'s delivery: the same request and meaning as a hand-off, plus the status and the
/// sink's verification echo, read from a bounded prefix of the body.
async fn receipt(url: &str, timeout: Duration) -> lull_sink::Receipt {
    tokio::time::timeout(
        HANG,
        sink(url, timeout).deliver_with_receipt(&batch(), timeout),
    )
    .await
    .expect("the sink call ended inside the guard")
}

fn json_answer(status: &str, body: &str) -> Act {
    Act::Answer {
        head: format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\n"
        ),
        body: Body::Fixed(body.into()),
    }
}

#[tokio::test]
async fn a_receipt_reads_the_status_and_the_verification_echo() {
    use lull_sink::Verified;
    let t = Duration::from_secs(30);
    let (url, seen) = serve(json_answer("200 OK", r#"{"verified": true}"#)).await;
    let r = receipt(&url, t).await;
    assert_eq!((r.status, r.verified), (Some(200), Verified::Yes));
    assert!(r.outcome.is_ok());
    // The request is the hand-off's own: signed, idempotent.
    let req = seen.last.lock().unwrap().to_ascii_lowercase();
    assert!(req.contains("webhook-signature: v1,") && req.contains("idempotency-key: "));

    let (url, _) = serve(json_answer("401 Unauthorized", r#"{"verified":false}"#)).await;
    let r = receipt(&url, t).await;
    assert_eq!((r.status, r.verified), (Some(401), Verified::No));
    assert!(
        matches!(&r.outcome, Err(SinkError::Permanent { reason, .. }) if reason.contains("401")),
        "{r:?}"
    );

    let (url, _) = serve(answer("204 No Content", &[])).await;
    let r = receipt(&url, t).await;
    assert_eq!((r.status, r.verified), (Some(204), Verified::NotReported));
    assert!(r.outcome.is_ok());
}

#[tokio::test]
async fn a_receipt_never_follows_a_redirect_and_reads_a_bounded_body() {
    use lull_sink::Verified;
    let (target, target_seen) = serve(json_answer("200 OK", r#"{"verified": true}"#)).await;
    let loc = format!("location: {target}/elsewhere");
    let (url, _) = serve(answer("307 Temporary Redirect", &[&loc])).await;
    let r = receipt(&url, Duration::from_secs(30)).await;
    assert_eq!((r.status, r.verified), (Some(307), Verified::NotReported));
    assert!(
        matches!(r.outcome, Err(SinkError::Retryable { .. })),
        "{r:?}"
    );
    assert_eq!(target_seen.requests.load(Ordering::SeqCst), 0);

    // An endless 200: acknowledged, nothing reported, and only a prefix read before the
    // connection is dropped (long before the 600 s timeout).
    let (url, seen) = serve(Act::Answer {
        head: "HTTP/1.1 200 OK\r\n".into(),
        body: Body::Endless,
    })
    .await;
    let r = receipt(&url, Duration::from_secs(600)).await;
    assert_eq!((r.status, r.verified), (Some(200), Verified::NotReported));
    assert!(r.outcome.is_ok());
    went_away(&seen).await;

    // No answer at all: the transport failure, no status.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let r = receipt(&refused, Duration::from_secs(30)).await;
    assert_eq!((r.status, r.verified), (None, Verified::NotReported));
    assert!(
        matches!(r.outcome, Err(SinkError::Retryable { .. })),
        "{r:?}"
    );
}
