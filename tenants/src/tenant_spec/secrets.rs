//! The secret fields of a tenant spec: which they are, and moving their values out of the spec
//! and back (the AWS store keeps them in Secrets Manager) without ever printing them.

use std::collections::BTreeMap;

use super::{SecretList, TenantSpec};

/// Every field of a [`TenantSpec`] that holds secrets, as `section.key` (or `key` at the top).
/// A new secret field must be added here: the AWS store moves exactly these to Secrets Manager.
pub const SECRET_FIELDS: &[&str] = &[
    "sink_secret",
    "admin_token",
    "meta.app_secret",
    "meta.verify_token",
    "meta.access_token",
    "evolution.token",
    "evolution.jwt_key",
    "evolution.api_key",
    "twilio.auth_token",
    "twilio.shared_key",
    "generic.secret",
    "waha.hmac_key",
    "waha.api_key",
    "chatwoot.secret",
];

/// Secret fields that authenticate no webhook (what lull sends or signs with).
const OUTBOUND_SECRETS: &[&str] = &[
    "sink_secret",
    "admin_token",
    "meta.access_token",
    "evolution.api_key",
    "waha.api_key",
];
impl TenantSpec {
    /// The values of one of [`SECRET_FIELDS`], when set.
    pub fn secret(&self, field: &str) -> Option<&SecretList> {
        match field {
            "sink_secret" => self.sink_secret.as_ref(),
            "admin_token" => self.admin_token.as_ref(),
            "meta.app_secret" => self.meta.as_ref()?.app_secret.as_ref(),
            "meta.verify_token" => self.meta.as_ref()?.verify_token.as_ref(),
            "meta.access_token" => self.meta.as_ref()?.access_token.as_ref(),
            "evolution.api_key" => self.evolution.as_ref()?.api_key.as_ref(),
            "waha.api_key" => self.waha.as_ref()?.api_key.as_ref(),
            "evolution.token" => self.evolution.as_ref()?.token.as_ref(),
            "evolution.jwt_key" => self.evolution.as_ref()?.jwt_key.as_ref(),
            "twilio.auth_token" => self.twilio.as_ref()?.auth_token.as_ref(),
            "twilio.shared_key" => self.twilio.as_ref()?.shared_key.as_ref(),
            "generic.secret" => self.generic.as_ref()?.secret.as_ref(),
            "waha.hmac_key" => self.waha.as_ref()?.hmac_key.as_ref(),
            "chatwoot.secret" => self.chatwoot.as_ref()?.secret.as_ref(),
            _ => None,
        }
    }

    /// Moves every secret out of the spec (for a store that keeps them elsewhere); the spec
    /// left behind holds no secret value.
    pub fn take_secrets(&mut self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let mut take = |name: &str, slot: &mut Option<SecretList>| {
            if let Some(v) = slot.take() {
                out.insert(name.to_string(), v.0);
            }
        };
        take("sink_secret", &mut self.sink_secret);
        take("admin_token", &mut self.admin_token);
        if let Some(m) = &mut self.meta {
            take("meta.app_secret", &mut m.app_secret);
            take("meta.verify_token", &mut m.verify_token);
            take("meta.access_token", &mut m.access_token);
        }
        if let Some(e) = &mut self.evolution {
            take("evolution.token", &mut e.token);
            take("evolution.jwt_key", &mut e.jwt_key);
            take("evolution.api_key", &mut e.api_key);
        }
        if let Some(t) = &mut self.twilio {
            take("twilio.auth_token", &mut t.auth_token);
            take("twilio.shared_key", &mut t.shared_key);
        }
        if let Some(g) = &mut self.generic {
            take("generic.secret", &mut g.secret);
        }
        if let Some(w) = &mut self.waha {
            take("waha.hmac_key", &mut w.hmac_key);
            take("waha.api_key", &mut w.api_key);
        }
        if let Some(c) = &mut self.chatwoot {
            take("chatwoot.secret", &mut c.secret);
        }
        out
    }

    /// Puts secrets taken by [`TenantSpec::take_secrets`] back; unknown names are ignored.
    pub fn put_secrets(&mut self, secrets: BTreeMap<String, Vec<String>>) {
        for (name, values) in secrets {
            let v = Some(SecretList(values));
            match name.as_str() {
                "sink_secret" => self.sink_secret = v,
                "admin_token" => self.admin_token = v,
                "meta.app_secret" => self.meta.get_or_insert_with(Default::default).app_secret = v,
                "meta.verify_token" => {
                    self.meta.get_or_insert_with(Default::default).verify_token = v
                }
                "evolution.token" => self.evolution.get_or_insert_with(Default::default).token = v,
                "evolution.jwt_key" => {
                    self.evolution.get_or_insert_with(Default::default).jwt_key = v
                }
                "twilio.auth_token" => {
                    self.twilio.get_or_insert_with(Default::default).auth_token = v
                }
                "twilio.shared_key" => {
                    self.twilio.get_or_insert_with(Default::default).shared_key = v
                }
                "generic.secret" => self.generic.get_or_insert_with(Default::default).secret = v,
                "waha.hmac_key" => self.waha.get_or_insert_with(Default::default).hmac_key = v,
                "meta.access_token" => {
                    self.meta.get_or_insert_with(Default::default).access_token = v
                }
                "evolution.api_key" => {
                    self.evolution.get_or_insert_with(Default::default).api_key = v
                }
                "waha.api_key" => self.waha.get_or_insert_with(Default::default).api_key = v,
                "chatwoot.secret" => self.chatwoot.get_or_insert_with(Default::default).secret = v,
                _ => {}
            }
        }
    }

    /// How many values each set secret field holds (what `lull tenants list` may show).
    pub fn secret_counts(&self) -> BTreeMap<&'static str, usize> {
        SECRET_FIELDS
            .iter()
            .filter_map(|f| self.secret(f).map(|l| (*f, l.0.len())))
            .collect()
    }

    /// True when a gateway secret is set (what [`Tenant::has_any_secret`] asks of a built
    /// tenant): the sink's signing secret and the admin token authenticate no webhook, so a
    /// tenant holding only those must not let the local server listen beyond loopback.
    pub fn has_gateway_secret(&self) -> bool {
        self.secret_counts()
            .keys()
            .any(|f| !OUTBOUND_SECRETS.contains(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Secrets;
    use lull_core::Policy;

    fn spec(toml_like_json: serde_json::Value) -> TenantSpec {
        serde_json::from_value(toml_like_json).unwrap()
    }

    #[test]
    fn secrets_move_out_and_back() {
        let mut s = spec(serde_json::json!({
            "id": "a", "sink": "http://x.example", "sink_secret": "k", "admin_token": "adm",
            "meta": {"phone_number_ids": ["1"], "app_secret": ["a", "b"]},
        }));
        let orig = s.clone();
        let secrets = s.take_secrets();
        assert_eq!(secrets.len(), 3);
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            !text.contains("\"b\"") && !text.contains("\"k\"") && !text.contains("adm"),
            "{text}"
        );
        s.put_secrets(secrets);
        assert_eq!(s, orig);
        assert_eq!(
            orig.secret_counts().into_iter().collect::<Vec<_>>(),
            [
                ("admin_token", 1),
                ("meta.app_secret", 2),
                ("sink_secret", 1)
            ]
        );
        assert_eq!(
            orig.to_tenant(&Policy::default()).unwrap().admin_tokens,
            Secrets::new(["adm"])
        );
    }
}
