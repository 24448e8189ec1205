//! The SAM template (`infra/template.yaml`) against the code: it fails when they disagree.
//!
//! - every environment variable a function reads (`lull_aws::config::known_env`, the telemetry's,
//!   and for the webhook the gateway secrets of `lull_ingest::tenant::env`) is set for it, and
//!   nothing it does not read;
//! - every metric the dashboard and the alarms use is one the code emits (`lull_core::metrics`);
//! - the HTTP API serves exactly the webhook routes of the `Router` (`lull_ingest::WEBHOOK_ROUTES`);
//! - the dashboard body is valid JSON with the widgets an operator needs;
//! - the table, queues, event source (bounded concurrency) and roles have the shape the adapters
//!   rely on; the functions are built for the one architecture they run on;
//! - `make sam-build` builds with the settings of the `lambda` profile;
//! - the defaults it states (sweep limit, idle TTL, due shards) are the code's own.
//!
//! CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`...) parse as tagged YAML
//! values; the helpers below look through them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lull_aws::config::{known_env, Role};
use serde_json::Value as Json;
use yaml_serde::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for (i, k) in path.iter().enumerate() {
        cur = cur
            .get(*k)
            .unwrap_or_else(|| panic!("template: {} missing", path[..=i].join(".")));
    }
    cur
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    get(t, &["Resources", name])
}

fn resources_of_type<'a>(t: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    get(t, &["Resources"])
        .as_mapping()
        .expect("Resources is a mapping")
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

/// A tagged value's tag (`Ref`, `Sub`, ...) and content; None for plain values.
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_string(),
            &t.value,
        )),
        _ => None,
    }
}

fn env_keys(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

const FUNCTIONS: &[(&str, Role, &str)] = &[
    ("WebhookFunction", Role::Webhook, "webhook"),
    ("FlushFunction", Role::Flush, "flush"),
    ("SweepFunction", Role::Sweep, "sweep"),
];

/// Every environment variable the template sets for `function` (Globals merged in, as SAM does).
fn function_env(t: &Value, function: &str) -> BTreeSet<String> {
    let mut env = env_keys(get(t, &["Globals", "Function"]).get("Environment"));
    env.extend(env_keys(
        get(resource(t, function), &["Properties"]).get("Environment"),
    ));
    env
}

#[test]
fn every_variable_a_function_reads_is_set_and_nothing_else() {
    let t = template();
    let serverless: BTreeSet<String> = resources_of_type(&t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.0.to_string()).collect();
    assert_eq!(serverless, expected, "functions of the template");

    for (function, role, _) in FUNCTIONS {
        let env = function_env(&t, function);
        let mut reads: BTreeSet<&str> = known_env(*role).into_iter().collect();
        reads.extend(lull_aws::telemetry::ENV);
        if *role == Role::Webhook {
            reads.extend(lull_ingest::tenant::env::ALL);
        }
        for var in &reads {
            assert!(
                env.contains(*var),
                "{function} reads {var} but the template does not set it"
            );
        }
        for var in env.iter().filter(|v| v.starts_with("LULL_")) {
            assert!(
                reads.contains(var.as_str()),
                "{function}: the template sets {var}, which the {role:?} code never reads"
            );
        }
    }
    // Least privilege for secrets too: the webhook never holds the sink's signing secret.
    assert!(!function_env(&t, "WebhookFunction").contains("LULL_SINK_SECRET"));
}

#[test]
fn the_http_api_serves_exactly_the_webhook_routes() {
    let t = template();
    let mut served = BTreeSet::new();
    for (name, r) in resources_of_type(&t, "AWS::Serverless::Function") {
        let Some(events) = get(r, &["Properties"])
            .get("Events")
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for (_, ev) in events {
            if ev.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            assert_eq!(
                name, "WebhookFunction",
                "only the webhook is on the HTTP API"
            );
            let p = get(ev, &["Properties"]);
            let api = tagged(get(p, &["ApiId"])).expect("ApiId: !Ref HttpApi");
            assert_eq!((api.0.as_str(), api.1.as_str()), ("Ref", Some("HttpApi")));
            let method = get(p, &["Method"]).as_str().unwrap().to_uppercase();
            let path = get(p, &["Path"]).as_str().unwrap().to_string();
            assert!(
                served.insert((method.clone(), path.clone())),
                "{method} {path} twice"
            );
        }
    }
    let routes: BTreeSet<(String, String)> = lull_ingest::WEBHOOK_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served, routes,
        "HTTP API routes vs lull_ingest::WEBHOOK_ROUTES"
    );
    // One API, routes only from the events above (no OpenAPI body adding /metrics or /healthz).
    let apis = resources_of_type(&t, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1);
    let props = get(apis[0].1, &["Properties"]);
    assert!(props.get("DefinitionBody").is_none() && props.get("DefinitionUri").is_none());
    assert!(resources_of_type(&t, "AWS::ApiGatewayV2::Route").is_empty());
    assert!(resources_of_type(&t, "AWS::Serverless::Api").is_empty());
}

