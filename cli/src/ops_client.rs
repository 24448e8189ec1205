//! The client side of a running server's ops listener: `lull redrive` and `lull conversations`
//! go through it when a server holds the data directory.

use std::time::Duration;

use crate::config::Config;

/// POSTs to the running server's ops route `path` (on `--ops-listen`, loopback when it listens
/// on every address), with an optional JSON body; the answer's text, or a message naming the URL.
pub async fn post(
    cfg: &Config,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<String, String> {
    let mut addr = cfg.ops_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/{path}");
    // JSON, and the ops token when one is set: the ops listener's rules (`lull_local::ops_guard`).
    let body = body.unwrap_or_else(|| serde_json::json!({}));
    let mut req = reqwest::Client::new()
        .post(&url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = cfg.ops_tokens.iter().next() {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| {
        format!(
            "a server holds {} but {url} failed: {e}",
            cfg.data_dir.display()
        )
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {}", text.trim()));
    }
    Ok(text.trim().to_string())
}
