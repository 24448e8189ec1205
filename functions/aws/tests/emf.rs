//! The Lambdas' metrics: the core's `metrics` facade names come out as CloudWatch Embedded
//! Metric Format lines (own process: the recorder is global).

use lull_aws::telemetry;
use lull_core::metrics as m;
use serde_json::Value;

#[test]
fn core_metrics_come_out_as_emf() {
    let collector = telemetry::metrics("lull/test").init().expect("installed");
    assert!(
        telemetry::metrics("lull/again").init().is_err(),
        "installed once"
    );

    metrics::counter!(m::BATCHES, "reason" => "quiet").increment(2);
    metrics::counter!(m::MESSAGES_HANDED_OFF).increment(5);
    metrics::histogram!(m::HANDOFF_LAG).record(0.25);
    metrics::histogram!(m::HANDOFF_LAG).record(1.5);

    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!docs.is_empty(), "no EMF line written");

    let find = |name: &str| -> &Value {
        docs.iter()
            .find(|d| d.get(name).is_some())
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
    };
    for d in &docs {
        let cw = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "lull/test");
        assert!(d["_aws"]["Timestamp"].is_u64());
        for metric in cw["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(m::ALL.contains(&name), "{name} is not a core metric");
        }
    }
    let batches = find(m::BATCHES);
    assert_eq!(batches[m::BATCHES], 2);
    assert_eq!(batches["reason"], "quiet");
    assert_eq!(
        batches["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
        serde_json::json!(["reason"])
    );
    let plain = find(m::MESSAGES_HANDED_OFF);
    assert_eq!(plain[m::MESSAGES_HANDED_OFF], 5);
    assert_eq!(plain[m::HANDOFF_LAG], serde_json::json!([0.25, 1.5]));

    // Flushed counters restart from zero: nothing new, nothing written.
    let mut again = Vec::new();
    collector.flush(&mut again).unwrap();
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
}