/// The dashboard body with `${...}` placeholders filled, parsed.
fn dashboard(t: &Value) -> Json {
    let body = get(resource(t, "Dashboard"), &["Properties", "DashboardBody"]);
    let (tag, sub) = tagged(body).expect("DashboardBody: !Sub");
    assert_eq!(tag, "Sub");
    let (text, vars) = match sub {
        Value::String(s) => (s.clone(), None),
        Value::Sequence(s) => (s[0].as_str().unwrap().to_string(), s[1].as_mapping()),
        other => panic!("DashboardBody: unexpected {other:?}"),
    };
    if let Some(vars) = vars {
        let ns = tagged(vars.get("Ns").expect("Ns")).expect("Ns: !Sub").1;
        assert_eq!(ns.as_str(), Some(METRICS_NAMESPACE));
    }
    // Every ${X} names a parameter, a resource, a pseudo parameter or a Sub variable.
    let params = get(t, &["Parameters"]).as_mapping().unwrap();
    let mut filled = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        filled.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closing brace") + i;
        let name = &rest[i + 2..end];
        let base = name.split('.').next().unwrap();
        let known = base.starts_with("AWS::")
            || params.contains_key(base)
            || get(t, &["Resources"]).get(base).is_some()
            || vars.is_some_and(|v| v.contains_key(base));
        assert!(
            known,
            "dashboard: ${{{name}}} names nothing in the template"
        );
        let is_number = params
            .get(base)
            .and_then(|p| p.get("Type"))
            .and_then(Value::as_str)
            == Some("Number");
        filled.push_str(if is_number { "10" } else { "placeholder" });
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    serde_json::from_str(&filled).unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}"))
}

const METRICS_NAMESPACE: &str = "lull/${AWS::StackName}";

/// `lull_*` words in a string.
fn lull_names(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("lull_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + word.len()..];
        out.push(word);
    }
    out
}

