//! Log lines in the shape AWS Lambda Powertools users query: one flat JSON object per event.
//!
//! `tracing-subscriber`'s own JSON format nests the event's fields under `fields` and each span's
//! under `spans[]`, so a Logs Insights query has to know which span carried what. Powertools'
//! loggers (Python, TypeScript, Java, .NET) write every key at the top level instead:
//!
//! ```json
//! {"level":"INFO","message":"handed off","service":"lull","cold_start":true,
//!  "function_request_id":"8f5...","conversation":"3fa1...","gen":2,"location":"lull_aws::flush:62"}
//! ```
//!
//! - `level`, `message`, `location` (module and line), `service` (`POWERTOOLS_SERVICE_NAME`),
//!   `function_name` (`AWS_LAMBDA_FUNCTION_NAME`, when set) on every line;
//! - inside an invocation: `function_request_id`, `cold_start` (true only in the process's
//!   first invocation) and `xray_trace_id` when traced, from the runtime's invocation span;
//! - the fields of every enclosing span, then of the event, as top-level keys (an inner one wins
//!   on a clash): the flush span's `conversation` is the keyed hash of the conversation key
//!   (`ConversationKey::log_hash`), never a phone number.
//!
//! Hand-written because no maintained crate formats `tracing` events this way: it is a
//! `FormatEvent` over the JSON span fields `tracing-subscriber` already stores, plus a small
//! layer that marks the first invocation span.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The name of the span `lambda_runtime`'s `TracingLayer` opens around each invocation.
pub const INVOKE_SPAN: &str = "Lambda runtime invoke";

/// Span fields renamed to Powertools' keys (the runtime names them in camelCase).
const RENAMED: &[(&str, &str)] = &[
    ("requestId", "function_request_id"),
    ("xrayTraceId", "xray_trace_id"),
];

/// The keys written first, in this order; the rest follow sorted by name.
const LEADING: &[&str] = &[
    "level",
    "message",
    "service",
    "cold_start",
    "function_request_id",
];

/// Formats each event as one flat JSON line (see the module docs). Use with
/// `fmt_fields(JsonFields::new())`, so span fields are stored as JSON, and with [`ColdStart`].
#[derive(Clone, Debug)]
pub struct PowertoolsFormat {
    service: String,
    function_name: Option<String>,
}

impl PowertoolsFormat {
    /// `service` is Powertools' service name; `function_name` the Lambda function's.
    pub fn new(service: impl Into<String>, function_name: Option<String>) -> Self {
        Self {
            service: service.into(),
            function_name,
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for PowertoolsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(cold) = ext.get::<Invocation>() {
                    line.insert("cold_start".into(), Value::Bool(cold.0));
                }
                let Some(stored) = ext.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                // JsonFields stores a span's fields as a JSON object (empty when it has none).
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&stored.fields) {
                    for (k, v) in fields {
                        line.insert(renamed(&k).to_string(), v);
                    }
                }
            }
        }
        event.record(&mut Fields(&mut line));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("service".into(), Value::from(self.service.as_str()));
        if let Some(name) = &self.function_name {
            line.insert("function_name".into(), Value::from(name.as_str()));
        }
        let location = match meta.line() {
            Some(n) => format!("{}:{n}", meta.target()),
            None => meta.target().to_string(),
        };
        line.insert("location".into(), Value::from(location));

        // Written by hand, leading keys first: serde_json's maps sort their keys unless the
        // whole workspace turns on `preserve_order`.
        let leading: Vec<(String, Value)> = LEADING
            .iter()
            .filter_map(|k| line.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        writer.write_char('{')?;
        let mut first = true;
        for (k, v) in leading.iter().map(|(k, v)| (k, v)).chain(&line) {
            if !first {
                writer.write_char(',')?;
            }
            first = false;
            let k = serde_json::to_string(k).map_err(|_| fmt::Error)?;
            let v = serde_json::to_string(v).map_err(|_| fmt::Error)?;
            write!(writer, "{k}:{v}")?;
        }
        writeln!(writer, "}}")
    }
}

