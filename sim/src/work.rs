//! One simulated message and what an edit or unsend of it targets: the vocabulary the workload
//! generator (`workload.rs`) and the edit/unsend generator (`amends.rs`) share, in a file of its
//! own so that neither imports the other's.

use crate::time::Millis;

/// One simulated message: what the gateway sends, and when it first sends it.
#[derive(Clone, Debug)]
pub(crate) struct WorkMessage {
    pub conv: usize,
    pub id: String,
    pub text: String,
    pub at: Millis,
    /// For an edit or unsend: what it changes (`amends.rs`).
    pub amend: Option<WorkAmend>,
    /// The gateway sends the same event again at this instant (a duplicated edit or unsend).
    pub resend_at: Option<Millis>,
}

/// What an edit or unsend of the workload targets.
#[derive(Clone, Debug)]
pub(crate) struct WorkAmend {
    /// True for an unsend.
    pub revoke: bool,
    /// The original's id.
    pub target: String,
}
