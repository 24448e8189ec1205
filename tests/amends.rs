//! Edits and unsends through a real `lull serve` (`docs/batch.md`, "Edits and unsends"), posted
//! on the generic route (lull's own format: `kind` `edit`/`revoke` with a `target`): inside the
//! open window they change what the sink receives, and the unsent text is gone from the SQLite
//! row at once (read raw, with Python's `sqlite3`); after the hand-off they arrive as `edit` and
//! `revoke` messages naming the batch the original was in. The same for Evolution API and WAHA
//! edits and unsends, in their providers' shapes (the last test).

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

/// A `lull serve` in `dir` whose windows stay open 10 s (edits and unsends land inside them),
/// its batches written to the JSONL file returned.
async fn start(dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let out = dir.join("batches.jsonl");
    let flags = Flags::new()
        .set("--quiet", "10s")
        .set("--max-wait", "60s")
        .set("--sink", format!("jsonl:{}", out.display()));
    (Server::start(&dir.join("data"), &flags).await, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_unsends_change_the_batch_and_erase_the_unsent_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, out) = start(tmp.path()).await;

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

/// A provider payload of `ingest/tests/fixtures/` (its README names each one's source), changed
/// by `set`.
fn fixture(name: &str, set: impl FnOnce(&mut Value)) -> Value {
    let path = lull_tests::repo().join("ingest/tests/fixtures").join(name);
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON");
    set(&mut v);
    v
}

/// Now, in unix seconds: an original sent now (the fixtures' capture times are older than the
/// dedupe horizon, and would be refused as possible replays).
fn now_secs() -> u64 {
    lull_core::Millis::now_wall().0 / 1000
}

/// POSTs `body` to `path` (unsigned: the server runs with `--allow-unsigned`) and checks that
/// its one item was accepted.
async fn post_one(server: &Server, path: &str, body: &Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", server.addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"accepted":1,"duplicates":0,"ignored":0}"#),
        "{path}: {body}"
    );
}

/// The messages of `batch` as (kind, id or target id, text, target batch id).
fn shown(batch: &Value) -> Vec<(String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    batch["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let id = if m["target"].is_object() {
                &m["target"]["message_id"]
            } else {
                &m["id"]
            };
            (
                s(&m["kind"]),
                s(id),
                s(&m["text"]),
                s(&m["target"]["batch_id"]),
            )
        })
        .collect()
}

