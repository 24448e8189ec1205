//! The business side's own messages, for the gateways that forward them (Evolution `fromMe`,
//! WAHA `message.any`, Meta `smb_message_echoes`): dropped unless the tenant opts in, and a
//! person's (not the bot's) pauses the conversation's hand-offs for the tenant's pause time, once
//! per message id: a retried or replayed operator message neither pauses again nor extends the
//! pause.

use lull_core::protocol::OperatorOutcome;
use lull_core::Provider;

use axum::response::Response;

use super::{append_all, key_of};
use crate::error::IngestError;
use crate::parse::{Item, OptIn, Parsed};
use crate::state::IngestState;
use crate::tenant::Tenant;

/// What a tenant buffers of the opt-in messages.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptIns {
    pub from_me: bool,
    pub status_broadcast: bool,
}

/// Drops the messages the tenant has not opted into, counting each as ignored. An operator's
/// message the tenant does not buffer still pauses its conversation: those come back apart
/// (in body order) for [`pause_for_operators`]; buffered ones stay in `parsed`, where
/// [`append_all`](super::append_all) appends and pauses in one step.
pub(crate) fn apply_opt_ins(wanted: OptIns, mut parsed: Parsed) -> (Parsed, Vec<Item>) {
    let mut ignored = crate::parse::Tally::default();
    let mut pause_only = Vec::new();
    let mut kept = Vec::with_capacity(parsed.items.len());
    for item in parsed.items {
        let keep = match item.opt_in {
            None => true,
            Some(OptIn::FromMe | OptIn::Operator) => wanted.from_me,
            Some(OptIn::StatusBroadcast) => wanted.status_broadcast,
        };
        match (keep, item.opt_in) {
            (true, _) => kept.push(item),
            (false, Some(opt)) => {
                ignored.push(opt.label());
                if opt == OptIn::Operator {
                    pause_only.push(item);
                }
            }
            (false, None) => {}
        }
    }
    parsed.items = kept;
    parsed.ignored.extend(ignored.iter());
    (parsed, pause_only)
}

/// A person on the business side wrote these (not buffered) messages: each pauses its
/// conversation for the tenant's pause time, unless the core has seen its id before (a retry or
/// a replay) or it is older than the dedupe horizon (`lull_core::protocol::OperatorOutcome`).
/// A conversation lull has never seen has nothing to pause (counted as ignored).
pub(crate) async fn pause_for_operators(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    items: Vec<Item>,
) -> Result<(), IngestError> {
    for item in items {
        // An item whose key is over the store's limits names no conversation lull can hold.
        let Ok(key) = key_of(provider, &item) else {
            continue;
        };
        let out = st
            .appender
            .operator_message(key, tenant.policy, item.message, false)
            .await
            .map_err(IngestError::from_append)?;
        if out == OperatorOutcome::NoConversation {
            metrics::counter!(lull_core::metrics::IGNORED_EVENTS, "reason" => "operator_no_conversation", "provider" => provider.as_str())
                .increment(1);
        }
    }
    Ok(())
}

/// The tail every message route shares: drops the opt-ins the tenant did not ask for (keeping
/// aside the operator messages it does not buffer), appends the rest (a buffered operator
/// message appends and pauses), then applies the unbuffered operator messages' pauses (after
/// the append, so a conversation the same body opened is paused too).
pub(crate) async fn append_and_pause(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: Parsed,
    wanted: OptIns,
) -> Result<Response, IngestError> {
    let (parsed, operators) = apply_opt_ins(wanted, parsed);
    let answer = append_all(st, provider, tenant, parsed).await?;
    pause_for_operators(st, provider, tenant, operators).await?;
    Ok(answer)
}
