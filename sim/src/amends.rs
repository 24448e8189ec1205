//! Edits and unsends in the simulated traffic: people fix typos seconds after sending, and unsend
//! what they regret; providers deliver such events late, early (before their original) and twice.

use std::time::Duration;

use crate::message::{Message, MessageKind, Target};
use crate::time::Millis;

use super::work::{WorkAmend, WorkMessage};

/// Share of messages the user edits (some of them twice).
const EDITED: f64 = 0.08;
/// Share of messages the user unsends.
const UNSENT: f64 = 0.05;
/// Share of edits and unsends delivered before their original.
const EARLY: f64 = 0.2;
/// Share of edits and unsends the gateway delivers twice.
const TWICE: f64 = 0.25;

/// Adds edits and unsends of `originals` (one conversation's messages) to `out`.
pub(crate) fn amends_for(
    rng: &mut fastrand::Rng,
    originals: &[WorkMessage],
    out: &mut Vec<WorkMessage>,
) {
    for m in originals {
        let edits = if rng.f64() < EDITED {
            1 + usize::from(rng.bool())
        } else {
            0
        };
        let mut t = m.at;
        for k in 0..edits {
            t = t.plus(Duration::from_millis(rng.u64(300..=6_000)));
            out.push(amend(
                rng,
                m,
                format!("{}#e{k}", m.id),
                format!("{} edit{k}", m.text),
                t,
                false,
            ));
        }
        if rng.f64() < UNSENT {
            let at = t.plus(Duration::from_millis(rng.u64(300..=9_000)));
            out.push(amend(
                rng,
                m,
                format!("{}#r", m.id),
                String::new(),
                at,
                true,
            ));
        }
    }
}

/// One edit or unsend of `m`, first sent at `at` (or, reordered, just before `m`), sometimes
/// twice.
fn amend(
    rng: &mut fastrand::Rng,
    m: &WorkMessage,
    id: String,
    text: String,
    at: Millis,
    revoke: bool,
) -> WorkMessage {
    let at = if rng.f64() < EARLY {
        Millis(m.at.0.saturating_sub(rng.u64(1..=1_500)))
    } else {
        at
    };
    let resend_at =
        (rng.f64() < TWICE).then(|| at.plus(Duration::from_millis(rng.u64(200..=20_000))));
    WorkMessage {
        conv: m.conv,
        id,
        text,
        at,
        amend: Some(WorkAmend {
            revoke,
            target: m.id.clone(),
        }),
        resend_at,
    }
}

/// The message the gateway sends for `m`: a text, or an edit or unsend naming its original.
pub(crate) fn message(m: &WorkMessage, user: &str) -> Message {
    let msg = Message::text(m.id.clone(), user, m.text.clone());
    match &m.amend {
        None => msg,
        Some(a) => Message {
            kind: if a.revoke {
                MessageKind::Revoke
            } else {
                MessageKind::Edit
            },
            text: (!a.revoke).then(|| m.text.clone()),
            target: Some(Target {
                message_id: a.target.clone(),
                batch_id: None,
            }),
            ..msg
        },
    }
}
