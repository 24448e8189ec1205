//! `lull tenants`: manage tenants as data, in a data directory (the local server's) or, with
//! `--aws`, in the AWS deployment's table and Secrets Manager. Running servers and Lambdas see a
//! change within their tenant refresh time (10 s by default), with no restart or redeploy.
//!
//! No secret is ever printed, and none is taken from the command line: `apply` reads a file or
//! standard input (`-`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use lull_core::{Millis, Policy, Provider};
use lull_ingest::{TenantRecord, TenantSpec};
use serde_json::{json, Value};

use crate::serve::config::{read_file, FileConfig};

/// `lull tenants`.
#[derive(Args, Clone, Debug)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub command: TenantsCommand,
    /// The AWS deployment's tenants (DynamoDB table and Secrets Manager), found from the same
    /// variables the Lambdas read (`LULL_TABLE`, `LULL_SECRET_PREFIX`, ...). Needs a build with
    /// `--features aws`.
    #[arg(long, global = true)]
    pub aws: bool,
    /// Directory of the local store [default: ./lull-data].
    #[arg(long, env = "LULL_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `lull.toml`, for the default quiet period and max wait that tenants leaving them out
    /// take (also `LULL_QUIET`, `LULL_MAX_WAIT`) [default: ./lull.toml when it exists].
    #[arg(long, env = "LULL_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Clone, Debug)]
pub enum TenantsCommand {
    /// Create or update every tenant of FILE (TOML `[[tenants]]` or JSON; `-` reads standard
    /// input). All or nothing: the whole resulting set is checked first, and a bad value stops
    /// it naming the tenant and the field. Tenants not in FILE are left as they are. Each
    /// tenant's policy is resolved now with the deployment's defaults (those `lull serve`
    /// recorded in the data directory) and stored. An account a tenant drops stays with it
    /// while its conversations hold work: another tenant can claim it once they are handed off.
    Apply {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List tenants: accounts, policy, sink, and which secrets are set since when (never their
    /// values).
    List {
        /// One JSON object per tenant.
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant (as JSON, secrets redacted).
    Show { id: String },
    /// Remove a tenant: its accounts are refused (401, as any account no tenant serves) from the
    /// next refresh on; what it had accepted is still handed off to its sink (the tenant stays
    /// as a tombstone until purged).
    Remove {
        id: String,
        /// Delete the tombstone too (refused while a conversation of its accounts, or of those
        /// it dropped, still holds an open or paused window or pending batches), so its
        /// accounts can be given to another tenant.
        #[arg(long)]
        purge: bool,
    },
}

/// A tenants file: `[[tenants]]` TOML (a whole `lull.toml` works too), or JSON: `{"tenants":
/// [...]}`, a list, or one tenant object.
pub fn parse_file(path: &Path) -> Result<Vec<TenantSpec>, String> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    let name = path.display();
    let trimmed = text.trim_start();
    let json = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("toml") => false,
        // Standard input or another name: JSON starts with `{` or `[`, never `[[`.
        _ => trimmed.starts_with('{') || (trimmed.starts_with('[') && !trimmed.starts_with("[[")),
    };
    if json {
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        let specs = match v {
            Value::Array(_) => serde_json::from_value(v),
            Value::Object(ref o) if o.contains_key("tenants") => {
                serde_json::from_value::<FileConfig>(v).map(|f| f.tenants)
            }
            other => serde_json::from_value::<TenantSpec>(other).map(|t| vec![t]),
        };
        return specs.map_err(|e| format!("{name}: {e}"));
    }
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| format!("{name}: {}", crate::toml_error::describe(&text, &e)))?;
    if file.tenants.is_empty() {
        return Err(format!("{name} lists no [[tenants]]"));
    }
    Ok(file.tenants)
}

/// What may be shown of a record: the spec without its secret values, which secrets are set
/// (how many values, since when), and the bookkeeping.
pub fn view(r: &TenantRecord) -> Value {
    let mut spec = r.spec.clone();
    let secrets = spec.take_secrets();
    if let Some(url) = &spec.sink {
        spec.sink = Some(crate::redact::url(url));
    }
    let mut v = serde_json::to_value(&spec).unwrap_or_else(|_| json!({"id": r.spec.id}));
    let set: BTreeMap<_, _> = secrets
        .iter()
        .map(|(field, values)| {
            let since = r.secrets_set_at.get(field).map(|m| m.rfc3339());
            (
                field.clone(),
                json!({"values": values.len(), "set_at": since}),
            )
        })
        .collect();
    if let Value::Object(o) = &mut v {
        o.insert(
            "state".into(),
            json!(if r.removed_at.is_some() {
                "removed"
            } else {
                "active"
            }),
        );
        o.insert("secrets".into(), json!(set));
        o.insert("created_at".into(), json!(r.created_at));
        o.insert("updated_at".into(), json!(r.updated_at));
        if let Some(at) = r.removed_at {
            o.insert("removed_at".into(), json!(at));
        }
    }
    v
}

