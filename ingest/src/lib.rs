//! # lull-ingest
//!
//! lull's webhook ingestion: one axum [`Router`](axum::Router) that takes Meta WhatsApp Cloud
//! API, Evolution API v2, Twilio WhatsApp and lull's own generic JSON format exactly as each
//! gateway sends it, authenticates it, normalises it into [`lull_core::Message`]s and appends
//! them through an [`Appender`] (the core's [`lull_core::Buffer`]). The webhook Lambda (through
//! `lambda_http`) and the local server serve the same router; it depends on neither.
//!
//! - [`parse`]: one pure parser per gateway (fuzzed).
//! - [`routes`]: one handler per gateway and the shared pipeline.
//! - [`auth`]: signatures and credentials, constant time, rotation-friendly.
//! - [`chatwoot_signature`]: Chatwoot's signed timestamp and body; [`recent_deliveries`]:
//!   the deliveries this process answered, to refuse a replay at once.
//! - [`standard_webhooks`]: Standard Webhooks signatures on the generic route.
//!
//! A request's tenant (who owns which number, with which secrets, policy and sink) comes from the
//! tenants crate (`lull-tenants`), re-exported here under the paths it had when it lived here.
//!
//! Contract (invariants 5 and 6): a request is authenticated over its raw bytes before it is
//! parsed ([`hint`] finds whose secret applies without parsing), and checked whole before
//! anything is appended; bad input gets a clear 4xx and stores nothing; a request authenticated for one
//! tenant cannot write into another's conversations; every ignored event is counted.
//!
//! Role and imports: an edge. It imports the core (`lull-core`) and the tenants
//! (`lull-tenants`), never a sink, an adapter or a binary; the adapters (the local server, the
//! webhook Lambda) serve its router.

pub mod appender;
pub mod auth;
pub mod chatwoot_signature;
pub mod error;
pub mod hint;
pub mod lids;
pub mod parse;
pub mod recent_deliveries;
pub mod routes;
pub mod standard_webhooks;
pub mod state;
pub mod twilio_signature;

// The tenants' modules, at the paths they had in this crate.
pub use lull_tenants::{tenant, tenant_apply, tenant_cache, tenant_snapshot, tenant_spec};

pub use appender::{AppendFuture, Appender};
pub use error::IngestError;
pub use lull_tenants::{
    CachedDirectory, EvolutionSettings, GenericSettings, MemoryDirectory, MetaSettings, Secrets,
    SinkSettings, Tenant, TenantDirectory, TenantHealth, TenantRecord, TenantSource, TenantSpec,
    TwilioSettings, WahaSettings, DEFAULT_TENANT_TTL,
};
pub use routes::{router, WEBHOOK_ROUTES};
pub use state::{IngestConfig, IngestState};
