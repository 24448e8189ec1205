//! Test harness: one moto server per test binary on a free loopback port, clients pointed at it,
//! unique table and queue names per test, an HTTP capture sink and an SQS poller that plays the
//! Lambda event source mapping.
#![allow(dead_code)]

pub mod apigw;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use lull_aws::{Accounting, AwsClients};
use lull_core::Batch;
use lull_testkit::{wait_for, PATIENCE};

struct Moto {
    endpoint: String,
    _child: Child,
}

static MOTO: tokio::sync::OnceCell<Moto> = tokio::sync::OnceCell::const_new();

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// The endpoint of this test binary's moto server, started on first use (see `moto_serial.py`:
/// moto with DynamoDB requests serialised, as real DynamoDB's conditional writes are atomic).
/// It runs under a shell that kills it when this process's end of its stdin pipe closes (the
/// test binary exited, however it exited).
pub async fn moto_endpoint() -> String {
    MOTO.get_or_init(|| async {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/moto_serial.py");
        // The test command's virtual environment (scripts/test), with the pinned moto.
        let python = std::env::var("LULL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{python} {script} 127.0.0.1 {port} >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid"
            ))
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn moto (scripts/test installs it into target/test-venv)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        wait_for(format!("moto_server to listen on {addr}"), PATIENCE, async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        Moto {
            endpoint: format!("http://{addr}"),
            _child: child,
        }
    })
    .await
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
    AwsClients::for_endpoint(&moto_endpoint().await).await
}

/// A fresh table; returns its name.
pub async fn table(c: &AwsClients) -> String {
    let name = unique("lull");
    lull_aws::store::create_table(&c.dynamodb, &name)
        .await
        .expect("create table");
    name
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
    /// The head and body of every acknowledged request, to check signatures.
    raw: Mutex<Vec<(String, Vec<u8>)>>,
    failing: AtomicBool,
    attempts: AtomicU64,
    /// Every batch POSTed, in arrival order (retries included), before it is answered.
    requests: Mutex<Vec<Batch>>,
    /// Holds requests open unanswered (a bot answering after its AI step): see
    /// [`CaptureSink::hold`].
    gate: Mutex<Gate>,
    opened: Condvar,
    /// A header every 2xx carries (the bot's `Lull-Reply: superseded`), when set.
    answer_header: Mutex<Option<(String, String)>>,
}

/// Which requests wait: while `held`, those that arrived after `released_through`.
#[derive(Default)]
struct Gate {
    held: bool,
    arrived: u64,
    released_through: u64,
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

    /// From now on, requests are held open unanswered until released (as `tests/lib.rs`'s
    /// `Capture::hold`): the hand-off stays open while the test plays the bot.
    pub fn hold(&self) {
        self.gate().held = true;
    }

    /// Answers the held requests, and every later one at once.
    pub fn release(&self) {
        self.gate().held = false;
        self.state.opened.notify_all();
    }

    /// Answers the requests held so far, and keeps holding later ones.
    pub fn release_held(&self) {
        let mut g = self.gate();
        g.released_through = g.arrived;
        drop(g);
        self.state.opened.notify_all();
    }

    /// Every 2xx answer from now on carries header `name: value` (set before a release, it
    /// applies to the requests released).
    pub fn answer_with_header(&self, name: &str, value: &str) {
        *self
            .state
            .answer_header
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((name.into(), value.into()));
    }

    /// Answers without an extra header again.
    pub fn answer_plain(&self) {
        *self
            .state
            .answer_header
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.state.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every batch POSTed so far, answered or still held, in arrival order.
    pub fn requests(&self) -> Vec<Batch> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// True when an acknowledged batch holds message `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.batches()
            .iter()
            .any(|b| b.messages.iter().any(|m| m.id == id))
    }

