//! Metric names, shared by every shell through the `metrics` facade: the local server exports
//! them as Prometheus text, the Lambdas as CloudWatch Embedded Metric Format. Every drop
//! (duplicate, ignored event, stale trigger) has a counter: nothing is silent.

/// Messages accepted into a window (label `provider`).
pub const MESSAGES_RECEIVED: &str = "lull_messages_received_total";
/// Messages handed off in acknowledged batches.
pub const MESSAGES_HANDED_OFF: &str = "lull_messages_handed_off_total";
/// Messages dropped as duplicates of an accepted one.
pub const DUPLICATES: &str = "lull_duplicates_total";
/// Messages skipped because their provider timestamp is older than the dedupe horizon minus
/// its clock-skew slack (label `what`: `message`, `operator`): possible replays.
pub const STALE_MESSAGES: &str = "lull_stale_messages_total";
/// Webhook events acknowledged without buffering (statuses, own messages...; label `reason`).
pub const IGNORED_EVENTS: &str = "lull_ignored_events_total";
/// Messages kept with only what could be read: kind `other` with `provider_type`, or without
/// their content (label `reason`: `missing_object`, `unreadable_content`, `too_large`, ...).
pub const PARTIAL_ITEMS: &str = "lull_partial_items_total";
/// Requests refused as bad input (label `reason`).
pub const REJECTED_REQUESTS: &str = "lull_rejected_requests_total";
/// Appends refused for lack of room (label `reason`).
pub const APPENDS_REFUSED: &str = "lull_appends_refused_total";
/// Batches acknowledged by the sink (label `reason`).
pub const BATCHES: &str = "lull_batches_total";
/// Triggers dropped because a newer chain exists and nothing was due.
pub const STALE_TRIGGERS: &str = "lull_stale_triggers_total";
/// Triggers that fired before their window was due, re-armed.
pub const EARLY_TRIGGERS: &str = "lull_early_triggers_total";
/// Triggers re-armed because another hand-off of the conversation was in flight.
pub const WAITING_TRIGGERS: &str = "lull_waiting_triggers_total";
/// Conditional writes that lost a race and were retried (label `op`).
pub const WRITE_CONFLICTS: &str = "lull_write_conflicts_total";
/// Hand-offs the sink did not acknowledge (label `kind`: `retryable` or `permanent`).
pub const SINK_FAILURES: &str = "lull_sink_failures_total";
/// Batches the sink refused (a permanent failure), parked until an operator redrives them.
pub const BATCHES_PARKED: &str = "lull_batches_parked_total";
/// Hand-offs the sink acknowledged after their lease had been taken over (nothing recorded; the
/// new holder hands the same batch off again).
pub const LEASES_LOST: &str = "lull_leases_lost_total";
/// Windows handed off by the sweep rather than their trigger.
pub const SWEPT: &str = "lull_swept_total";
/// Presence events by what they did (label `outcome`: `applied`, `unchanged`, `out_of_order`,
/// `no_window`, `typing_off`, `conflict`). Only `applied` wrote anything.
pub const PRESENCE_EVENTS: &str = "lull_presence_events_total";
/// Operator pauses and resumes (label `what`: `operator`, `admin`, `resume`).
pub const PAUSES: &str = "lull_pauses_total";
/// Edits and unsends applied, by what they did (label `effect`: `edited`, `revoked`, `emptied`
/// (an unsend closed its window without a batch), `forwarded`, `early`, `late_edited`,
/// `dropped`, `suppressed` (a late or resent original of an unsent message)).
pub const AMENDS: &str = "lull_amends_total";
/// Reply guards answered (label `state`: `current`; `typing`: hold the reply, the user is typing;
/// `superseded`: the next batch carries the
/// batch as context; `newer`: messages came after it, but it will not be carried).
pub const GUARDS: &str = "lull_reply_guards_total";
/// Batches whose messages a superseded batch handed to the next one as `context` (label `by`:
/// `guard`, `answer`: the hand-off's answer declared it); `ignored`: a declaration that could
/// not be honoured (policy `append`, the thought at its bound, nothing newer to carry it).
pub const SUPERSEDED: &str = "lull_superseded_batches_total";
/// "Listening" calls to a messaging API when a window closes (read receipt, typing indicator;
/// labels `provider`, `action` and `outcome`: `sent`, `failed`, `timeout`, or why nothing was
/// sent: `unsupported`, `no_access`, `no_message`, `lookup_failed`).
pub const LISTEN_CALLS: &str = "lull_listen_calls_total";
/// Seconds from a batch's due time to its acknowledgement.
pub const HANDOFF_LAG: &str = "lull_handoff_lag_seconds";
/// Tenant store reads that failed (the last good tenants stay in force meanwhile).
pub const TENANT_REFRESH_FAILURES: &str = "lull_tenant_refresh_failures_total";
/// Age in seconds of the tenant snapshot in force, as of the last refresh attempt (a gauge: near
/// zero while the store answers, growing while it does not).
pub const TENANT_SNAPSHOT_AGE: &str = "lull_tenant_snapshot_age_seconds";
/// Stored tenants skipped because they fail validation (a gauge: how many in the snapshot in
/// force); their accounts answer 503 until the tenant is applied again.
pub const TENANTS_QUARANTINED: &str = "lull_tenants_quarantined";

/// The names in [`ALL`] that are gauges (the rest are counters, and the histogram
/// [`HANDOFF_LAG`]).
pub const GAUGES: &[&str] = &[TENANT_SNAPSHOT_AGE, TENANTS_QUARANTINED];

/// Every metric name, for exporters and for checks that dashboards use only emitted names.
pub const ALL: &[&str] = &[
    MESSAGES_RECEIVED,
    MESSAGES_HANDED_OFF,
    DUPLICATES,
    STALE_MESSAGES,
    IGNORED_EVENTS,
    PARTIAL_ITEMS,
    REJECTED_REQUESTS,
    APPENDS_REFUSED,
    BATCHES,
    STALE_TRIGGERS,
    EARLY_TRIGGERS,
    WAITING_TRIGGERS,
    WRITE_CONFLICTS,
    SINK_FAILURES,
    BATCHES_PARKED,
    LEASES_LOST,
    SWEPT,
    PRESENCE_EVENTS,
    PAUSES,
    AMENDS,
    GUARDS,
    SUPERSEDED,
    LISTEN_CALLS,
    HANDOFF_LAG,
    TENANT_REFRESH_FAILURES,
    TENANT_SNAPSHOT_AGE,
    TENANTS_QUARANTINED,
];
