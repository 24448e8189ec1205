//! A loopback stand-in for a messaging API (Meta Cloud API, Evolution API, WAHA) that lull calls
//! when a window closes (`on_close`): it records every request exactly as it arrived (method,
//! path, headers, body) and answers as the test says: 200 `{"success":true}`, 500, or never
//! (the connection is held open until the caller gives up), so a test can check the request
//! shapes and that a failing or hanging API never holds a hand-off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with `{"success":true}` (what Meta's and WAHA's docs show).
    Ok,
    /// 500: the API failed.
    Fail,
    /// No answer at all: the connection stays open until the caller drops it.
    Hang,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Header names lowercased, values as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// Requests received and not answered yet.
    open: usize,
}

/// A fake messaging API on loopback.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT` (no trailing `/`).
    pub url: String,
    answer: Answer,
    state: Arc<Mutex<State>>,
}

/// The most a request head or body may take here: the calls lull makes are small.
const MAX_REQUEST: usize = 64 * 1024;

impl FakeApi {
    /// Starts a fake that answers every request with `answer`.
    pub async fn start(answer: Answer) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API");
        let url = format!("http://{}", listener.local_addr().expect("fake API addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer, st.clone()));
            }
        });
        FakeApi { url, answer, state }
    }

    pub fn answer(&self) -> Answer {
        self.answer
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("fake API lock").requests.clone()
    }

    /// Requests received and not answered (held by [`Answer::Hang`], or in flight).
    pub fn open(&self) -> usize {
        self.state.lock().expect("fake API lock").open
    }

    /// The one request whose path is `path`; panics when there is none or more than one.
    pub fn only(&self, path: &str) -> Recorded {
        let all: Vec<Recorded> = self
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        assert_eq!(all.len(), 1, "requests to {path}: {all:#?}");
        all[0].clone()
    }
}

/// Reads one request, records it, answers (or holds the connection).
async fn serve(mut s: TcpStream, answer: Answer, state: Arc<Mutex<State>>) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    {
        let mut st = state.lock().expect("fake API lock");
        st.requests.push(req);
        st.open += 1;
    }
    let reply: &[u8] = match answer {
        Answer::Ok => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"success\":true}",
        Answer::Fail => b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{\"error\":\"down\"}\n",
        Answer::Hang => {
            // Held until the caller closes the connection (its timeout) or an hour passes.
            let mut buf = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(3600), s.read(&mut buf)).await;
            state.lock().expect("fake API lock").open -= 1;
            return;
        }
    };
    let _ = s.write_all(reply).await;
    let _ = s.shutdown().await;
    state.lock().expect("fake API lock").open -= 1;
}

async fn read_request(s: &mut TcpStream) -> Option<Recorded> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || got.len() + n > MAX_REQUEST {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        if got.len() >= end + 4 + len {
            let body = String::from_utf8_lossy(&got[end + 4..end + 4 + len]).to_string();
            return Some(Recorded {
                method,
                path,
                headers,
                body,
            });
        }
    }
}
