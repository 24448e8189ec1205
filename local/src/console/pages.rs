//! The console's HTML. maud escapes every interpolated value (`(value)`), so message text, keys
//! and sink errors cannot inject markup; nothing here writes raw HTML (`PreEscaped`) but the
//! fixed style sheet.

use std::time::Duration;

use lull_core::timeline::{self, Standing, What};
use lull_core::window::{ClosedBatch, Hold};
use lull_core::{Conversation, Millis};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::chart::{self, Minute};
use super::{Listed, TenantScope};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.state{font-weight:600}.parked{color:#b03a2e}.paused{color:#9a7d0a}\
.note{color:#666}.done{background:#e8f6ef;border:1px solid #a9dfbf;padding:6px}\
form.inline{display:inline-block;margin:0 .5em .5em 0}button{padding:3px 10px}\
code{font-size:12px}nav a{margin-right:1em}.text{white-space:pre-wrap;background:#fffbe6}";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · lull console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav { a href="/console" { "lull console" } }
                (body)
            }
        }
    }
}

pub fn problem(title: &str, detail: &str) -> Markup {
    layout(title, html! { h1 { (title) } p { (detail) } })
}

/// `12 s ago`, `in 3 min`.
fn rel(at: Millis, now: Millis) -> String {
    let (d, future) = if at.0 >= now.0 {
        (Duration::from_millis(at.0 - now.0), true)
    } else {
        (Duration::from_millis(now.0 - at.0), false)
    };
    let s = d.as_secs();
    let amount = if s < 120 {
        format!("{s} s")
    } else if s < 7_200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3_600)
    } else {
        format!("{} days", s / 86_400)
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn when(at: Millis, now: Millis) -> Markup {
    html! { time datetime=(at.rfc3339()) title=(at.rfc3339()) { (rel(at, now)) } }
}

fn conv_link(key: &str) -> String {
    format!(
        "/console/conversation?{}",
        serde_urlencoded::to_string([("key", key)]).unwrap_or_default()
    )
}

fn search() -> Markup {
    html! {
        form method="get" action="/console/conversation" {
            label { "Conversation key " input type="text" name="key" size="50"
                placeholder="meta|106540352242922|5511999990000"; }
            " " button type="submit" { "Open" }
        }
    }
}

fn activity(minutes: Option<&[Minute]>) -> Markup {
    html! {
        h2 { "Last hour (all tenants of this process)" }
        @match minutes {
            Some(m) => (chart::svg(m)),
            None => p.note { "Not available here: see the CloudWatch dashboard (docs/deploy.md)." },
        }
    }
}

pub fn index(
    describe: &str,
    tenants: &[TenantScope],
    minutes: Option<&[Minute]>,
    _now: Millis,
) -> Markup {
    layout(
        "Tenants",
        html! {
            h1 { "Tenants" }
            p.note { (describe) }
            table {
                tr { th { "tenant" } th { "accounts" } }
                @for t in tenants {
                    tr {
                        td { a href=(format!("/console/tenants/{}", urlencode(&t.id))) { (t.id) }
                             @if t.removed { " (removed)" } }
                        td {
                            @for (p, accounts) in &t.accounts {
                                (p.as_str()) ": "
                                @match accounts {
                                    Some(a) => (a.join(", ")),
                                    None => "every account",
                                }
                                br;
                            }
                        }
                    }
                }
            }
            h2 { "Find a conversation" }
            (search())
            (activity(minutes))
        },
    )
}

fn urlencode(s: &str) -> String {
    form_path(s)
}

/// Percent-encodes a path segment.
fn form_path(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why a conversation waits, in words.
fn why(s: &Standing, now: Millis) -> Markup {
    match s {
        Standing::Idle => html! { "nothing held" },
        Standing::Paused { until, reason } => html! {
            span.paused { "paused (" (reason.as_str()) ") until " (when(*until, now)) }
        },
        Standing::Parked {
            gen,
            since,
            status,
            error,
        } => html! {
            span.parked { "batch " (gen) " refused by the sink"
                @if let Some(s) = status { " (" (s) ")" }
                ", parked " (when(*since, now)) ": waits for a redrive" }
            @if let Some(e) = error { br; code { (e) } }
        },
        Standing::BackingOff {
            gen,
            until,
            failures,
        } => html! {
            "batch " (gen) " failed " (failures) " time(s); next try " (when(*until, now))
        },
        Standing::HandingOff { gen, until } => html! {
            "batch " (gen) " is being handed off (lease until " (when(*until, now)) ")"
        },
        Standing::Due { gen } => html! { "batch " (gen) " is due now" },
        Standing::Filling { at, rule } => html! {
            "window open; due " (when(*at, now)) " by " (rule.as_str())
        },
    }
}

fn attempts(b: &ClosedBatch, now: Millis) -> Markup {
    html! {
        @if b.attempts.is_empty() && b.failures == 0 {
            span.note { "no failed attempt" }
        } @else {
            @for a in &b.attempts {
                (when(Millis(a.at), now)) ": "
                @match a.status { Some(s) => { "HTTP " (s) }, None => "no answer" }
                " in " (a.ms) " ms"
                @if a.refused { " (refused)" }
                br;
            }
            @if b.failures as usize > b.attempts.len() {
                span.note { (b.failures) " failures in all" } br;
            }
            @match b.hold {
                Some(Hold::Backoff { until }) => { "next try " (when(until, now)) }
                Some(Hold::Parked { .. }) => { "next try: on redrive" }
                _ => {}
            }
        }
    }
}

fn held_table(list: &Listed, now: Millis) -> Markup {
    html! {
        table {
            tr { th { "conversation" } th { "state" } th { "why it waits" } th { "open window" }
                 th { "pending batches" } th { "attempts (oldest pending)" } }
            @for c in &list.conversations {
                @let s = timeline::standing(c, now);
                @let key = c.key.storage_key();
                tr {
                    td { a href=(conv_link(&key)) { code { (key) } } }
                    td.state.(s.label().replace(' ', "-")) { (s.label()) }
                    td { (why(&s, now)) }
                    td {
                        @if let Some(w) = &c.window {
                            (w.messages.len()) " message(s), opened " (when(w.opened_at, now))
                        } @else { span.note { "none" } }
                    }
                    td { (c.pending.len()) }
                    td { @if let Some(b) = c.pending.first() { (attempts(b, now)) } }
                }
            }
        }
    }
}

pub fn tenant(
    scope: &TenantScope,
    parked: &Listed,
    held: &Listed,
    minutes: Option<&[Minute]>,
    now: Millis,
) -> Markup {
    let base = format!("/console/tenants/{}", urlencode(&scope.id));
    layout(
        &scope.id,
        html! {
            h1 { "Tenant " (scope.id) }
            (search())
            h2 { "Parked batches (the sink refused them; redrive when fixed)" }
            @if parked.conversations.is_empty() {
                p.note { "None." }
            } @else {
                (held_table(parked, now))
            }
            @if let Some(next) = &parked.next {
                p { a href=(format!("{base}?{}", serde_urlencoded::to_string([("parked_after", next.as_str())]).unwrap_or_default())) { "More parked →" } }
            }
            h2 { "Open windows, pending batches and paused conversations (by due time)" }
            @if held.conversations.is_empty() {
                p.note { "None on this page." }
            } @else {
                (held_table(held, now))
            }
            p.note { "This page read " (held.scanned) " due-index entries and "
                (held.conversations.len() + parked.conversations.len()) " records. A paused conversation with nothing held is not in the index: open it by its key." }
            @if let Some(next) = &held.next {
                p { a href=(format!("{base}?{}", serde_urlencoded::to_string([("after", next.as_str())]).unwrap_or_default())) { "Next page →" } }
            }
            (activity(minutes))
        },
    )
}

fn text_of(m: &lull_core::Message) -> String {
    m.text
        .clone()
        .or_else(|| m.caption.clone())
        .unwrap_or_else(|| {
            format!(
                "({})",
                serde_json::to_value(m.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )
        })
}

fn what(w: &What) -> Markup {
    match w {
        What::Accepted { index, message_id } => html! {
            "message " (index + 1) " accepted " span.note { code { (message_id) } }
        },
        What::Opened {
            quiet_ms,
            max_wait_ms,
        } => html! {
            "window opened"
            @if *quiet_ms > 0 { " (quiet " (quiet_ms / 1000) " s, max wait " (max_wait_ms / 1000) " s)" }
        },
        What::WillBeDue { rule } => {
            html! { "will be due by " (rule.as_str()) " (it waits for the user to go quiet)" }
        }
        What::BecameDue { reason, waited } => html! {
            "became due: " (reason.as_str())
            @if let Some(w) = waited { " (rule " (w.as_str()) ")" }
        },
        What::Closed { messages } => html! { "closed into a batch of " (messages) " message(s)" },
        What::Failed {
            ms,
            status,
            refused,
        } => html! {
            "hand-off failed: "
            @match status { Some(s) => { "HTTP " (s) }, None => "no answer" }
            " after " (ms) " ms" @if *refused { " (refused: parked)" } @else { " (will retry)" }
        },
        What::Held { until, why } => html! {
            (why) @if let Some(u) = until { " until " (u.rfc3339()) }
        },
        What::Acknowledged { messages } => {
            html! { "acknowledged by the sink (" (messages) " message(s))" }
        }
    }
}

pub fn conversation(
    conv: &Conversation,
    now: Millis,
    horizon: Duration,
    token: &str,
    done: Option<&str>,
    reveal: bool,
) -> Markup {
    let key = conv.key.storage_key();
    let s = timeline::standing(conv, now);
    let events = timeline::timeline(conv, now, horizon);
    let redrivable = !conv.pending.is_empty();
    let paused = matches!(s, Standing::Paused { .. });
    layout(
        "Conversation",
        html! {
            h1 { "Conversation " code { (key) } }
            @if let Some(d) = done { p.done role="status" { "Done: " (d) } }
            p { span.state { (s.label()) } ": " (why(&s, now)) }
            div.actions {
                @if redrivable {
                    form.inline method="post" action="/console/actions/redrive" {
                        input type="hidden" name="key" value=(key);
                        input type="hidden" name="csrf" value=(token);
                        button type="submit" { "Redrive pending batches" }
                    }
                }
                @if paused {
                    form.inline method="post" action="/console/actions/resume" {
                        input type="hidden" name="key" value=(key);
                        input type="hidden" name="csrf" value=(token);
                        button type="submit" { "Resume the bot" }
                    }
                } @else {
                    form.inline method="post" action="/console/actions/pause" {
                        input type="hidden" name="key" value=(key);
                        input type="hidden" name="csrf" value=(token);
                        select name="for" aria-label="pause for" {
                            option value="30m" { "30 min" }
                            option value="2h" { "2 h" }
                            option value="1day" { "1 day" }
                        }
                        " " button type="submit" { "Pause the bot" }
                    }
                }
                @if !reveal {
                    form.inline method="post" action="/console/conversation/reveal" {
                        input type="hidden" name="key" value=(key);
                        input type="hidden" name="csrf" value=(token);
                        button type="submit" { "Show message text" }
                    }
                }
            }
            h2 { "Pending batches" }
            @if conv.pending.is_empty() { p.note { "None." } } @else {
                table {
                    tr { th { "batch" } th { "id" } th { "messages" } th { "closed" } th { "attempts" } }
                    @for b in &conv.pending {
                        tr {
                            td { (b.gen) } td { code { (b.batch_id) } } td { (b.messages.len()) }
                            td { (when(b.closed_at, now)) " (" (b.reason.as_str()) ")" }
                            td { (attempts(b, now)) }
                        }
                    }
                }
            }
            h2 { "Timeline" }
            table {
                tr { th { "when" } th { "batch" } th { "what" } }
                @for e in &events {
                    tr {
                        td { (when(e.at, now)) }
                        td { @if let Some(g) = e.gen { (g) } }
                        td { (what(&e.what)) }
                    }
                }
            }
            h2 { "Message text" }
            @if reveal {
                p.note { "Shown on request (personal data: this reveal was logged)." }
                table {
                    tr { th { "batch" } th { "message" } th { "text" } }
                    @for b in &conv.pending {
                        @for m in &b.messages {
                            tr { td { (b.gen) } td { code { (m.id) } } td.text { (text_of(m)) } }
                        }
                    }
                    @if let Some(w) = &conv.window {
                        @for m in &w.messages {
                            tr { td { (conv.gen) } td { code { (m.id) } } td.text { (text_of(m)) } }
                        }
                    }
                }
            } @else {
                p.note.hidden-text { "Hidden (personal data). Use “Show message text” to see it." }
            }
        },
    )
}
