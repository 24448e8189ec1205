//! `lull check` against a real sink on loopback: it resolves `serve`'s configuration without
//! starting anything, names each problem on its own line with a non-zero exit, and with
//! `--send-test-batch` hands the sink one batch through the real HTTP sink and reports the
//! answer: status, latency, and whether the sink says the signature verified (the consumer
//! examples verify with the real `standardwebhooks` packages and echo `"verified"`).

use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::Duration;

use lull_tests::{lull_bin, wait_for, Capture, Consumer};

const WAIT: Duration = Duration::from_secs(30);

fn check<S: AsRef<str>>(args: &[S]) -> Output {
    Command::new(lull_bin())
        .arg("check")
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .expect("run lull check")
}

/// Runs `lull check` off the runtime's threads, so the loopback sink keeps answering.
async fn check_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || check(&args))
        .await
        .expect("lull check task")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_batch_reaches_the_sink_and_its_answer_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sink = Capture::start().await;
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--sink",
        sink.url.as_str(),
        "--sink-secret",
        "check-secret",
        "--send-test-batch",
    ];
    let out = check_async(args.iter().map(|a| a.to_string()).collect()).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sink http (127.0.0.1:"), "{stdout}");
    assert!(stdout.contains(": HTTP 200 in "), "{stdout}");
    assert!(stdout.contains(" ms, acknowledged\n"), "{stdout}");
    // The capture sink answers 200 with an empty body: nothing said about the signature.
    assert!(
        stdout.contains("sink: signature verified by the sink: not reported (the answer has no"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    let got = sink.acked();
    assert_eq!(got.len(), 1, "one test batch: {got:?}");
    assert_eq!(got[0]["conversation"]["user"], "lull-check");
    assert!(
        stdout.contains(got[0]["batch_id"].as_str().unwrap()),
        "the report names the batch: {stdout}"
    );
    assert!(
        !data.exists(),
        "check starts nothing and creates no data dir"
    );

    // A sink that answers 503: reported with the status, non-zero exit.
    sink.state.failing.store(true, Ordering::SeqCst);
    let data2 = tmp.path().join("data2");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data2.to_str().unwrap(),
        "--sink",
        sink.url.as_str(),
        "--send-test-batch",
    ];
    let out = check_async(args.iter().map(|a| a.to_string()).collect()).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(": HTTP 503 in "), "{stdout}");
    assert!(stderr.contains("not acknowledged"), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stdout.contains("no sink secret"), "{stdout}");
}

#[test]
fn every_problem_is_named_on_its_own_line() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory under a regular file, and a listen address already taken.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let data = file.join("data");
    let out = check(&["--listen", &listen, "--data-dir", data.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("problem: "))
        .collect();
    assert_eq!(problems.len(), 2, "{stderr}");
    assert!(problems.iter().any(|l| l.contains("is not a directory")));
    assert!(problems.iter().any(|l| l.contains(&listen)));
    assert!(stderr.contains("2 problem(s)"), "{stderr}");

    // A setting serve would refuse: named as serve names it.
    let out = check(&[
        "--quiet",
        "soon",
        "--data-dir",
        tmp.path().to_str().unwrap(),
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("LULL_QUIET") && stderr.contains("\"soon\""),
        "{stderr}"
    );
    drop(taken);
}

/// `lull check --send-test-batch`'s arguments: nothing to start, `sink`, and `secret` if any.
fn test_batch_args(data: &std::path::Path, sink: &str, secret: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--sink".into(),
        sink.into(),
        "--send-test-batch".into(),
    ];
    if let Some(secret) = secret {
        args.extend(["--sink-secret".to_string(), secret.to_string()]);
    }
    args
}

/// The batch id `lull check` reported ("sink: test batch <id>: ...").
fn reported_batch_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("sink: test batch "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no test batch line: {stdout}"))
        .to_string()
}

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_examples_verify_the_test_batch_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for consumer in [Consumer::python(SECRET).await, Consumer::node(SECRET).await] {
        let out = check_async(test_batch_args(&data, &consumer.url, Some(SECRET))).await;
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains(": HTTP 200 in "), "{stdout}");
        assert!(
            stdout.contains("\nsink: signature verified by the sink: yes\n"),
            "{stdout}"
        );
        assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
        // The consumer verified it with its `standardwebhooks` package and worked on it.
        let id = reported_batch_id(&stdout);
        wait_for("the consumer to work on the test batch", WAIT, || {
            consumer
                .line("processed ")
                .is_some_and(|l| l.starts_with(&id))
        })
        .await;
    }
    assert!(!data.exists(), "check creates no data dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_cannot_verify_fails_the_check_naming_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let consumer = Consumer::python(SECRET).await;

    // lull signs with another secret: the consumer refuses with 401 and `"verified": false`.
    let out = check_async(test_batch_args(&data, &consumer.url, Some(OTHER_SECRET))).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains(": HTTP 401 in "), "{stdout}");
    assert!(stdout.contains(" ms, not acknowledged\n"), "{stdout}");
    assert!(
        stdout.contains("\nsink: signature verified by the sink: no\n"),
        "{stdout}"
    );
    let id = reported_batch_id(&stdout);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("problem: "))
        .collect();
    assert_eq!(
        problems,
        [format!(
            "problem: sink: the sink says test batch {id}'s signature did not verify (HTTP 401, \
             not acknowledged): the sink's secret and lull's sink secret (LULL_SINK_SECRET / \
             --sink-secret) differ: give both the same one"
        )],
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("1 problem(s)"), "{stderr}");
    wait_for("the consumer's refusal", WAIT, || {
        consumer.line("refused ").is_some()
    })
    .await;

    // No secret at all: the batch goes unsigned, and the fix says so.
    let out = check_async(test_batch_args(&data, &consumer.url, None)).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("\nsink: signature verified by the sink: no\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("lull has no sink secret, so the batch went unsigned"),
        "{stderr}"
    );
    assert!(
        consumer.line("processed ").is_none(),
        "nothing unverified was worked on"
    );
}

#[test]
fn sinks_that_do_not_sign_are_not_applicable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("batches.jsonl");
    let jsonl = format!("jsonl:{}", file.display());
    let out = check(&test_batch_args(&data, &jsonl, None));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            " ms, acknowledged\nsink: signature verified by the sink: not applicable \
                         (the JSONL sink does not sign batches)\n"
        ),
        "{stdout}"
    );
    let id = reported_batch_id(&stdout);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains(&id), "{written}");

    let out = check(&test_batch_args(&data, "stdout", None));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "sink: signature verified by the sink: not applicable (the stdout sink \
                         does not sign batches)"
        ),
        "{stdout}"
    );
}