/// Evolution API (`messages.update` with `editedMessage`, `messages.delete`) and WAHA
/// (`message.edited`, `message.revoked`) through a real `lull serve`, in the shapes of the
/// fixtures `evolution_v2_messages_update_edit.json`, `evolution_v2_messages_delete.json`,
/// `waha_message_edited.json` and `waha_message_revoked.json` (their originals
/// `evolution_v2_3_messages_upsert_text_n8n_fixture.json` and `waha_message_text.json`): inside
/// the open window the edit changes the original in place and the unsend erases a card number
/// from the SQLite row; after the hand-off an edit of the original and an unsend of the message
/// after it arrive as `edit` and `revoke` messages naming their original and its batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evolution_and_waha_edits_and_unsends_change_the_batch_and_erase_the_unsent_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, out) = start(tmp.path()).await;
    let evo_user = "5219991234567@s.whatsapp.net";
    let waha_user = "5219991234567@c.us";
    let original_evo = "TEST_CRITICAL_001";
    let original_waha = "false_5219991234567@c.us_3EB0C767D26A1D2E5F4A";

    let upsert = |id: &str, text: Option<&str>| {
        fixture(
            "evolution_v2_3_messages_upsert_text_n8n_fixture.json",
            |v| {
                v["data"]["key"]["id"] = id.into();
                v["data"]["messageTimestamp"] = now_secs().into();
                if let Some(t) = text {
                    v["data"]["message"]["conversation"] = t.into();
                }
            },
        )
    };
    let evo_edit = |text: Option<&str>| {
        fixture("evolution_v2_messages_update_edit.json", |v| {
            if let Some(t) = text {
                v["data"]["message"]["editedMessage"]["message"]["conversation"] = t.into();
            }
        })
    };
    let evo_delete = |id: &str| {
        fixture("evolution_v2_messages_delete.json", |v| {
            v["data"]["id"] = id.into();
        })
    };
    let waha_text = |id: &str, text: Option<&str>| {
        fixture("waha_message_text.json", |v| {
            v["timestamp"] = lull_core::Millis::now_wall().0.into();
            v["payload"]["id"] = id.into();
            v["payload"]["timestamp"] = now_secs().into();
            if let Some(t) = text {
                v["payload"]["body"] = t.into();
            }
        })
    };
    let waha_edit = |id: Option<&str>, text: Option<&str>| {
        fixture("waha_message_edited.json", |v| {
            v["timestamp"] = lull_core::Millis::now_wall().0.into();
            v["payload"]["timestamp"] = now_secs().into();
            if let Some(id) = id {
                v["payload"]["id"] = id.into();
            }
            if let Some(t) = text {
                v["payload"]["body"] = t.into();
            }
        })
    };
    let waha_revoke = |id: Option<&str>, revoked: &str| {
        fixture("waha_message_revoked.json", |v| {
            v["timestamp"] = lull_core::Millis::now_wall().0.into();
            v["payload"]["after"]["timestamp"] = now_secs().into();
            if let Some(id) = id {
                v["payload"]["after"]["id"] = id.into();
            }
            v["payload"]["revokedMessageId"] = revoked.into();
        })
    };

    // Inside the open windows: each original corrected, a card number sent after it unsent,
    // and the edit retried (applied once).
    post_one(&server, "/webhook/evolution", &upsert(original_evo, None)).await;
    post_one(
        &server,
        "/webhook/evolution",
        &upsert("EVO_CARD_002", Some(SECRET)),
    )
    .await;
    post_one(
        &server,
        "/webhook/evolution",
        &upsert("EVO_COKE_003", Some("y una coca")),
    )
    .await;
    post_one(&server, "/webhook/evolution", &evo_edit(None)).await;
    post_one(&server, "/webhook/evolution", &evo_delete("EVO_CARD_002")).await;
    let retried = reqwest::Client::new()
        .post(format!("http://{}/webhook/evolution", server.addr))
        .body(evo_edit(None).to_string())
        .header("content-type", "application/json")
        .send()
        .await
        .expect("POST");
    assert_eq!(
        retried.text().await.unwrap_or_default(),
        r#"{"accepted":0,"duplicates":1,"ignored":0}"#
    );
    post_one(&server, "/webhook/waha", &waha_text(original_waha, None)).await;
    let card = "false_5219991234567@c.us_3EB0CARD00000000002";
    post_one(&server, "/webhook/waha", &waha_text(card, Some(SECRET))).await;
    let coke = "false_5219991234567@c.us_3EB0COKE00000000003";
    post_one(
        &server,
        "/webhook/waha",
        &waha_text(coke, Some("y una coca")),
    )
    .await;
    post_one(&server, "/webhook/waha", &waha_edit(None, None)).await;
    post_one(
        &server,
        "/webhook/waha",
        &waha_revoke(
            Some("false_5219991234567@c.us_3EB0REVOKE000000000001"),
            "3EB0CARD00000000002",
        ),
    )
    .await;

    let rows = raw_rows(&server);
    assert!(!rows.contains(SECRET), "the unsent text is erased: {rows}");
    assert!(rows.contains("Quiero tres pizzas, por favor."), "{rows}");
    assert!(!rows.contains("Quiero hablar con un humano"), "{rows}");
    assert!(rows.contains("Hola, quiero tres pizzas"), "{rows}");
    assert!(!rows.contains("Hola, quiero dos pizzas"), "{rows}");

    let of = |user: &str| {
        batches(&out)
            .into_iter()
            .filter(|b| b["conversation"]["user"] == user)
            .collect::<Vec<Value>>()
    };
    wait_for("both first batches", PATIENCE, async || {
        !of(evo_user).is_empty() && !of(waha_user).is_empty()
    })
    .await;
    let (evo_first, waha_first) = (of(evo_user).remove(0), of(waha_user).remove(0));
    let text = |s: &str| s.to_string();
    assert_eq!(
        shown(&evo_first),
        [
            (
                text("text"),
                text(original_evo),
                text("Quiero tres pizzas, por favor."),
                text("")
            ),
            (
                text("text"),
                text("EVO_COKE_003"),
                text("y una coca"),
                text("")
            ),
        ]
    );
    assert_eq!(
        shown(&waha_first),
        [
            (
                text("text"),
                text(original_waha),
                text("Hola, quiero tres pizzas"),
                text("")
            ),
            (text("text"), text(coke), text("y una coca"), text("")),
        ]
    );
    for b in [&evo_first, &waha_first] {
        assert!(b["messages"][0]["edited_at"].is_string(), "{b}");
        assert!(!b.to_string().contains(SECRET));
    }

    // After the hand-off: a new edit and an unsend of the original are messages of the next
    // batch, naming the original and the batch it went out in.
    post_one(
        &server,
        "/webhook/evolution",
        &evo_edit(Some("Quiero cuatro pizzas")),
    )
    .await;
    post_one(&server, "/webhook/evolution", &evo_delete("EVO_COKE_003")).await;
    let edit2 = "false_5219991234567@c.us_3EB0EDIT0000000000002";
    post_one(
        &server,
        "/webhook/waha",
        &waha_edit(Some(edit2), Some("Hola, quiero cuatro pizzas")),
    )
    .await;
    post_one(
        &server,
        "/webhook/waha",
        &waha_revoke(None, "3EB0COKE00000000003"),
    )
    .await;
    wait_for("both second batches", PATIENCE, async || {
        of(evo_user).len() >= 2 && of(waha_user).len() >= 2
    })
    .await;
    let named = |b: &Value| b["batch_id"].as_str().unwrap_or("").to_string();
    assert_eq!(
        shown(&of(evo_user)[1]),
        [
            (
                text("edit"),
                text(original_evo),
                text("Quiero cuatro pizzas"),
                named(&evo_first)
            ),
            (
                text("revoke"),
                text("EVO_COKE_003"),
                text(""),
                named(&evo_first)
            ),
        ]
    );
    assert_eq!(
        shown(&of(waha_user)[1]),
        [
            (
                text("edit"),
                text(original_waha),
                text("Hola, quiero cuatro pizzas"),
                named(&waha_first)
            ),
            (text("revoke"), text(coke), text(""), named(&waha_first)),
        ]
    );
}