/// One line per tenant for `lull tenants list`.
pub fn line(r: &TenantRecord) -> String {
    let s = &r.spec;
    let mut out = format!(
        "{:<16} {:<8}",
        s.id,
        if r.removed_at.is_some() {
            "removed"
        } else {
            "active"
        }
    );
    for p in Provider::ALL {
        let accounts = s.accounts(p);
        if !accounts.is_empty() {
            out += &format!(" {p}:{}", accounts.join(","));
        }
    }
    let policy = if s.passthrough {
        " passthrough".to_string()
    } else {
        format!(
            " quiet={} max_wait={}",
            s.quiet.as_deref().unwrap_or("default"),
            s.max_wait.as_deref().unwrap_or("default")
        )
    };
    out += &policy;
    if let Some(url) = &s.sink {
        out += &format!(" sink={}", crate::redact::url(url));
    }
    let secrets: Vec<String> = s
        .secret_counts()
        .into_iter()
        .map(|(field, n)| {
            let since = r
                .secrets_set_at
                .get(field)
                .map_or_else(|| "?".into(), |m| m.rfc3339());
            format!("{field}(x{n} since {since})")
        })
        .collect();
    out += &format!(
        " secrets: {}",
        if secrets.is_empty() {
            "none".to_string()
        } else {
            secrets.join(" ")
        }
    );
    out
}

/// The default policy tenants' missing fields take and the tenant refresh time: those the last
/// `lull serve` on the data directory recorded, else `LULL_QUIET` / `LULL_MAX_WAIT` /
/// `LULL_TENANT_REFRESH` or `lull.toml`'s `quiet` / `max_wait` / `tenant_refresh`, as `lull
/// serve` reads them.
fn defaults(args: &TenantsArgs) -> Result<(Policy, Duration, PathBuf), String> {
    let file = read_file(args.config.as_deref()).map_err(|e| e.to_string())?;
    let quiet = std::env::var("LULL_QUIET").ok().or(file.quiet.clone());
    let max_wait = std::env::var("LULL_MAX_WAIT")
        .ok()
        .or(file.max_wait.clone());
    let refresh = std::env::var("LULL_TENANT_REFRESH")
        .ok()
        .or(file.tenant_refresh.clone());
    let d = Policy::default();
    let parse = |name: &str, v: Option<String>, default| match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{name} {s:?}: {e} (write 8s, 500ms, 1m)")),
    };
    let policy = Policy::with_times(
        parse("quiet", quiet, d.quiet)?,
        parse("max_wait", max_wait, d.max_wait)?,
    )
    .map_err(|e| e.to_string())?;
    let refresh = parse("tenant_refresh", refresh, lull_ingest::DEFAULT_TENANT_TTL)?;
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("lull-data"));
    Ok((policy, refresh, data_dir))
}

/// `lull tenants ...`.
pub fn run(args: &TenantsArgs) -> ExitCode {
    let result = if args.aws {
        crate::aws::tenants(args)
    } else {
        local(args)
    };
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lull tenants: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the outcome of an apply.
pub fn applied_summary(
    created: &[String],
    updated: &[String],
    unchanged: &[String],
    released: &[String],
) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let released = if released.is_empty() {
        String::new()
    } else {
        format!(
            "\nreleased (gave up accounts they had dropped, now idle): {}",
            list(released)
        )
    };
    format!(
        "created: {}\nupdated: {}\nunchanged: {}{released}\nrunning servers apply it within \
         their tenant refresh time (default 10s)",
        list(created),
        list(updated),
        list(unchanged)
    )
}

/// `lull tenants show ID`: one tenant as `list --json` shows it (secrets never printed).
pub(crate) fn render_show(records: &[TenantRecord], id: &str) -> Result<String, String> {
    let r = records
        .iter()
        .find(|r| r.spec.id == id)
        .ok_or_else(|| format!("no tenant {id:?}"))?;
    serde_json::to_string_pretty(&view(r)).map_err(|e| e.to_string())
}