fn renamed(key: &str) -> &str {
    RENAMED
        .iter()
        .find(|(from, _)| *from == key)
        .map_or(key, |(_, to)| to)
}

/// An event's fields as JSON values (the `message` is the formatted text).
struct Fields<'a>(&'a mut BTreeMap<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_string(), Value::from(value.to_string()));
    }
}

/// Whether an invocation span is the process's first (its cold start).
struct Invocation(bool);

/// Marks each invocation span (named [`INVOKE_SPAN`]) cold or warm: the first one a process opens
/// is its cold start. Counted per invocation, not per log line, so an invocation that logs
/// nothing still uses up the cold start.
#[derive(Debug, Default)]
pub struct ColdStart {
    seen: AtomicBool,
}

impl<S> Layer<S> for ColdStart
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != INVOKE_SPAN {
            return;
        }
        let cold = !self.seen.swap(true, Ordering::Relaxed);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Invocation(cold));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use lambda_runtime::layers::trace::request_span;
    use lambda_runtime::Context as LambdaContext;
    use lull_core::{ConversationKey, Provider};
    use serde_json::Map;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Everything the subscriber writes, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Map<String, Value>> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| match serde_json::from_str(l) {
                    Ok(Value::Object(m)) => m,
                    other => panic!("not a JSON object: {l} ({other:?})"),
                })
                .collect()
        }
    }

    fn invocation(request_id: &str) -> tracing::Span {
        let mut ctx = LambdaContext::default();
        ctx.request_id = request_id.to_string();
        ctx.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        // The runtime's own span: a rename upstream fails this test, not the dashboards.
        request_span(&ctx)
    }

    #[test]
    fn lines_are_flat_powertools_objects_with_the_hashed_conversation() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(ColdStart::default())
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(PowertoolsFormat::new("lull-test", Some("flush-fn".into())))
                    .with_writer(move || writer.clone()),
            );
        let key = ConversationKey::new(Provider::Meta, "1065550001", "5511999990000");
        let hash = key.log_hash(b"log-secret");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("init done");
            for (n, request) in ["req-1", "req-2", "req-3"].into_iter().enumerate() {
                let _invoke = invocation(request).entered();
                if n == 1 {
                    continue; // an invocation that logs nothing still ends the cold start
                }
                let _flush =
                    tracing::info_span!("flush", conversation = %hash, gen = 7u64).entered();
                tracing::info!(batch_id = "b-1", messages = 3u64, "handed off");
            }
        });

        let lines = out.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        // Powertools' keys lead, in its order (the parsed maps below are sorted).
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let raw: Vec<&str> = text.lines().collect();
        assert!(
            raw[1].starts_with(
                r#"{"level":"INFO","message":"handed off","service":"lull-test","cold_start":true,"function_request_id":"req-1","#
            ),
            "{}",
            raw[1]
        );
        for line in &lines {
            assert_eq!(line["service"], "lull-test");
            assert_eq!(line["function_name"], "flush-fn");
            assert_eq!(line["level"], "INFO");
            assert!(line["location"].as_str().unwrap().contains("log_format"));
            for nested in ["fields", "span", "spans", "requestId"] {
                assert!(!line.contains_key(nested), "{nested} in {line:?}");
            }
        }

        let init = &lines[0];
        assert_eq!(init["message"], "init done");
        assert!(!init.contains_key("function_request_id"));
        assert!(!init.contains_key("cold_start"));

        let (cold, warm) = (&lines[1], &lines[2]);
        assert_eq!(cold["message"], "handed off");
        assert_eq!(cold["function_request_id"], "req-1");
        assert_eq!(cold["cold_start"], true);
        assert_eq!(
            cold["xray_trace_id"],
            "Root=1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(cold["conversation"], hash.to_string());
        assert_eq!(cold["gen"], 7);
        assert_eq!(cold["batch_id"], "b-1");
        assert_eq!(cold["messages"], 3);
        assert_eq!(warm["function_request_id"], "req-3");
        assert_eq!(warm["cold_start"], false);

        // Personal data stays out: neither number appears anywhere in the output.
        assert!(!text.contains("5511999990000") && !text.contains("1065550001"));
    }
}
