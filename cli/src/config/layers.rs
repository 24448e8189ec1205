//! The layers a setting is read from: the flags (and their environment variables) over
//! `lull.toml`, read by environment name ([`Layers`]), and the file itself ([`read_file`]).

use std::path::{Path, PathBuf};

use lull_core::settings::SettingSource;
use serde_json::{Map, Value};

use super::{FileConfig, ServeArgs, ServeConfigError};

/// The flags (and their environment variables) laid over `lull.toml`, read by environment name:
/// the [`SettingSource`] every setting of `serve` is resolved from.
pub struct Layers {
    values: Map<String, Value>,
}

impl Layers {
    /// `flags` over `file`: a flag or variable that is set wins; a switch can only turn on.
    pub fn new(flags: &ServeArgs, file: &ServeArgs) -> Layers {
        let object = |a: &ServeArgs| match serde_json::to_value(a) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut values = object(file);
        for (key, value) in object(flags) {
            let unset = match &value {
                Value::Null | Value::Bool(false) => true,
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if !unset {
                values.insert(key, value);
            }
        }
        Layers { values }
    }

    /// The file key of an environment name: `LULL_MAX_WAIT` is `max_wait`.
    pub(super) fn key(var: &str) -> String {
        var.trim_start_matches("LULL_").to_ascii_lowercase()
    }

    pub(super) fn switch(&self, var: &'static str) -> bool {
        matches!(self.values.get(&Self::key(var)), Some(Value::Bool(true)))
    }
}

impl SettingSource for Layers {
    fn value(&self, var: &'static str) -> Option<String> {
        match self.values.get(&Self::key(var))? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn name(&self, var: &'static str) -> String {
        let key = Self::key(var);
        format!("--{} / {var} / {key} in lull.toml", key.replace('_', "-"))
    }
}

/// Reads `lull.toml` (the given path, or ./lull.toml when it exists).
pub fn read_file(path: Option<&Path>) -> Result<FileConfig, ServeConfigError> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("lull.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default())
        }
        Err(source) => return Err(ServeConfigError::Read { path, source }),
    };
    toml::from_str(&text).map_err(|e| ServeConfigError::Parse {
        path,
        detail: crate::toml_error::describe(&text, &e),
    })
}
