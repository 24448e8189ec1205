//! Resolution of `lull serve`'s settings: defaults, the three spellings of each setting, the
//! layers' order, and every bad value named.

use serde_json::Value;

use super::*;

fn args() -> ServeArgs {
    ServeArgs::default()
}

#[test]
fn defaults() {
    let c = args().resolve_with(FileConfig::default()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from("lull-data"));
    assert_eq!(c.policy.quiet, Duration::from_secs(8));
    assert_eq!(c.policy.max_wait, Duration::from_secs(30));
    assert_eq!(c.sink, "stdout");
    assert!(
        !c.allow_unsigned,
        "unsigned webhooks are an explicit opt-in"
    );
    assert!(c.no_secrets);
    assert_eq!(c.ops_listen.to_string(), "127.0.0.1:9090");
    assert!(!c.trust_forwarded);
    assert_eq!(c.max_concurrent_requests, 64);
    assert_eq!(c.fallback.as_ref().map(|t| t.id.as_str()), Some("default"));
    assert!(c.seed.is_empty());
    assert_eq!(c.tenant_refresh, lull_ingest::DEFAULT_TENANT_TTL);
    assert_eq!(c.sweep.limit, lull_core::protocol::SWEEP_LIMIT);
}

#[test]
fn every_setting_is_one_flag_one_variable_and_one_file_key() {
    use clap::Args as _;
    let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
    let keys = match serde_json::to_value(ServeArgs::default()).unwrap() {
        Value::Object(m) => m,
        other => panic!("{other}"),
    };
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let key = Layers::key(env);
        assert_eq!(
            arg.get_long(),
            Some(key.replace('_', "-").as_str()),
            "{env}"
        );
        // Every flag but --config is also a lull.toml key of the same name.
        assert_eq!(keys.contains_key(&key), env != "LULL_CONFIG", "{env}");
    }
    // The protocol's settings are among them: serve resolves what the Lambdas resolve.
    for var in lull_core::settings::var::ALL {
        assert!(
            cmd.get_arguments()
                .any(|a| a.get_env().and_then(|e| e.to_str()) == Some(*var)),
            "{var} is not a flag of serve"
        );
    }
}

#[test]
fn protocol_settings_come_from_every_layer_and_are_named_in_all_three_spellings() {
    let file: FileConfig = toml::from_str(
        "max_messages = 7\nlease = \"80s\"\ndedupe_horizon = \"2h\"\nretry_min = \"2s\"",
    )
    .unwrap();
    let mut a = args();
    a.max_bytes = Some(4096);
    let c = a.resolve_with(file).unwrap();
    assert_eq!(c.policy.max_messages, 7);
    assert_eq!(c.policy.max_bytes, 4096);
    assert_eq!(c.buffer.timing.lease(), Duration::from_secs(80));
    assert_eq!(c.buffer.dedupe_horizon, Duration::from_secs(7200));
    assert_eq!(c.buffer.retry_min, Duration::from_secs(2));
    let file: FileConfig = toml::from_str("lease = \"61s\"").unwrap();
    let e = args().resolve_with(file).unwrap_err().to_string();
    assert!(
        e.starts_with("--lease / LULL_LEASE / lease in lull.toml: \"61s\" is invalid"),
        "{e}"
    );
    // A secret list in the file is the same as a comma-separated flag.
    let file: FileConfig = toml::from_str("meta_app_secret = [\"new\", \"old\"]").unwrap();
    let c = args().resolve_with(file).unwrap();
    let fallback = c.fallback.expect("the flags' tenant");
    assert_eq!(fallback.meta.app_secrets.len(), 2);
    // Secrets never show in a debug print of the settings.
    let file: FileConfig = toml::from_str("sink_secret = \"whsec_x\"").unwrap();
    assert!(!format!("{file:?}").contains("whsec_x"));
}