/// Renders `records` for `list`.
pub fn render_list(records: &[TenantRecord], as_json: bool) -> String {
    if as_json {
        records
            .iter()
            .map(|r| view(r).to_string())
            .collect::<Vec<_>>()
            .join("\n")
    } else if records.is_empty() {
        "no tenants".into()
    } else {
        records.iter().map(line).collect::<Vec<_>>().join("\n")
    }
}

fn local(args: &TenantsArgs) -> Result<String, String> {
    let (policy, refresh, data_dir) = defaults(args)?;
    let store = lull_local::SqliteTenants::open(&data_dir).map_err(|e| e.to_string())?;
    let now = Millis::now_wall();
    match &args.command {
        TenantsCommand::Apply { file } => {
            let specs = parse_file(file)?;
            // The deployment's settings, as the server recorded them, win over this shell's.
            let (policy, refresh, source) = match store.deployment().map_err(|e| e.to_string())? {
                Some(d) => (
                    d.defaults,
                    Duration::from_millis(d.tenant_refresh_ms),
                    "recorded by lull serve",
                ),
                None => (
                    policy,
                    refresh,
                    "of this shell: no lull serve has run here yet",
                ),
            };
            let r = store
                .apply(specs, &policy, now, refresh)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{}\npolicies resolved with the deployment's defaults ({source}): quiet {}, max \
                 wait {}",
                applied_summary(&r.created, &r.updated, &r.unchanged, &r.released),
                humantime::format_duration(policy.quiet),
                humantime::format_duration(policy.max_wait)
            ))
        }
        TenantsCommand::List { json } => {
            let records = store.load_now().map_err(|e| e.to_string())?;
            Ok(render_list(&records, *json))
        }
        TenantsCommand::Show { id } => {
            render_show(&store.load_now().map_err(|e| e.to_string())?, id)
        }
        TenantsCommand::Remove { id, purge } => {
            // A purge is refused (in the store's transaction) while the tenant's conversations
            // still hold work.
            store.remove(id, *purge, now).map_err(|e| e.to_string())?;
            Ok(removed_summary(id, *purge))
        }
    }
}

/// What `remove` prints.
pub fn removed_summary(id: &str, purge: bool) -> String {
    if purge {
        format!("tenant {id:?} purged")
    } else {
        format!(
            "tenant {id:?} removed: its accounts are refused within the refresh time; what it \
             accepted is still handed off to its sink"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_never_hold_secret_values() {
        let spec: TenantSpec = serde_json::from_value(json!({
            "id": "acme", "sink": "https://user:pw@ai.acme.example/x?token=tok-v1&code=c0de", "sink_secret": "sig-v1",
            "meta": {"phone_number_ids": ["1"], "app_secret": ["app-v1", "app-v2"]}
        }))
        .unwrap();
        let r = TenantRecord::applied(None, spec, Millis(1_700_000_000_000));
        let shown = format!("{}\n{}", view(&r), line(&r));
        for secret in ["sig-v1", "app-v1", "app-v2", "pw@", "tok-v1", "c0de"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("meta.app_secret(x2 since 2023-11-14T22:13:20"),
            "{shown}"
        );
        assert_eq!(view(&r)["secrets"]["sink_secret"]["values"], 1);
    }

    #[test]
    fn files_in_toml_and_json_shapes_parse() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("t.toml");
        std::fs::write(
            &toml_path,
            "quiet = \"2s\"\n[[tenants]]\nid = \"a\"\n[tenants.meta]\nphone_number_ids = [\"1\"]\n",
        )
        .unwrap();
        assert_eq!(parse_file(&toml_path).unwrap()[0].id, "a");
        let json_path = dir.path().join("t.json");
        std::fs::write(&json_path, r#"[{"id": "b"}, {"id": "c"}]"#).unwrap();
        assert_eq!(parse_file(&json_path).unwrap().len(), 2);
        std::fs::write(&json_path, r#"{"id": "d", "quiet": "1s"}"#).unwrap();
        assert_eq!(parse_file(&json_path).unwrap()[0].id, "d");
        std::fs::write(&json_path, r#"{"id": "d", "qiuet": "1s"}"#).unwrap();
        let e = parse_file(&json_path).unwrap_err();
        assert!(e.contains("qiuet"), "{e}");
    }
}
