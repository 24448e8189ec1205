//! Helpers for lull's workspace-level integration tests: the real `lull` binary on a free
//! loopback port with a temporary data directory, a capture sink on loopback, provider-shaped
//! payloads, and `lull serve` flags by name. Waiting is `lull_testkit`'s (a condition with a
//! deadline, never a fixed sleep).

pub mod flood;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use lull_testkit::{holds_within, PATIENCE};
use serde_json::Value;

/// The `lull` binary of this build profile, built on first use (a no-op when up to date), so
/// `cargo test --workspace` on a fresh clone needs no separate build step.
pub fn lull_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("profile dir")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "lull",
            "--bin",
            "lull",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p lull");
        assert!(status.success(), "cargo build -p lull failed");
        profile_dir.join(format!("lull{}", std::env::consts::EXE_SUFFIX))
    })
    .clone()
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free loopback ports: all bound at once, read, then released, so two picks in a
/// row can never be the same port (the kernel may hand a just-released port out again).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("bound port").port())
}

/// A Meta Cloud API webhook body with one text message, shaped like the captured fixture.
pub fn meta_text(phone_number_id: &str, from: &str, id: &str, text: &str) -> Value {
    let mut v: Value = serde_json::from_str(include_str!("fixtures/meta_cloud_text.json"))
        .expect("fixture parses");
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = phone_number_id.into();
    value["contacts"][0]["wa_id"] = from.into();
    let msg = &mut value["messages"][0];
    msg["from"] = from.into();
    msg["id"] = id.into();
    msg["text"]["body"] = text.into();
    // Sent now: a message older than the dedupe horizon would be refused as a possible replay.
    msg["timestamp"] = (lull_core::Millis::now_wall().0 / 1000).to_string().into();
    v
}

/// `lull serve` flags by name: a test states each setting it relies on, and overrides one by
/// naming its flag, never by its position in a list.
#[derive(Clone, Debug, Default)]
pub struct Flags(Vec<(String, Option<String>)>);

impl Flags {
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Sets `flag` to `value`, replacing the value it had.
    pub fn set(mut self, flag: &str, value: impl Into<String>) -> Flags {
        let value = Some(value.into());
        match self.0.iter_mut().find(|(f, _)| f == flag) {
            Some(entry) => entry.1 = value,
            None => self.0.push((flag.to_string(), value)),
        }
        self
    }

    /// Adds the switch `flag` (a flag without a value), once.
    pub fn switch(mut self, flag: &str) -> Flags {
        if !self.0.iter().any(|(f, _)| f == flag) {
            self.0.push((flag.to_string(), None));
        }
        self
    }

    /// The command-line arguments, in the order the flags were first set.
    pub fn args(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(f, v)| std::iter::once(f.clone()).chain(v.clone()))
            .collect()
    }
}

/// How many times [`Server::start_with`] picks ports when lull finds one taken.
const PORT_ATTEMPTS: u32 = 3;

/// A running `lull serve`.
pub struct Server {
    pub child: Child,
    /// The webhook listener.
    pub addr: SocketAddr,
    /// The ops listener (`/healthz`, `/metrics`, `/redrive`).
    pub ops_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    client: reqwest::Client,
}

impl Server {
    /// Starts `lull serve` with `flags` on free ports (webhooks and ops), in unsigned mode (the
    /// tests post unsigned webhooks on loopback), and waits until `/healthz` answers.
    pub async fn start(data_dir: &Path, flags: &Flags) -> Server {
        Server::start_with(data_dir, &flags.clone().switch("--allow-unsigned")).await
    }

    /// [`Server::start`] without `--allow-unsigned`. A port taken by another process between
    /// its pick and lull's bind (a shared machine runs many tests at once) is picked again, at
    /// most [`PORT_ATTEMPTS`] times; any other failure to start fails the test with lull's log.
    pub async fn start_with(data_dir: &Path, flags: &Flags) -> Server {
        let mut attempt = 1;
        loop {
            match Server::try_start(data_dir, flags).await {
                Ok(server) => return server,
                Err(log) if attempt < PORT_ATTEMPTS && log.contains("in use") => attempt += 1,
                Err(log) => panic!("lull did not become healthy:\n{log}"),
            }
        }
    }