#[test]
fn the_dashboard_is_json_with_the_widgets_and_only_emitted_metrics() {
    let t = template();
    // The functions publish in the namespace the dashboard and alarms read.
    let ns = get(&t, &["Globals", "Function", "Environment", "Variables"])
        .get(lull_aws::telemetry::METRICS_NAMESPACE_ENV)
        .and_then(tagged)
        .expect("LULL_METRICS_NAMESPACE: !Sub ...");
    assert_eq!(ns.1.as_str(), Some(METRICS_NAMESPACE));

    let d = dashboard(&t);
    let widgets = d["widgets"].as_array().expect("widgets");
    let text = serde_json::to_string(&d).unwrap();
    let used: BTreeSet<String> = lull_names(&text).into_iter().collect();
    for name in &used {
        assert!(
            lull_core::metrics::ALL.contains(&name.as_str()),
            "dashboard uses {name}, which the code never emits"
        );
    }
    use lull_core::metrics as m;
    for name in [
        m::MESSAGES_RECEIVED,
        m::MESSAGES_HANDED_OFF,
        m::BATCHES,
        m::HANDOFF_LAG,
        m::DUPLICATES,
        m::STALE_TRIGGERS,
        m::EARLY_TRIGGERS,
        m::WRITE_CONFLICTS,
        m::SINK_FAILURES,
        m::IGNORED_EVENTS,
    ] {
        assert!(used.contains(name), "dashboard does not show {name}");
    }
    let titles: Vec<String> = widgets
        .iter()
        .filter_map(|w| w["properties"]["title"].as_str())
        .map(str::to_lowercase)
        .collect();
    for wanted in [
        "received vs handed off",
        "batches by reason",
        "lag",
        "duplicates",
        "stale",
        "conflicts",
        "sink failures",
        "dead-letter queue depth",
        "oldest trigger age",
        "errors",
        "throttles",
        "duration",
        "4xx / 5xx",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no dashboard widget for {wanted:?}: {titles:?}"
        );
    }
    // Hand-off lag as p50 and p99.
    let lag_stats: BTreeSet<&str> = widgets
        .iter()
        .filter_map(|w| w["properties"]["metrics"].as_array())
        .flatten()
        .filter_map(Json::as_array)
        .filter(|row| row.iter().any(|x| x == m::HANDOFF_LAG))
        .filter_map(|row| row.last()?.get("stat")?.as_str())
        .collect();
    assert!(
        lag_stats.contains("p50") && lag_stats.contains("p99"),
        "{lag_stats:?}"
    );
    for aws in [
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
        "Duration",
        "4xx",
        "5xx",
    ] {
        assert!(
            text.contains(&format!("\"{aws}\"")),
            "dashboard lacks {aws}"
        );
    }
    // Every metric widget lists metrics and a region.
    for w in widgets.iter().filter(|w| w["type"] == "metric") {
        assert!(w["properties"]["metrics"]
            .as_array()
            .is_some_and(|m| !m.is_empty()));
        assert!(w["properties"]["region"].is_string());
    }
}

/// (namespace is lull's, metric name) of every metric an alarm reads.
fn alarm_metrics(alarm: &Value) -> Vec<(bool, String)> {
    let is_lull = |ns: Option<&Value>| {
        ns.and_then(tagged)
            .is_some_and(|(tag, v)| tag == "Sub" && v.as_str() == Some(METRICS_NAMESPACE))
    };
    let p = get(alarm, &["Properties"]);
    let mut out = Vec::new();
    if let Some(name) = p.get("MetricName").and_then(Value::as_str) {
        out.push((is_lull(p.get("Namespace")), name.to_string()));
    }
    for q in p
        .get("Metrics")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        if let Some(metric) = q.get("MetricStat").and_then(|s| s.get("Metric")) {
            let name = get(metric, &["MetricName"]).as_str().unwrap().to_string();
            out.push((is_lull(metric.get("Namespace")), name));
        }
    }
    out
}

#[test]
fn alarms_use_emitted_metrics_and_notify_the_optional_topic() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let mut lull_metrics = BTreeSet::new();
    let mut aws_metrics = BTreeSet::new();
    for (name, alarm) in &alarms {
        let metrics = alarm_metrics(alarm);
        assert!(!metrics.is_empty(), "{name} reads no metric");
        for (is_lull, metric) in metrics {
            if metric.starts_with("lull_") {
                assert!(is_lull, "{name}: {metric} read outside lull's namespace");
            }
            if is_lull {
                assert!(
                    lull_core::metrics::ALL.contains(&metric.as_str()),
                    "{name} alarms on {metric}, which the code never emits"
                );
                lull_metrics.insert(metric);
            } else {
                aws_metrics.insert(metric);
            }
        }
        let actions = get(alarm, &["Properties", "AlarmActions"]);
        let (tag, args) = tagged(actions).unwrap_or_else(|| panic!("{name}: AlarmActions !If"));
        assert_eq!(tag, "If");
        assert_eq!(args[0].as_str(), Some("HasAlarmTopic"), "{name}");
    }
    assert!(
        lull_metrics.contains(lull_core::metrics::HANDOFF_LAG),
        "lag alarm"
    );
    assert!(
        lull_metrics.contains(lull_core::metrics::SINK_FAILURES),
        "sink failure alarm"
    );
    assert!(
        aws_metrics.contains("ApproximateNumberOfMessagesVisible"),
        "DLQ alarm"
    );
    assert!(aws_metrics.contains("Errors"), "function error alarm");
    // The DLQ alarm watches the DLQ; the lag alarm's threshold is the parameter.
    let dlq = get(
        resource(&t, "DeadLetterAlarm"),
        &["Properties", "Dimensions"],
    );
    let q = tagged(get(&dlq[0], &["Value"])).unwrap();
    assert_eq!(q.1.as_str(), Some("DeadLetterQueue.QueueName"));
    let lag = tagged(get(
        resource(&t, "HandoffLagAlarm"),
        &["Properties", "Threshold"],
    ))
    .unwrap();
    assert_eq!(lag.1.as_str(), Some("LagAlarmSeconds"));
    assert!(get(&t, &["Parameters", "AlarmTopicArn", "Default"]).as_str() == Some(""));
}