    /// True when every acknowledged request holding message `id` carries a Standard Webhooks
    /// signature (`webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<timestamp>.
    /// <body>">`, `docs/batch.md`) that verifies under the plain secret `secret`, and there is
    /// at least one.
    pub fn signed_with(&self, id: &str, secret: &str) -> bool {
        use base64::Engine;
        use hmac::Mac;
        let raw = self.state.raw.lock().unwrap_or_else(|e| e.into_inner());
        let holding: Vec<&(String, Vec<u8>)> = raw
            .iter()
            .filter(|(_, body)| {
                serde_json::from_slice::<Batch>(body)
                    .is_ok_and(|b| b.messages.iter().any(|m| m.id == id))
            })
            .collect();
        let header = |head: &str, name: &str| -> String {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        !holding.is_empty()
            && holding.iter().all(|(head, body)| {
                let signed = [
                    header(head, "webhook-id").as_bytes(),
                    b".",
                    header(head, "webhook-timestamp").as_bytes(),
                    b".",
                    body,
                ]
                .concat();
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
                mac.update(&signed);
                let want =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                header(head, "webhook-signature")
                    .split(' ')
                    .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
            })
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
    let parsed = serde_json::from_slice::<Batch>(&buf[head_end..head_end + len]);
    if let Ok(b) = &parsed {
        st.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(b.clone());
    }
    {
        let mut g = st.gate.lock().unwrap_or_else(|e| e.into_inner());
        g.arrived += 1;
        let n = g.arrived;
        while g.held && n > g.released_through {
            g = st.opened.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
    let status = if st.failing.load(Ordering::SeqCst) {
        "503 Service Unavailable"
    } else {
        match parsed {
            Ok(b) => {
                st.batches
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((b, Instant::now()));
                st.raw.lock().unwrap_or_else(|e| e.into_inner()).push((
                    String::from_utf8_lossy(&buf[..head_end]).into_owned(),
                    buf[head_end..head_end + len].to_vec(),
                ));
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        }
    };
    let extra = match (
        status.starts_with('2'),
        &*st.answer_header.lock().unwrap_or_else(|e| e.into_inner()),
    ) {
        (true, Some((name, value))) => format!("{name}: {value}\r\n"),
        _ => String::new(),
    };
    let _ = conn.write_all(
        format!("HTTP/1.1 {status}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    );
}

/// Turns received SQS messages into the event Lambda would pass: the JSON shape of Lambda's SQS
/// event, decoded as the runtime decodes it (the event types are `#[non_exhaustive]`).
pub fn to_event(msgs: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let records: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("Lambda's SQS event shape")
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

use lull_aws::sink::BatchSink;
use lull_aws::store::{DynamoDbStore, StoreSettings};
use lull_aws::SqsTrigger;
use lull_aws::{AwsHandoff, AwsIntake};
use lull_core::ports::SystemClock;
use lull_core::protocol::{Handoff, Intake};
use lull_core::{BufferConfig, Policy};

/// One isolated deployment on moto: table, trigger queue + DLQ, capture sink, and two buffers
/// (the webhook's and the flush's) counting their requests separately.
pub struct Harness {
    pub clients: AwsClients,
    pub table: String,
    pub queue: String,
    pub dlq: String,
    pub sink: CaptureSink,
    pub webhook_acct: Accounting,
    pub flush_acct: Accounting,
    pub sweep_acct: Accounting,
    pub esm_acct: Accounting,
    /// The webhook Lambda's appends.
    pub webhook: Arc<AwsIntake>,
    /// The flush Lambda's hand-offs.
    pub flusher: Arc<AwsHandoff>,
    /// The sweep Lambda's hand-offs (its own accounting).
    pub sweeper: Arc<AwsHandoff>,
    /// The table, read directly (no accounting) by tests.
    pub store: DynamoDbStore,
    pub policy: Policy,
}

/// The policy of a test whose messages, sent one after another, must share one window: the quiet
/// period is long against an append, which moto answers in tens of milliseconds but a loaded
/// machine can stall for seconds. (`Harness::policy` keeps a 1 s quiet period for tests that do
/// not depend on it, and for the AWS benchmark, which reuses this harness.)
pub fn roomy_policy() -> Policy {
    Policy::with_times(Duration::from_secs(3), Duration::from_secs(30)).expect("policy")
}

pub fn test_config() -> BufferConfig {
    BufferConfig {
        // A short lease so tests of a dead flush see it run out: a 3 s sink call fits in it.
        timing: lull_core::timing::HandoffTiming::with_lease(
            Duration::from_secs(3),
            Duration::from_secs(5),
        )
        .expect("test timing follows the rule"),
        ..BufferConfig::default()
    }
}

impl Harness {
    /// The tenant directory's item as the table holds it (what a test checks secrets left).
    pub async fn directory_item(&self) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.clients
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(lull_aws::tenants::DIRECTORY_PK.into()),
            )
            .send()
            .await
            .expect("get the directory item")
            .item
            .expect("directory item")
    }

    /// `visibility` and `max_receives` configure the trigger queue's retry and DLQ.
    pub async fn new(visibility_secs: u32, max_receives: u32) -> Harness {
        Harness::with_config(visibility_secs, max_receives, test_config()).await
    }

    /// As [`Harness::new`] with the buffers' hand-off settings (lease, retries) given.
    pub async fn with_config(
        visibility_secs: u32,
        max_receives: u32,
        config: BufferConfig,
    ) -> Harness {
        let clients = clients().await;
        let table = table(&clients).await;
        let (queue, dlq) = lull_aws::trigger::create_queues(
            &clients.sqs,
            &unique("triggers"),
            visibility_secs,
            max_receives,
        )
        .await
        .expect("queues");
        let sink = CaptureSink::start();
        let webhook_acct = Accounting::new();
        let flush_acct = Accounting::new();
        let ports = |acct: &Accounting| {
            let store = DynamoDbStore::new(
                clients.dynamodb.clone(),
                StoreSettings::new(&table),
                acct.clone(),
            );
            let trigger = SqsTrigger::new(clients.sqs.clone(), &queue, acct.clone());
            (store, trigger)
        };
        let handoff = |acct: &Accounting| {
            let (store, trigger) = ports(acct);
            let target =
                lull_sink::HttpTarget::new(&sink.url, vec!["s3cret".into()]).expect("target");
            let http = lull_sink::HttpSink::new(target, Duration::from_secs(2)).expect("sink");
            Arc::new(Handoff::new(
                store,
                trigger,
                // No tenant routes: every batch goes to the deployment's sink, and no tenant
                // asks for read receipts or typing.
                lull_sink::Listening::off(lull_tenants::RoutedSink::new(BatchSink::Any(
                    lull_sink::AnySink::Http(http),
                ))),
                SystemClock,
                config,
            ))
        };
        let sweep_acct = Accounting::new();
        let (store, trigger) = ports(&webhook_acct);
        let webhook = Arc::new(Intake::new(store, trigger, SystemClock, config));
        let flusher = handoff(&flush_acct);
        let sweeper = handoff(&sweep_acct);
        let store = ports(&Accounting::new()).0;
        Harness {
            clients,
            table,
            queue,
            dlq,
            sink,
            webhook_acct,
            flush_acct,
            sweep_acct,
            esm_acct: Accounting::new(),
            webhook,
            flusher,
            sweeper,
            store,
            policy: Policy::with_times(Duration::from_secs(1), Duration::from_secs(3))
                .expect("policy"),
        }
    }

    /// Starts the event source mapping stand-in: receive triggers, call the flush handler,
    /// delete what it did not report failed. Stops when the returned guard drops.
    pub fn start_poller(&self) -> Poller {
        self.start_pollers(1, None)
    }

    /// `n` concurrent pollers (Lambda starts 5 for a standard queue); with `timings`, each
    /// flush handler call's duration in ms and its record count are pushed there.
    pub fn start_pollers(&self, n: usize, timings: Option<FlushTimings>) -> Poller {
        self.start_pollers_of(self.flusher.clone(), n, timings)
    }

    /// The settings a Lambda of `role` reads from its environment, for this deployment: its
    /// table and trigger queue, the capture sink as `LULL_SINK`, tenants' secrets under
    /// `secret_prefix`, short quiet period, max wait, retries and tenant refresh. Built with the
    /// Lambdas' own `Settings::from_lookup`, so `Settings::handoff`, `intake` and `tenants` wire
    /// the adapters exactly as the flush and webhook Lambdas do.
    pub fn lambda_settings(&self, role: lull_aws::Role, secret_prefix: &str) -> lull_aws::Settings {
        self.lambda_settings_with(role, secret_prefix, &[])
    }

    /// [`Harness::lambda_settings`] with more variables (`LULL_ON_NEWER`, `LULL_LOG_SECRET`,
    /// `LULL_PUBLIC_URL`, ...), which override those it sets.
    pub fn lambda_settings_with(
        &self,
        role: lull_aws::Role,
        secret_prefix: &str,
        extra: &[(&'static str, &str)],
    ) -> lull_aws::Settings {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("LULL_TABLE", self.table.clone()),
            ("LULL_TRIGGER_QUEUE_URL", self.queue.clone()),
            ("LULL_SINK", self.sink.url.clone()),
            ("LULL_SECRET_PREFIX", secret_prefix.to_string()),
            ("LULL_TENANT_REFRESH", "300ms".to_string()),
            ("LULL_QUIET", "1s".to_string()),
            ("LULL_MAX_WAIT", "5s".to_string()),
            ("LULL_RETRY_MIN", "50ms".to_string()),
            ("LULL_RETRY_MAX", "300ms".to_string()),
        ]);
        vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        lull_aws::Settings::from_lookup(role, |k| vars.get(k).cloned()).expect("lambda settings")
    }

    /// [`Harness::start_pollers`] calling `flusher`'s handler.
    pub fn start_pollers_of(
        &self,
        flusher: Arc<AwsHandoff>,
        n: usize,
        timings: Option<FlushTimings>,
    ) -> Poller {
        self.start_pollers_settling(flusher, n, timings, None)
    }

    /// One poller calling `flusher` as the flush Lambda's `main.rs` does: through
    /// `flush::handle_invocation`, which waits up to `settle` for the `on_close` calls.
    pub fn start_flush_lambda(&self, flusher: Arc<AwsHandoff>, settle: Duration) -> Poller {
        self.start_pollers_settling(flusher, 1, None, Some(settle))
    }

    /// The pollers; with `settle`, each event goes through `handle_invocation`, else through
    /// `handle_sqs_event`.
    fn start_pollers_settling(
        &self,
        flusher: Arc<AwsHandoff>,
        n: usize,
        timings: Option<FlushTimings>,
        settle: Option<Duration>,
    ) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n.max(1))
            .map(|_| {
                let (clients, queue, buffer, acct, st, timings) = (
                    self.clients.clone(),
                    self.queue.clone(),
                    flusher.clone(),
                    self.esm_acct.clone(),
                    stop.clone(),
                    timings.clone(),
                );
                tokio::spawn(async move {
                    while !st.load(Ordering::SeqCst) {
                        let msgs = receive(&clients, &queue, 1, &acct).await;
                        if msgs.is_empty() {
                            continue;
                        }
                        let started = std::time::Instant::now();
                        let event = to_event(&msgs);
                        let resp = match settle {
                            Some(settle) => {
                                lull_aws::flush::handle_invocation(
                                    &buffer, event, b"test", None, settle,
                                )
                                .await
                            }
                            None => {
                                lull_aws::flush::handle_sqs_event(&buffer, event, b"test", None)
                                    .await
                            }
                        };
                        if let Some(Ok(mut t)) = timings.as_ref().map(|t| t.lock()) {
                            t.push((started.elapsed().as_secs_f64() * 1000.0, msgs.len()));
                        }
                        let failed: Vec<String> = resp
                            .batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier)
                            .collect();
                        delete_succeeded(&clients, &queue, &msgs, &failed, &acct).await;
                    }
                })
            })
            .collect();
        Poller { stop, tasks }
    }
}

/// Flush handler calls: (duration in ms, records handled).
pub type FlushTimings = Arc<std::sync::Mutex<Vec<(f64, usize)>>>;

pub struct Poller {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Poller {
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in std::mem::take(&mut self.tasks) {
            t.await.expect("poller");
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Checks the hand-off invariants over what the sink acknowledged: each message id in exactly
/// one batch id, batches of a conversation in generation order with messages in receive order,
/// and no batch closed early. Returns the distinct batches.
pub fn check_batches(batches: &[Batch], policy: &Policy) -> Vec<Batch> {
    let mut by_id: HashMap<uuid::Uuid, Batch> = HashMap::new();
    let mut order: Vec<uuid::Uuid> = Vec::new();
    for b in batches {
        match by_id.get(&b.batch_id) {
            Some(prev) => assert_eq!(prev, b, "a retried batch must carry the same content"),
            None => {
                order.push(b.batch_id);
                by_id.insert(b.batch_id, b.clone());
            }
        }
    }
    let distinct: Vec<Batch> = order.iter().map(|id| by_id[id].clone()).collect();
    let mut seen: HashMap<(String, String), uuid::Uuid> = HashMap::new();
    let mut last_gen: HashMap<String, (u64, lull_core::Millis)> = HashMap::new();
    for b in &distinct {
        let conv = b.conversation.storage_key();
        for m in &b.messages {
            if let Some(other) = seen.insert((conv.clone(), m.id.clone()), b.batch_id) {
                panic!(
                    "message {} in two batches: {other} and {}",
                    m.id, b.batch_id
                );
            }
        }
        assert!(
            b.messages
                .windows(2)
                .all(|w| w[0].received_at <= w[1].received_at),
            "messages out of receive order in {}",
            b.batch_id
        );
        let first = b.messages.first().expect("non-empty batch").received_at;
        let last = b.messages.last().expect("non-empty batch").received_at;
        if let Some((g, prev_last)) = last_gen.get(&conv) {
            assert!(b.generation > *g, "batches of a conversation out of order");
            assert!(
                first >= *prev_last,
                "a later batch holds an earlier message"
            );
        }
        last_gen.insert(conv, (b.generation, last));
        match b.reason {
            lull_core::CloseReason::Quiet => assert!(
                b.closed_at.since(last) >= policy.quiet,
                "batch {} closed {:?} after its last message: early",
                b.batch_id,
                b.closed_at.since(last)
            ),
            lull_core::CloseReason::MaxWait => assert!(
                b.closed_at.since(first) >= policy.max_wait,
                "batch {} closed for max wait too early",
                b.batch_id
            ),
            _ => {}
        }
    }
    distinct
}

/// The `lull` binary built with `--features aws` (a no-op when up to date).
pub fn lull_aws_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("profile dir")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "lull",
            "--features",
            "aws",
            "--bin",
            "lull",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build -p lull --features aws");
    assert!(status.success(), "building lull --features aws failed");
    profile_dir.join("lull")
}