    /// One start on freshly picked ports: the server once `/healthz` answers, or lull's log.
    async fn try_start(data_dir: &Path, flags: &Flags) -> Result<Server, String> {
        let [port, ops_port] = free_ports::<2>();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let ops_addr: SocketAddr = format!("127.0.0.1:{ops_port}").parse().expect("addr");
        let log = data_dir.with_extension(format!("{port}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(lull_bin())
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--ops-listen")
            .arg(ops_addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags.args())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn lull");
        let mut server = Server {
            child,
            addr,
            ops_addr,
            data_dir: data_dir.to_path_buf(),
            log,
            client: reqwest::Client::new(),
        };
        let mut exited = false;
        let healthy = holds_within(PATIENCE, async || {
            exited = !matches!(server.child.try_wait(), Ok(None));
            exited
                || server
                    .get("/healthz")
                    .await
                    .is_ok_and(|r| r.status().is_success())
        })
        .await;
        if healthy && !exited {
            return Ok(server);
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        Err(server.logs())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the ops listener.
    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .get(format!("http://{}{path}", self.ops_addr))
            .send()
            .await
    }

    /// GET on the webhook listener.
    pub async fn get_webhook(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
    }

    /// POSTs JSON `body` to the ops listener's `path`; returns the status (0 when the request
    /// failed).
    pub async fn client_post_ops(&self, path: &str, body: &Value) -> u16 {
        self.post_value(self.ops_addr, path, body).await
    }

    async fn post_value(&self, addr: SocketAddr, path: &str, body: &Value) -> u16 {
        match self
            .client
            .post(format!("http://{addr}{path}"))
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// POSTs a Meta-shaped body; returns the status (0 when the request failed).
    pub async fn post_meta(&self, body: &Value) -> u16 {
        self.post_value(self.addr, "/webhook/meta", body).await
    }

    /// POSTs raw JSON `body` to the webhook `path` with `headers`; returns the status (0 when
    /// the request failed).
    pub async fn post_json(&self, path: &str, body: &[u8], headers: &[(&str, String)]) -> u16 {
        let mut req = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .timeout(Duration::from_secs(10));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        match req.send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited cleanly in time.
    pub async fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut status = None;
        let exited = holds_within(PATIENCE, async || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        })
        .await;
        if !exited {
            self.kill9();
        }
        status.is_some_and(|s| s.success())
    }

    /// `lull inspect --json` of this server's data directory.
    pub fn inspect(&self) -> Vec<Value> {
        let out = Command::new(lull_bin())
            .args(["inspect", "--json", "--show-keys", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("lull inspect");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the capture sink answers.
#[derive(Default)]
pub struct CaptureState {
    /// Every request body, in arrival order (retries included).
    pub requests: Mutex<Vec<Value>>,
    /// Acknowledged batches (2xx answered), in order.
    pub acked: Mutex<Vec<Value>>,
    /// Answer 503 to every batch while set.
    pub failing: AtomicBool,
    /// Answer 503 to batches of this user only.
    pub failing_user: Mutex<Option<String>>,
    /// Refuse (422) the first delivery of each batch of this user, accept the later ones: a
    /// batch parks, and a redrive then gets it through.
    pub refuse_once_user: Mutex<Option<String>>,
    /// The batch ids refused so far under `refuse_once_user`.
    pub refused: Mutex<std::collections::HashSet<String>>,
    /// While true, every 2xx answer carries `Lull-Reply: superseded` (the bot discarded its
    /// reply because the user wrote again: docs/batch.md, "The reply guard").
    pub declare_superseded: AtomicBool,
    /// While true, requests wait until it turns false (a hand-off in flight): see
    /// [`Capture::hold`] and [`Capture::release`].
    hold: tokio::sync::watch::Sender<bool>,
    pub in_flight: AtomicUsize,
}

/// An HTTP sink on loopback collecting batches.
pub struct Capture {
    pub url: String,
    pub state: Arc<CaptureState>,
}

impl Capture {
    pub async fn start() -> Capture {
        let state = Arc::new(CaptureState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind capture");
        let url = format!(
            "http://{}/batches",
            listener.local_addr().expect("capture addr")
        );
        let app = Router::new()
            .route("/batches", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Capture { url, state }
    }

    /// From now on, requests are held open unanswered until [`Capture::release`].
    pub fn hold(&self) {
        self.state.hold.send_replace(true);
    }

    /// Answers the held requests, and every later one at once.
    pub fn release(&self) {
        self.state.hold.send_replace(false);
    }

    pub fn acked(&self) -> Vec<Value> {
        self.state.acked.lock().expect("lock").clone()
    }

    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Waits (up to [`lull_testkit::PATIENCE`]) for an acknowledged batch other than `first`
    /// (the conversation's next one, in a test of one conversation).
    pub async fn next_batch(&self, first: &Value) -> Value {
        let next = || {
            self.unique_batches()
                .into_iter()
                .find(|b| b["batch_id"] != first["batch_id"])
        };
        lull_testkit::wait_for("the next batch", lull_testkit::PATIENCE, async || {
            next().is_some()
        })
        .await;
        next().expect("the next batch")
    }

    /// Acknowledged batches deduped on `batch_id`, as a receiver would.
    pub fn unique_batches(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.acked()
            .into_iter()
            .filter(|b| seen.insert(b["batch_id"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

async fn receive(State(st): State<Arc<CaptureState>>, body: axum::body::Bytes) -> Response {
    let status = answer(&st, body).await;
    if status.is_success() && st.declare_superseded.load(Ordering::SeqCst) {
        return (status, [("lull-reply", "superseded")]).into_response();
    }
    status.into_response()
}

async fn answer(st: &CaptureState, body: axum::body::Bytes) -> StatusCode {
    let Ok(batch) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    st.requests.lock().expect("lock").push(batch.clone());
    st.in_flight.fetch_add(1, Ordering::SeqCst);
    // An error means the sender is gone (the test is ending): nothing left to wait for.
    let _ = st.hold.subscribe().wait_for(|held| !held).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    let user = batch["conversation"]["user"].as_str().unwrap_or("");
    let user_fails = st.failing_user.lock().expect("lock").as_deref() == Some(user);
    if st.failing.load(Ordering::SeqCst) || user_fails {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if st.refuse_once_user.lock().expect("lock").as_deref() == Some(user) {
        let id = batch["batch_id"].as_str().unwrap_or("").to_string();
        if st.refused.lock().expect("lock").insert(id) {
            return StatusCode::UNPROCESSABLE_ENTITY;
        }
    }
    st.acked.lock().expect("lock").push(batch);
    StatusCode::OK
}

/// The message ids of a batch, in order.
pub fn ids(batch: &Value) -> Vec<String> {
    batch["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The Python of the test command's virtual environment (`scripts/test` sets
/// `LULL_TEST_PYTHON`), else `python3` from PATH.
pub fn test_python() -> String {
    std::env::var("LULL_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A running consumer example of `examples/consumers/` and the lines it printed (`listening
/// <port>`, `processed ...`, `duplicate ...`, `refused ...`); killed on drop.
pub struct Consumer {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Where it takes batches: `http://127.0.0.1:<port>/batches`.
    pub url: String,
}

impl Consumer {
    /// `examples/consumers/python/consumer.py` (the test command's Python, with the pinned
    /// `standardwebhooks`), verifying with `secret`.
    pub async fn python(secret: &str) -> Consumer {
        let mut cmd = Command::new(test_python());
        cmd.arg(repo().join("examples/consumers/python/consumer.py"));
        Consumer::start(cmd, "Python", secret).await
    }

    /// `examples/consumers/node/consumer.js` (after `npm ci` there), verifying with `secret`.
    pub async fn node(secret: &str) -> Consumer {
        let dir = repo().join("examples/consumers/node");
        assert!(
            dir.join("node_modules/standardwebhooks").is_dir(),
            "run `npm ci --prefix examples/consumers/node` first (scripts/test does)"
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("consumer.js")).current_dir(&dir);
        Consumer::start(cmd, "Node", secret).await
    }

    async fn start(mut cmd: Command, what: &str, secret: &str) -> Consumer {
        let mut child = cmd
            .env("LULL_SINK_SECRET", secret)
            .env("PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {what} consumer: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let mut consumer = Consumer {
            child,
            lines,
            url: String::new(),
        };
        lull_testkit::wait_for(
            format!("the {what} consumer to listen"),
            PATIENCE,
            async || consumer.line("listening ").is_some(),
        )
        .await;
        let port = consumer.line("listening ").expect("listening line");
        consumer.url = format!("http://127.0.0.1:{}/batches", port.trim());
        consumer
    }

    /// The rest of the first line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<String> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