#[test]
fn table_queues_and_functions_have_the_shape_the_adapters_need() {
    let t = template();
    let table = get(resource(&t, "Table"), &["Properties"]);
    assert_eq!(
        get(table, &["BillingMode"]).as_str(),
        Some("PAY_PER_REQUEST")
    );
    let attrs: BTreeMap<String, String> = get(table, &["AttributeDefinitions"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                get(a, &["AttributeName"]).as_str().unwrap().into(),
                get(a, &["AttributeType"]).as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [("pk", "S"), ("due_shard", "N"), ("due_at", "N")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(attrs, want, "attributes (lull_aws::store::create_table)");
    let gsi = &get(table, &["GlobalSecondaryIndexes"])[0];
    assert_eq!(
        get(gsi, &["IndexName"]).as_str(),
        Some(lull_aws::store::DUE_INDEX)
    );
    assert_eq!(
        get(gsi, &["Projection", "ProjectionType"]).as_str(),
        Some("KEYS_ONLY")
    );
    assert_eq!(
        get(&gsi["KeySchema"][0], &["AttributeName"]).as_str(),
        Some("due_shard")
    );
    assert_eq!(
        get(&gsi["KeySchema"][1], &["AttributeName"]).as_str(),
        Some("due_at")
    );
    assert_eq!(
        get(&gsi["KeySchema"][1], &["KeyType"]).as_str(),
        Some("RANGE")
    );
    assert_eq!(
        get(table, &["TimeToLiveSpecification", "AttributeName"]).as_str(),
        Some("ttl")
    );
    assert_eq!(
        get(
            table,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        ),
        &Value::Bool(true)
    );
    assert_eq!(
        get(table, &["SSESpecification", "SSEEnabled"]),
        &Value::Bool(true)
    );

    // Visibility timeout at least 6x the flush timeout; redrive to the DLQ after N receives.
    let queue = get(resource(&t, "TriggerQueue"), &["Properties"]);
    let visibility = get(queue, &["VisibilityTimeout"]).as_u64().unwrap();
    let flush = get(resource(&t, "FlushFunction"), &["Properties"]);
    let flush_timeout = get(flush, &["Timeout"]).as_u64().unwrap();
    assert!(
        visibility >= 6 * flush_timeout,
        "{visibility} < 6 x {flush_timeout}"
    );
    let max_receive = tagged(get(queue, &["RedrivePolicy", "maxReceiveCount"])).unwrap();
    assert_eq!(max_receive.1.as_str(), Some("MaxReceiveCount"));
    let sqs_event = get(flush, &["Events", "Triggers", "Properties"]);
    assert_eq!(
        get(sqs_event, &["FunctionResponseTypes"])[0].as_str(),
        Some("ReportBatchItemFailures")
    );
    // The flush's concurrency is bounded by a parameter (SQS allows 2..=1000), so a burst of
    // closing windows cannot flood the sink.
    let max_conc = tagged(get(sqs_event, &["ScalingConfig", "MaximumConcurrency"]))
        .expect("MaximumConcurrency: !Ref <parameter>");
    assert_eq!(max_conc.0, "Ref");
    let param = get(&t, &["Parameters", max_conc.1.as_str().unwrap()]);
    assert_eq!(get(param, &["Type"]).as_str(), Some("Number"));
    assert_eq!(get(param, &["MinValue"]).as_u64(), Some(2));
    assert!(get(param, &["MaxValue"]).as_u64().unwrap() <= 1000);
    assert!(get(param, &["Default"]).as_u64().unwrap() >= 2);
    let schedule = get(
        resource(&t, "SweepFunction"),
        &[
            "Properties",
            "Events",
            "EveryMinute",
            "Properties",
            "Schedule",
        ],
    );
    assert_eq!(schedule.as_str(), Some("rate(1 minute)"));

    // Functions: the runtime, memory and architecture of the budget; each builds its own binary.
    let globals = get(&t, &["Globals", "Function"]);
    assert_eq!(get(globals, &["Runtime"]).as_str(), Some("provided.al2023"));
    assert_eq!(get(globals, &["MemorySize"]).as_u64(), Some(128));
    // A literal, not a parameter: `sam build` compiles for it, so deploy cannot disagree.
    assert_eq!(get(globals, &["Architectures"])[0].as_str(), Some("arm64"));
    assert!(t["Parameters"].get("Architecture").is_none());
    for (function, _, bin) in FUNCTIONS {
        let f = resource(&t, function);
        assert_eq!(
            get(f, &["Metadata", "BuildMethod"]).as_str(),
            Some("rust-cargolambda")
        );
        assert_eq!(
            get(f, &["Metadata", "BuildProperties", "Binary"]).as_str(),
            Some(*bin)
        );
        let code = get(f, &["Properties", "CodeUri"]).as_str().unwrap();
        let manifest = root().join("infra").join(code).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{function}: CodeUri {code}: {manifest:?}: {e}"));
        assert!(
            text.contains(&format!("name = \"{bin}\"")),
            "{function}: {manifest:?} has no binary {bin}"
        );
        // An explicit role: SAM then attaches no managed policy (those grant `*` resources).
        assert!(
            get(f, &["Properties"]).get("Policies").is_none(),
            "{function}"
        );
        let role = tagged(get(f, &["Properties", "Role"])).unwrap();
        assert_eq!(role.0, "GetAtt", "{function}");
    }
}

fn walk<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                path.push(k.as_str().unwrap_or("?").to_string());
                out.push((path.join("."), x));
                walk(x, path, out);
                path.pop();
            }
        }
        Value::Sequence(s) => {
            for x in s {
                walk(x, path, out);
            }
        }
        Value::Tagged(t) => walk(&t.value, path, out),
        _ => {}
    }
}

