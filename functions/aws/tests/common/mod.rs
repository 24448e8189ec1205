//! Test harness: one moto server per test binary on a free loopback port, clients pointed at it,
//! unique table and queue names per test, an HTTP capture sink and an SQS poller that plays the
//! Lambda event source mapping.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use lull_aws::{Accounting, AwsClients};
use lull_core::Batch;

struct Moto {
    endpoint: String,
    _child: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The endpoint of this test binary's moto server, started on first use (see `moto_serial.py`:
/// moto with DynamoDB requests serialised, as real DynamoDB's conditional writes are atomic).
/// It runs under a shell that kills it when this process's end of its stdin pipe closes (the
/// test binary exited, however it exited).
pub fn moto_endpoint() -> String {
    MOTO.get_or_init(|| {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/moto_serial.py");
        let python = std::env::var("LULL_MOTO_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{python} {script} 127.0.0.1 {port} >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"
            ))
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn moto (pip install 'moto[server]')");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            endpoint: format!("http://{addr}"),
            _child: child,
        }
    })
    .endpoint
    .clone()
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

pub async fn clients() -> AwsClients {
    AwsClients::for_endpoint(&moto_endpoint()).await
}

/// A fresh table; returns its name.
pub async fn table(c: &AwsClients) -> String {
    let name = unique("lull");
    lull_aws::store::create_table(&c.dynamodb, &name)
        .await
        .expect("create table");
    name
}

/// Polls `cond` until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback HTTP server that records the batches POSTed to it, and can be told to fail.
#[derive(Clone)]
pub struct CaptureSink {
    pub url: String,
    state: Arc<CaptureState>,
}

#[derive(Default)]
struct CaptureState {
    batches: Mutex<Vec<(Batch, Instant)>>,
    failing: AtomicBool,
    attempts: AtomicU64,
}

impl CaptureSink {
    pub fn start() -> CaptureSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind capture sink");
        let url = format!("http://{}/batches", listener.local_addr().expect("addr"));
        let state = Arc::new(CaptureState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        CaptureSink { url, state }
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Batches acknowledged so far (retries of one batch appear once per acknowledgement).
    pub fn batches(&self) -> Vec<Batch> {
        let b = self.state.batches.lock().unwrap_or_else(|e| e.into_inner());
        b.iter().map(|(b, _)| b.clone()).collect()
    }

    pub fn attempts(&self) -> u64 {
        self.state.attempts.load(Ordering::SeqCst)
    }

    pub fn message_count(&self) -> usize {
        self.batches().iter().map(|b| b.messages.len()).sum()
    }
}

fn serve(mut conn: TcpStream, st: &CaptureState) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, len) = loop {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    st.attempts.fetch_add(1, Ordering::SeqCst);
    let status = if st.failing.load(Ordering::SeqCst) {
        "503 Service Unavailable"
    } else {
        match serde_json::from_slice::<Batch>(&buf[head_end..head_end + len]) {
            Ok(b) => {
                st.batches
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((b, Instant::now()));
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        }
    };
    let _ = conn.write_all(
        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
    );
}

/// Turns received SQS messages into the event Lambda would pass.
pub fn to_event(msgs: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    SqsEvent {
        records: msgs
            .iter()
            .map(|m| SqsMessage {
                message_id: m.message_id().map(String::from),
                receipt_handle: m.receipt_handle().map(String::from),
                body: m.body().map(String::from),
                attributes: m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                            .collect::<HashMap<_, _>>()
                    })
                    .unwrap_or_default(),
                event_source: Some("aws:sqs".into()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Receives up to 10 trigger messages (long-polling up to `wait_secs`), counting the requests
/// as the event source mapping's.
pub async fn receive(
    c: &AwsClients,
    queue: &str,
    wait_secs: i32,
    acct: &Accounting,
) -> Vec<aws_sdk_sqs::types::Message> {
    let out = c
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .expect("receive");
    acct.record("sqs.ReceiveMessage(esm)", 0, 0.0, 0.0);
    out.messages().to_vec()
}

/// Deletes the messages whose ids are not in `failed`, as the event source mapping does.
pub async fn delete_succeeded(
    c: &AwsClients,
    queue: &str,
    msgs: &[aws_sdk_sqs::types::Message],
    failed: &[String],
    acct: &Accounting,
) {
    let entries: Vec<_> = msgs
        .iter()
        .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .expect("entry")
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    c.sqs
        .delete_message_batch()
        .queue_url(queue)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("delete");
    acct.record("sqs.DeleteMessageBatch(esm)", 0, 0.0, 0.0);
}

/// Number of messages in a queue (visible + in flight + delayed).
pub async fn queue_depth(c: &AwsClients, queue: &str) -> (u64, u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = c
        .sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(A::All)
        .send()
        .await
        .expect("attributes");
    let get = |a: A| {
        out.attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        get(A::ApproximateNumberOfMessages),
        get(A::ApproximateNumberOfMessagesNotVisible),
        get(A::ApproximateNumberOfMessagesDelayed),
    )
}