#[test]
fn unsigned_mode_is_opt_in_and_loopback_only() {
    let mut a = args();
    a.allow_unsigned = true;
    assert!(
        a.resolve_with(FileConfig::default())
            .unwrap()
            .allow_unsigned
    );
    a.listen = Some("0.0.0.0:8080".into());
    a.meta_app_secret = Some("s3cret".parse().unwrap());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LULL_ALLOW_UNSIGNED") && e.contains("0.0.0.0:8080"),
        "{e}"
    );
    let file: FileConfig = toml::from_str("allow_unsigned = true").unwrap();
    assert!(args().resolve_with(file).unwrap().allow_unsigned);
}

#[test]
fn ops_listener_forwarded_trust_and_request_bound_are_settings() {
    let file: FileConfig = toml::from_str(
        "ops_listen = \"0.0.0.0:9100\"\ntrust_forwarded = true\nmax_concurrent_requests = 8\ntwilio_shared_key = [\"k1\", \"k2\"]",
    )
    .unwrap();
    let c = args().resolve_with(file).unwrap();
    assert_eq!(c.ops_listen.to_string(), "0.0.0.0:9100");
    assert!(c.trust_forwarded);
    assert_eq!(c.max_concurrent_requests, 8);
    let fallback = c.fallback.as_ref().expect("the flags' tenant");
    assert_eq!(fallback.twilio.shared_keys.len(), 2);
    let mut a = args();
    a.ops_listen = Some("127.0.0.1:8080".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ops"), "{e}");
    let mut a = args();
    a.max_concurrent_requests = Some(0);
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("LULL_MAX_CONCURRENT_REQUESTS"), "{e}");
}

#[test]
fn flags_beat_file_which_beats_defaults() {
    let file: FileConfig = toml::from_str(
        "quiet = \"2s\"\nmax_wait = \"20s\"\nlisten = \"127.0.0.1:9000\"\nsink = \"jsonl:/tmp/x\"",
    )
    .unwrap();
    let mut a = args();
    a.quiet = Some("500ms".into());
    let c = a.resolve_with(file).unwrap();
    assert_eq!(c.policy.quiet, Duration::from_millis(500));
    assert_eq!(c.policy.max_wait, Duration::from_secs(20));
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.sink, "jsonl:/tmp/x");
}

#[test]
fn bad_values_are_named() {
    let mut a = args();
    a.quiet = Some("soon".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("LULL_QUIET") && e.contains("soon"), "{e}");
    let mut a = args();
    a.listen = Some("0.0.0.0:8080".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("0.0.0.0:8080") && e.contains("secret"), "{e}");
    a.meta_app_secret = Some("s3cret".parse().unwrap());
    assert!(a.resolve_with(FileConfig::default()).is_ok());
    let mut a = args();
    a.sink = Some("ftp://x".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("LULL_SINK") && e.contains("ftp://x"), "{e}");
    let mut a = args();
    a.durability = Some("paranoid".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LULL_DURABILITY") && e.contains("paranoid"),
        "{e}"
    );
    let mut a = args();
    a.max_wait = Some("1s".into());
    let e = a
        .resolve_with(FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("max wait"), "{e}");
}

/// A `lull.toml` that does not parse is reported by line, column and key, never by quoting
/// the line, which may be a secret's.
#[test]
fn a_broken_config_file_never_quotes_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lull.toml");
    std::fs::write(
        &path,
        "quiet = \"8s\"\nmeta_app_secret = \"hunter2-app-secret\nsink = \"stdout\"\n",
    )
    .unwrap();
    let e = read_file(Some(&path)).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.contains("line 2") && e.contains("key meta_app_secret"),
        "{e}"
    );
    std::fs::write(&path, "sink_secret = 424242424242\n").unwrap();
    let e = read_file(Some(&path)).unwrap_err().to_string();
    assert!(!e.contains("424242424242"), "{e}");
    assert!(e.contains("key sink_secret"), "{e}");
}