/// The Secrets Manager prefix of this stack's tenant secrets (`LULL_SECRET_PREFIX`).
const TENANT_SECRETS: &str = ":secret:lull/${AWS::StackName}/tenants/*";

#[test]
fn no_policy_grants_a_wildcard_resource() {
    let t = template();
    let mut nodes = Vec::new();
    walk(get(&t, &["Resources"]), &mut Vec::new(), &mut nodes);
    let mut statements = 0;
    for (path, v) in nodes {
        if !path.ends_with(".Resource") {
            continue;
        }
        statements += 1;
        let mut strings = Vec::new();
        walk_strings(v, &mut strings);
        for s in strings {
            // The one allowed prefix: tenants' secrets are created by `lull tenants apply --aws`
            // after deployment, one per tenant, under this stack's own name.
            if s.ends_with(TENANT_SECRETS) {
                continue;
            }
            assert!(!s.contains('*'), "{path}: wildcard resource {s:?}");
        }
    }
    assert!(
        statements >= 10,
        "found only {statements} policy statements"
    );
}

fn walk_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(s) => s.iter().for_each(|x| walk_strings(x, out)),
        Value::Mapping(m) => m.values().for_each(|x| walk_strings(x, out)),
        Value::Tagged(t) => walk_strings(&t.value, out),
        _ => {}
    }
}

/// `make sam-build` gives SAM's `--release` build the `lambda` profile's settings: the variables
/// in the Makefile must be exactly `[profile.lambda]` of Cargo.toml (besides `inherits`).
#[test]
fn sam_build_uses_the_lambda_profile() {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut profile = BTreeMap::new();
    let mut inside = false;
    for line in cargo.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[profile.lambda]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if inside && !key.starts_with('#') && key != "inherits" {
            let var = format!(
                "CARGO_PROFILE_RELEASE_{}",
                key.to_uppercase().replace('-', "_")
            );
            profile.insert(var, value.trim().trim_matches('"').to_string());
        }
    }
    assert!(profile.len() >= 5, "[profile.lambda]: {profile:?}");

    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let set: BTreeMap<String, String> = makefile
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("CARGO_PROFILE_RELEASE_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        set, profile,
        "Makefile's LAMBDA_PROFILE vs [profile.lambda]"
    );
    assert!(
        makefile.contains("$(LAMBDA_PROFILE) sam build"),
        "sam-build runs sam build with them"
    );
}

