//! The tenant a webhook request is authenticated for, and why an account no tenant serves is
//! refused exactly like a wrong signature.
//!
//! A request names its account in the raw body ([`crate::hint`]); the secrets of the tenant
//! serving that account check it. Answering "unknown account" (403) before any check, and
//! "signature does not match" (401) for a served account, would tell a caller holding no secret
//! which accounts (business numbers, instances, sessions) this deployment serves. So an account
//! no tenant serves (never configured, dropped, or a removed tenant's) is checked with a
//! stand-in tenant whose secrets are random per process: the request goes through the same
//! header and signature checks as any other and is refused with the same status and the same
//! body as a wrong signature (`docs/gateways.md`, "Refusals"). Only the log says which it was.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use lull_core::Provider;

use crate::error::IngestError;
use crate::state::IngestState;
use crate::tenant::{
    EvolutionSettings, GenericSettings, MetaSettings, Secrets, Tenant, TwilioSettings, WahaSettings,
};

/// The tenant a request's signature is checked with: the one serving the account its raw body
/// names, or the stand-in when none does.
pub(crate) struct Named {
    pub tenant: Arc<Tenant>,
    served: bool,
}

impl Named {
    /// The tenant the request is authenticated for, given the result of checking its
    /// credential with [`Named::tenant`]'s secrets. For an account no tenant serves the check
    /// has failed like a wrong signature, and that refusal is returned as is; should it ever
    /// pass, the request is still refused with `mismatch`, the route's wrong-signature reason.
    pub fn authenticated(
        self,
        checked: Result<(), IngestError>,
        provider: Provider,
        mismatch: &'static str,
    ) -> Result<Arc<Tenant>, IngestError> {
        if !self.served {
            tracing::info!(
                %provider,
                "webhook request names an account no tenant serves: refused as unauthenticated"
            );
            checked?;
            return Err(IngestError::Unauthorized(mismatch));
        }
        checked.map(|()| self.tenant)
    }
}

/// The tenant whose secrets must authenticate a body naming `account` (read from the raw body
/// by [`crate::hint`], before parsing). A body naming none can only belong to a single tenant
/// that owns every account (Meta `account_update` and other non-message fields; multi-tenant
/// setups subscribe to `messages` only, see docs/gateways.md). No tenant: the stand-in.
pub(crate) async fn tenant_named(
    st: &IngestState,
    provider: Provider,
    account: Option<String>,
) -> Result<Named, IngestError> {
    let found = st
        .tenants
        .find(provider, account.as_deref().unwrap_or(""))
        .await
        .map_err(|e| IngestError::Unavailable(e.to_string()))?;
    Ok(match found {
        Some(tenant) => Named {
            tenant,
            served: true,
        },
        None => Named {
            tenant: stand_in(),
            served: false,
        },
    })
}

/// A tenant with one secret for every gateway credential, random per process (so no request
/// can match it), no accounts and no sink.
fn stand_in() -> Arc<Tenant> {
    static STAND_IN: OnceLock<Arc<Tenant>> = OnceLock::new();
    STAND_IN
        .get_or_init(|| {
            let s = Secrets::new([random_secret()]);
            Arc::new(Tenant {
                id: "(no tenant)".into(),
                meta: MetaSettings {
                    app_secrets: s.clone(),
                    ..Default::default()
                },
                evolution: EvolutionSettings {
                    tokens: s.clone(),
                    jwt_keys: s.clone(),
                    ..Default::default()
                },
                twilio: TwilioSettings {
                    auth_tokens: s.clone(),
                    shared_keys: s.clone(),
                    ..Default::default()
                },
                generic: GenericSettings {
                    secrets: s.clone(),
                    ..Default::default()
                },
                waha: WahaSettings {
                    hmac_keys: s,
                    ..Default::default()
                },
                ..Default::default()
            })
        })
        .clone()
}

/// 256 bits from the standard library's randomly keyed hasher (seeded from the OS once per
/// process): secret enough for a key nobody is ever meant to match, without a new crate.
fn random_secret() -> String {
    (0..4u64)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_has_a_secret_for_every_gateway_and_no_account() {
        let t = stand_in();
        for s in [
            &t.meta.app_secrets,
            &t.evolution.tokens,
            &t.evolution.jwt_keys,
            &t.twilio.auth_tokens,
            &t.twilio.shared_keys,
            &t.generic.secrets,
            &t.waha.hmac_keys,
        ] {
            assert_eq!(s.len(), 1);
            assert_eq!(s.iter().next().map(str::len), Some(64));
        }
        assert!(t.meta.phone_number_ids.is_empty() && t.sink.is_none());
        assert_ne!(random_secret(), random_secret());
    }

    #[test]
    fn an_unserved_account_is_refused_even_if_its_check_passed() {
        let named = Named {
            tenant: stand_in(),
            served: false,
        };
        let e = named
            .authenticated(Ok(()), Provider::Meta, "does not match")
            .unwrap_err();
        assert_eq!(e.to_string(), "unauthorized: does not match");
        let named = Named {
            tenant: stand_in(),
            served: false,
        };
        let e = named
            .authenticated(
                Err(IngestError::Unauthorized("missing")),
                Provider::Meta,
                "does not match",
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "unauthorized: missing");
    }
}
