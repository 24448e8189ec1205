//! The business side's own messages, for the gateways that forward them (Evolution `fromMe`,
//! WAHA `message.any`, Meta `smb_message_echoes`): dropped unless the tenant opts in, and a
//! person's (not the bot's) pauses the conversation's hand-offs for the tenant's pause time.

use lull_core::protocol::PauseOutcome;
use lull_core::turn::PauseReason;
use lull_core::{ConversationKey, Provider};

use axum::response::Response;

use super::{append_all, key_of};
use crate::error::IngestError;
use crate::parse::{OptIn, Parsed};
use crate::state::IngestState;
use crate::tenant::Tenant;

/// What a tenant buffers of the opt-in messages.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptIns {
    pub from_me: bool,
    pub status_broadcast: bool,
}

/// Drops the messages the tenant has not opted into, counting each as ignored.
pub(crate) fn apply_opt_ins(wanted: OptIns, mut parsed: Parsed) -> Parsed {
    let mut ignored = Vec::new();
    parsed.items.retain(|item| {
        let keep = match item.opt_in {
            None => true,
            Some(OptIn::FromMe | OptIn::Operator) => wanted.from_me,
            Some(OptIn::StatusBroadcast) => wanted.status_broadcast,
        };
        if let (false, Some(opt)) = (keep, item.opt_in) {
            ignored.push(opt.label());
        }
        keep
    });
    parsed.ignored.extend(ignored);
    parsed
}

/// The conversations a person on the business side wrote in (deduplicated, in body order).
pub(crate) fn operator_keys(
    provider: Provider,
    parsed: &Parsed,
) -> Result<Vec<ConversationKey>, IngestError> {
    let mut keys: Vec<ConversationKey> = Vec::new();
    for item in parsed
        .items
        .iter()
        .filter(|i| i.opt_in == Some(OptIn::Operator))
    {
        // An item whose key is over the store's limits is skipped (and counted) by the append.
        let Ok(key) = key_of(provider, item) else {
            continue;
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// A human took over these conversations: their hand-offs pause for the tenant's pause time.
/// A conversation lull has never seen has nothing to pause (counted as ignored).
pub(crate) async fn pause_for_operators(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    keys: Vec<ConversationKey>,
) -> Result<(), IngestError> {
    for key in keys {
        let out = st
            .appender
            .pause(key, Some(tenant.policy.pause), PauseReason::Operator)
            .await
            .map_err(IngestError::from_append)?;
        if out == PauseOutcome::NoConversation {
            metrics::counter!(lull_core::metrics::IGNORED_EVENTS, "reason" => "operator_no_conversation", "provider" => provider.as_str())
                .increment(1);
        }
    }
    Ok(())
}

/// The tail every message route shares: notes the conversations a person on the business side
/// wrote in, drops the opt-ins the tenant did not ask for, appends the rest, then pauses those
/// conversations (after the append, so a conversation the same body opened is paused too).
pub(crate) async fn append_and_pause(
    st: &IngestState,
    provider: Provider,
    tenant: &Tenant,
    parsed: Parsed,
    wanted: OptIns,
) -> Result<Response, IngestError> {
    let operators = operator_keys(provider, &parsed)?;
    let parsed = apply_opt_ins(wanted, parsed);
    let answer = append_all(st, provider, tenant, parsed).await?;
    pause_for_operators(st, provider, tenant, operators).await?;
    Ok(answer)
}