/// The Lambdas' timeouts, the trigger queue's visibility and the sink timeout follow the core's
/// one hand-off timing rule: a flush whose function timeout is shorter than a lease could never
/// take one (it would re-arm forever and hand nothing off).
#[test]
fn function_timeouts_and_visibility_follow_the_hand_off_timing_rule() {
    let t = template();
    let secs = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a number: {v:?}"));
    let visibility = Duration::from_secs(secs(get(
        resource(&t, "TriggerQueue"),
        &["Properties", "VisibilityTimeout"],
    )));
    for function in ["FlushFunction", "SweepFunction"] {
        let f = resource(&t, function);
        let vars = get(f, &["Properties", "Environment", "Variables"]);
        let sink_timeout = vars
            .get("LULL_SINK_TIMEOUT")
            .and_then(Value::as_str)
            .map(|v| humantime::parse_duration(v).expect("LULL_SINK_TIMEOUT is a duration"))
            .unwrap_or(lull_core::timing::DEFAULT_SINK_TIMEOUT);
        let lease = vars
            .get("LULL_LEASE")
            .or_else(|| {
                get(&t, &["Globals", "Function", "Environment", "Variables"]).get("LULL_LEASE")
            })
            .and_then(Value::as_str)
            .map(|v| humantime::parse_duration(v).expect("LULL_LEASE is a duration"));
        let timing = match lease {
            Some(lease) => lull_core::timing::HandoffTiming::with_lease(sink_timeout, lease),
            None => lull_core::timing::HandoffTiming::new(sink_timeout),
        }
        .unwrap_or_else(|e| panic!("{function}: {e}"));
        let timeout = Duration::from_secs(secs(get(f, &["Properties", "Timeout"])));
        timing
            .check_deadline("function timeout", timeout)
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        if function == "FlushFunction" {
            assert!(
                visibility >= timing.min_visibility_timeout().max(timeout),
                "trigger queue visibility {visibility:?} below the flush timeout {timeout:?}"
            );
        }
    }
}

/// The sweep's limit is the core's one default (`SWEEP_LIMIT`, which `lull serve` uses too):
/// the template states no other.
#[test]
fn the_sweep_limit_is_the_cores() {
    let t = template();
    let vars = get(
        resource(&t, "SweepFunction"),
        &["Properties", "Environment", "Variables"],
    );
    if let Some(limit) = vars.get("LULL_SWEEP_LIMIT") {
        assert_eq!(
            limit.as_str().and_then(|v| v.parse::<usize>().ok()),
            Some(lull_core::protocol::SWEEP_LIMIT),
            "LULL_SWEEP_LIMIT in the template: {limit:?}"
        );
    }
}

/// The store's settings in the template are the code's one default each
/// (`lull_aws::store::StoreSettings::new`, which `LULL_IDLE_TTL` and `LULL_DUE_SHARDS` fall back
/// to): the template states no other.
#[test]
fn the_store_settings_in_the_template_are_the_codes_defaults() {
    let t = template();
    let vars = get(&t, &["Globals", "Function", "Environment", "Variables"]);
    let defaults = lull_aws::store::StoreSettings::new("any");
    if let Some(ttl) = vars.get("LULL_IDLE_TTL") {
        let ttl = ttl.as_str().map(humantime::parse_duration);
        assert!(
            matches!(ttl, Some(Ok(d)) if d == defaults.idle_ttl),
            "LULL_IDLE_TTL in the template: {ttl:?}"
        );
    }
    if let Some(shards) = vars.get("LULL_DUE_SHARDS") {
        assert_eq!(
            shards.as_str().and_then(|v| v.parse::<u32>().ok()),
            Some(defaults.due_shards),
            "LULL_DUE_SHARDS in the template: {shards:?}"
        );
    }
}