#[test]
fn the_single_tenants_admin_token_comes_from_flag_or_file_and_opens_no_webhook() {
    let file: FileConfig = toml::from_str("admin_token = [\"adm-old\", \"adm-new\"]").unwrap();
    assert!(!format!("{file:?}").contains("adm-old"), "redacted");
    let c = args().resolve_with(file.clone()).unwrap();
    let tokens = |c: &Config| {
        let t = c.fallback.as_ref().expect("the flags' tenant");
        t.admin_tokens
            .iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(tokens(&c), ["adm-old", "adm-new"]);
    assert!(c.no_secrets, "an admin token authenticates no webhook");
    let mut a = args();
    a.admin_token = Some("adm-flag".parse().unwrap());
    assert_eq!(tokens(&a.resolve_with(file).unwrap()), ["adm-flag"]);
    // Not enough to listen beyond loopback: the webhooks would still be open.
    a.listen = Some("0.0.0.0:8080".into());
    let e = a.resolve_with(FileConfig::default()).unwrap_err();
    assert!(matches!(e, ServeConfigError::OpenWithoutSecrets(_)), "{e}");
    // With [[tenants]], each tenant has its own.
    let file: FileConfig = toml::from_str(
        "admin_token = \"adm\"\n[[tenants]]\nid = \"a\"\n[tenants.meta]\napp_secret = \"s\"",
    )
    .unwrap();
    let e = args().resolve_with(file).unwrap_err().to_string();
    assert!(e.contains("LULL_ADMIN_TOKEN"), "{e}");
    // A tenant of the file holding only an admin token and a sink secret opens no webhook
    // either: still loopback only.
    let file: FileConfig = toml::from_str(
        "listen = \"0.0.0.0:8080\"\n[[tenants]]\nid = \"a\"\nadmin_token = \"adm\"\nsink = \"https://ai.example.com/batch\"\nsink_secret = \"whsec_x\"\n[tenants.meta]\nphone_number_ids = [\"123\"]",
    )
    .unwrap();
    let e = args().resolve_with(file).unwrap_err();
    assert!(matches!(e, ServeConfigError::OpenWithoutSecrets(_)), "{e}");
}

#[test]
fn tenants_come_from_the_file() {
    let file: FileConfig = toml::from_str(
        r#"
        [[tenants]]
        id = "acme"
        quiet = "3s"
        [tenants.meta]
        phone_number_ids = ["106540352242922"]
        app_secret = ["a", "b"]

        [[tenants]]
        id = "beta"
        passthrough = true
        [tenants.twilio]
        numbers = ["+15550001111"]
        auth_token = "t"
        "#,
    )
    .unwrap();
    let c = args().resolve_with(file).unwrap();
    assert_eq!(c.seed.len(), 2);
    assert!(c.fallback.is_none());
    let acme = c.seed[0].to_tenant(&c.policy).unwrap();
    assert_eq!(acme.policy.quiet, Duration::from_secs(3));
    assert_eq!(acme.meta.app_secrets.len(), 2);
    assert!(!c.seed[1].to_tenant(&c.policy).unwrap().policy.buffering);
    assert!(!c.allow_unsigned);
}

#[test]
fn a_bad_tenant_sink_and_duplicate_ids_or_accounts_are_named() {
    let file: FileConfig = toml::from_str(
        "[[tenants]]\nid = \"acme\"\nsink = \"ftp://nope\"\n[tenants.meta]\napp_secret = \"a\"",
    )
    .unwrap();
    let e = args().resolve_with(file).unwrap_err().to_string();
    assert!(e.contains("ftp://nope") && e.contains("sink"), "{e}");
    let file: FileConfig = toml::from_str(
        r#"
        [[tenants]]
        id = "a"
        [tenants.twilio]
        numbers = ["whatsapp:+15550001111"]
        auth_token = "t"
        [[tenants]]
        id = "b"
        [tenants.twilio]
        numbers = ["+15550001111"]
        auth_token = "u"
        "#,
    )
    .unwrap();
    let e = args().resolve_with(file).unwrap_err().to_string();
    assert!(e.contains("+15550001111") && e.contains("\"b\""), "{e}");
    let file: FileConfig = toml::from_str(
        "[[tenants]]\nid = \"a\"\n[tenants.meta]\nphone_number_ids = [\"1\"]\n\
         [[tenants]]\nid = \"a\"\n[tenants.meta]\nphone_number_ids = [\"2\"]",
    )
    .unwrap();
    let e = args().resolve_with(file).unwrap_err().to_string();
    assert!(e.contains("\"a\" appears twice"), "{e}");
}
