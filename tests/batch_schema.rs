//! `docs/batch.schema.json` against real batches: a real `lull serve` closes windows of every
//! message kind (through the generic route, which takes them all, and Meta's real payload
//! shape), writes them to a JSONL sink, and Python's `jsonschema` (pinned in
//! `scripts/requirements-test.txt`) validates each line against the schema.

use std::path::Path;
use std::process::Command;

use lull_testkit::{wait_for, PATIENCE};
use lull_tests::{meta_text, test_python, Flags, Server};
use serde_json::json;

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema, format_checker=FormatChecker())
n = 0
for line in open(sys.argv[2]):
    errors = sorted(v.iter_errors(json.loads(line)), key=str)
    for e in errors:
        print("invalid:", list(e.absolute_path), e.message)
    if errors:
        sys.exit(1)
    n += 1
print(n, "valid")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_batches_match_the_published_schema() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("batches.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let flags = Flags::new().set("--quiet", "300ms").set("--sink", sink);
    let server = Server::start(&tmp.path().join("data"), &flags).await;

    assert_eq!(
        server
            .post_meta(&meta_text(
                "106540352242922",
                "16505551234",
                "wamid.s1",
                "hi"
            ))
            .await,
        200
    );
    let generic = json!({
        "account": "schema-bot",
        "messages": [
            {"id": "g1", "user": "u1", "text": "hi", "sender_name": "Ann", "sender_phone": "+15550001",
             "sent_at": lull_core::Millis::now_wall().rfc3339()},
            {"id": "g2", "user": "u1", "kind": "image", "caption": "this one",
             "media": {"url": "https://cdn.example/x.jpg", "mime_type": "image/jpeg", "id": "m1"},
             "reply_to": "g1"},
            {"id": "g3", "user": "u1", "kind": "audio", "media": {"id": "m2", "voice": true}},
            {"id": "g4", "user": "u1", "kind": "document", "media": {"url": "https://cdn.example/a.pdf", "filename": "a.pdf"}},
            {"id": "g5", "user": "u1", "kind": "location",
             "location": {"latitude": 52.52, "longitude": 13.4, "name": "Office", "address": "Main St 1"}},
            {"id": "g6", "user": "u1", "kind": "contacts", "contacts": [{"name": "Bo", "phones": ["+1555"]}]},
            {"id": "g7", "user": "u1", "kind": "button", "reply": {"id": "yes", "title": "Yes"}},
            {"id": "g8", "user": "u1", "kind": "reaction", "reaction": {"message_id": "g1", "emoji": "👍"}},
            {"id": "g9", "user": "u1", "kind": "reaction", "reaction": {"message_id": "g2"}},
            {"id": "g10", "user": "u1", "kind": "other", "provider_type": "poll"},
            {"id": "g11", "user": "u2", "group": "grp-7", "text": "in a group"}
        ]
    });
    let status = reqwest::Client::new()
        .post(format!("http://{}/webhook/generic", server.addr))
        .json(&generic)
        .send()
        .await
        .expect("post generic")
        .status();
    assert_eq!(status, 200, "{}", server.logs());
    // Three conversations: the Meta user, generic u1, and the generic group.
    wait_for("three batches", PATIENCE, async || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.lines().count() >= 3)
    })
    .await;

    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/batch.schema.json");
    let run = Command::new(test_python())
        .arg("-c")
        .arg(VALIDATE)
        .arg(&schema)
        .arg(&out)
        .output()
        .expect("run python (scripts/test makes LULL_TEST_PYTHON)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("3 valid"), "{stdout}");

    // The schema is not vacuous: a batch missing its id, or with an unknown reason, fails.
    let line = std::fs::read_to_string(&out).expect("batches");
    let mut bad: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("JSON");
    bad["reason"] = "bored".into();
    let bad_file = tmp.path().join("bad.jsonl");
    std::fs::write(&bad_file, format!("{bad}\n")).expect("write");
    let run = Command::new(test_python())
        .arg("-c")
        .arg(VALIDATE)
        .arg(&schema)
        .arg(&bad_file)
        .output()
        .expect("run python");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("invalid: ['reason']"));
}
