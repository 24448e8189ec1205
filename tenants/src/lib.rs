//! # lull-tenants
//!
//! Tenants: a customer's bot, with its accounts per provider, gateway secrets, policy and sink.
//!
//! - [`tenant`]: who owns which number, with which secrets, policy and sink; the directory port.
//! - [`tenant_spec`]: a tenant as data (the `[[tenants]]` shape), checked into a [`Tenant`].
//! - [`tenant_apply`]: a stored tenant, and what an apply does to the stored set.
//! - [`tenant_snapshot`]: one loaded state of the store, bad tenants quarantined.
//! - [`tenant_cache`]: the directory over the tenant store, reloaded after a short TTL.
//! - [`routed`]: each tenant's batches to its own HTTP endpoint, the rest to the default sink;
//!   the directory is its route table.
//! - `tenant_contract` (feature `contract`): what every tenant store must keep and give back.
//!
//! Role and imports: an edge. It imports the core (`lull-core`: providers, policy) and the sinks
//! (`lull-sink`: a tenant's own sink is an HTTP sink), never ingestion or an adapter. Ingestion
//! (`lull-ingest`) finds a request's tenant through it; the adapters (`lull-local`, `lull-aws`)
//! implement its store ([`TenantSource`]) and the binaries administer it.

pub mod routed;
pub mod tenant;
pub mod tenant_apply;
pub mod tenant_cache;
#[cfg(feature = "contract")]
pub mod tenant_contract;
pub mod tenant_snapshot;
pub mod tenant_spec;

pub use routed::{RouteFuture, RoutedSink, SinkRoute, SinkRoutes};
pub use tenant::{
    EvolutionSettings, GenericSettings, MemoryDirectory, MetaSettings, Secrets, SinkSettings,
    Tenant, TenantDirectory, TwilioSettings, WahaSettings,
};
pub use tenant_cache::{CachedDirectory, TenantHealth, TenantSource, DEFAULT_TENANT_TTL};
pub use tenant_spec::{TenantRecord, TenantSpec};
