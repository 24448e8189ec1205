//! Edits and unsends through a real `lull serve` (`docs/batch.md`, "Edits and unsends"), posted
//! on the generic route (lull's own format: `kind` `edit`/`revoke` with a `target`): inside the
//! open window they change what the sink receives, and the unsent text is gone from the SQLite
//! row at once (read raw, with Python's `sqlite3`); after the hand-off they arrive as `edit` and
//! `revoke` messages naming the batch the original was in.

use std::process::Command;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{test_python, Flags, Server};
use serde_json::{json, Value};

/// A card number sent to the wrong chat: what an unsend must erase.
const SECRET: &str = "4111 1111 1111 1111";

/// Prints the `record` column of every row of the `conversations` table.
const DUMP_ROWS: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (record,) in db.execute("SELECT record FROM conversations"):
    print(record)
"#;

fn raw_rows(server: &Server) -> String {
    let run = Command::new(test_python())
        .arg("-c")
        .arg(DUMP_ROWS)
        .arg(server.data_dir.join("lull.db"))
        .output()
        .expect("run python (scripts/test makes LULL_TEST_PYTHON)");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

async fn post(server: &Server, messages: Value) {
    let body = json!({"account": "pizza-bot", "messages": messages});
    let status = server
        .post_json("/webhook/generic", body.to_string().as_bytes(), &[])
        .await;
    assert_eq!(status, 200, "{}", server.logs());
}

fn batches(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_unsends_change_the_batch_and_erase_the_unsent_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("batches.jsonl");
    let flags = Flags::new()
        .set("--quiet", "10s")
        .set("--max-wait", "60s")
        .set("--sink", format!("jsonl:{}", out.display()));
    let server = Server::start(&tmp.path().join("data"), &flags).await;

    // Inside the open window: "2 pizzas" corrected to "3 pizzas", the card number unsent, and
    // a retry of the edit (applied once).
    post(
        &server,
        json!([
            {"id": "m1", "user": "u1", "text": "2 pizzas"},
            {"id": "m2", "user": "u1", "text": SECRET},
            {"id": "m3", "user": "u1", "text": "and a coke"}
        ]),
    )
    .await;
    post(
        &server,
        json!([
            {"id": "e1", "user": "u1", "kind": "edit", "text": "3 pizzas", "target": {"message_id": "m1"}},
            {"id": "r1", "user": "u1", "kind": "revoke", "target": {"message_id": "m2"}},
            {"id": "e1", "user": "u1", "kind": "edit", "text": "3 pizzas", "target": {"message_id": "m1"}}
        ]),
    )
    .await;
    let rows = raw_rows(&server);
    assert!(
        rows.contains("3 pizzas"),
        "the window is still open: {rows}"
    );
    assert!(!rows.contains(SECRET), "the unsent text is erased: {rows}");
    assert!(
        !rows.contains("2 pizzas"),
        "the edit replaced the text: {rows}"
    );

    wait_for("the first batch", PATIENCE, async || {
        !batches(&out).is_empty()
    })
    .await;
    let first = batches(&out).remove(0);
    let msgs = first["messages"].as_array().expect("messages");
    let seen: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or(""),
                m["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seen, [("m1", "3 pizzas"), ("m3", "and a coke")], "{first}");
    assert!(msgs[0]["edited_at"].is_string(), "{first}");
    assert_eq!(first["text"], "3 pizzas\nand a coke");
    assert!(!first.to_string().contains(SECRET));

    // After the hand-off: an edit and an unsend are messages of the next batch, naming the
    // batch the original went out in.
    post(
        &server,
        json!([
            {"id": "e2", "user": "u1", "kind": "edit", "text": "4 pizzas", "target": {"message_id": "m1"}},
            {"id": "r2", "user": "u1", "kind": "revoke", "target": {"message_id": "m3"}}
        ]),
    )
    .await;
    wait_for("the second batch", PATIENCE, async || {
        batches(&out).len() >= 2
    })
    .await;
    let second = batches(&out).remove(1);
    let msgs = second["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 2, "{second}");
    assert_eq!(msgs[0]["kind"], "edit");
    assert_eq!(msgs[0]["text"], "4 pizzas");
    assert_eq!(msgs[0]["target"]["message_id"], "m1");
    assert_eq!(msgs[0]["target"]["batch_id"], first["batch_id"]);
    assert_eq!(msgs[1]["kind"], "revoke");
    assert_eq!(msgs[1]["target"]["message_id"], "m3");
    assert_eq!(msgs[1]["target"]["batch_id"], first["batch_id"]);

    // An unsend that empties its window: no batch at all, counted.
    post(&server, json!([{"id": "m4", "user": "u2", "text": SECRET}])).await;
    post(
        &server,
        json!([{"id": "r4", "user": "u2", "kind": "revoke", "target": {"message_id": "m4"}}]),
    )
    .await;
    let rows = raw_rows(&server);
    assert!(!rows.contains(SECRET), "{rows}");
    let metrics = server
        .get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("lull_amends_total{effect=\"emptied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lull_amends_total{effect=\"revoked\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lull_amends_total{effect=\"edited\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lull_amends_total{effect=\"forwarded\"} 2"),
        "{metrics}"
    );
}
