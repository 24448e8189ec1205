//! `lull check` against a real sink on loopback: it resolves `serve`'s configuration without
//! starting anything, names each problem on its own line with a non-zero exit, and with
//! `--send-test-batch` hands the sink one batch through the real HTTP sink.

use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use lull_tests::{lull_bin, Capture};

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
    assert!(stdout.contains("acknowledged in"), "{stdout}");
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
