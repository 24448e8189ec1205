//! Shared helpers: locating and starting binaries, free loopback ports, Meta-shaped bodies,
//! percentiles, wall-clock milliseconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The directory holding this binary (`<target>/release`).
pub fn profile_dir() -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .ok_or("current_exe has no parent directory")?
        .to_path_buf())
}

/// A binary of this workspace next to `lull-bench`, built with `cargo build --release -p PKG`
/// first when it is missing (a no-op when up to date is not attempted: build before benching).
pub fn sibling_bin(pkg: &str, bin: &str) -> Res<PathBuf> {
    let dir = profile_dir()?;
    let path = dir.join(bin);
    if !path.exists() {
        let target = dir.parent().ok_or("no target directory")?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", pkg, "--bin", bin, "--target-dir"])
            .arg(target);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status()?;
        if !status.success() {
            return Err(format!("cargo build -p {pkg} --bin {bin} failed").into());
        }
    }
    Ok(path)
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Unix time in milliseconds (fractional), from the system clock (the clock lull stamps with).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// RFC 3339 (lull's `received_at`/`closed_at`) to Unix milliseconds.
pub fn rfc3339_ms(s: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0)
}

/// Waits until `addr` accepts TCP connections, or fails after `within`.
pub async fn wait_listening(addr: SocketAddr, within: Duration) -> Res<()> {
    let listening = lull_testkit::holds_within(within, async || {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    if listening {
        Ok(())
    } else {
        Err(format!("{addr} did not start listening within {within:?}").into())
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real `lull serve` on `addr` with a data directory and extra flags.
pub fn spawn_lull(lull: &Path, addr: SocketAddr, data_dir: &Path, extra: &[String]) -> Res<Proc> {
    std::fs::create_dir_all(data_dir)?;
    let log = std::fs::File::create(data_dir.with_extension("log"))?;
    let child = Command::new(lull)
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        // The benches post unsigned webhooks on loopback; the ops routes are not used.
        .args(["--allow-unsigned", "--ops-listen", "127.0.0.1:0"])
        .args(extra)
        // The server's log filter: warn, unless LULL_BENCH_LOG says otherwise (e.g. info, to
        // read each hand-off's lag as lull saw it in `<data-dir>.log`).
        .env(
            "RUST_LOG",
            std::env::var("LULL_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Proc(child))
}

/// A fresh scratch directory under the system temp dir, removed by `ScratchDir`'s drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> Res<ScratchDir> {
        let p = std::env::temp_dir().join(format!(
            "lull-bench-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&p)?;
        Ok(ScratchDir(p))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Meta Cloud API webhook body with one text message, shaped like
/// `tests/fixtures/meta_cloud_text.json` (the captured fixture), with the given sender and wamid.
pub fn meta_body(phone_number_id: &str, from: &str, wamid: &str, text: &str) -> String {
    format!(
        concat!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"#,
            r#""messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{pnid}"}},"#,
            r#""contacts":[{{"profile":{{"name":"Sheena Nelson"}},"wa_id":"{from}"}}],"#,
            r#""messages":[{{"from":"{from}","id":"{wamid}","timestamp":"{now}","type":"text","text":{{"body":"{text}"}}}}]"#,
            r#"}},"field":"messages"}}]}}]}}"#
        ),
        pnid = phone_number_id,
        from = from,
        wamid = wamid,
        text = text,
        // Sent now: a message older than the dedupe horizon is refused as a possible replay.
        now = lull_core::Millis::now_wall().0 / 1000,
    )
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sort(v: &mut [f64]) {
    v.sort_by(|a, b| a.total_cmp(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_body_is_json_of_the_fixture_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&meta_body("106540352242922", "5511", "wamid.x", "hi"))
                .expect("json");
        let value = &v["entry"][0]["changes"][0]["value"];
        assert_eq!(value["messages"][0]["id"], "wamid.x");
        assert_eq!(value["metadata"]["phone_number_id"], "106540352242922");
        assert_eq!(value["contacts"][0]["wa_id"], "5511");
    }

    #[test]
    fn percentiles_and_times() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(pct(&v, 50.0), 2.0);
        assert_eq!(pct(&v, 99.0), 4.0);
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.500Z"), Some(1500.0));
    }
}
