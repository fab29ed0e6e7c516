//! The one error type of this crate: a message that stands on its own.
//!
//! The gateway prints `Display` and exits 64, so every message says which key
//! is wrong, what the value was, where it came from (embedded defaults, file,
//! env var, flag) and how to fix it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The embedded `default.toml`.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag (the CLI passes key paths, not flag spellings).
    Flag,
    /// The `--origin` flag, which sets the default origin's url.
    UrlFlag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("from the embedded defaults"),
            Origin::File(path) => write!(f, "from file {}", path.display()),
            Origin::Env(name) => write!(f, "from env {name}"),
            Origin::Flag => f.write_str("from a command-line flag"),
            Origin::UrlFlag => f.write_str("from flag --origin"),
        }
    }
}

/// The configuration could not be loaded, or a value in it is unusable.
///
/// `Display` is complete on its own, e.g. `invalid config: store.capacity =
/// "50XB" (from env FLEETCACHE_STORE_CAPACITY): unknown size unit "XB"; use
/// B, KiB, MiB, GiB, TiB, KB, MB, GB or TB`.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: {kind}")]
pub struct ConfigError {
    // Boxed: errors are rare and `Result<Config, _>` should stay small.
    kind: Box<ErrorKind>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ErrorKind {
    /// The config file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// The config file is not valid TOML.
    #[error("TOML syntax error in {} at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key this version does not know, in the file or from a flag.
    #[error("unknown key `{key}` ({origin}){}", did_you_mean(suggestion.as_deref()))]
    UnknownKey {
        key: String,
        origin: Origin,
        suggestion: Option<String>,
    },
    /// A `FLEETCACHE_` variable that names no key.
    #[error(
        "unknown environment variable {name}: it names no config key{}",
        did_you_mean(suggestion.as_deref())
    )]
    UnknownEnv {
        name: String,
        suggestion: Option<String>,
    },
    /// A value of the wrong type, malformed, or out of range.
    #[error("{field}{} ({origin}): {problem}", shown(value.as_deref()))]
    Invalid {
        field: String,
        /// The value as TOML, or `None` when showing it would not help.
        value: Option<String>,
        origin: Origin,
        problem: String,
    },
    /// `admin.token_file` could not be turned into a token at start-up.
    #[error("admin.token_file = {path:?}: {problem}")]
    TokenFile { path: PathBuf, problem: String },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!("; did you mean {s}?"))
        .unwrap_or_default()
}

fn shown(value: Option<&str>) -> String {
    value.map(|v| format!(" = {v}")).unwrap_or_default()
}

impl ConfigError {
    /// The dotted key path at fault (`store.capacity`, `swarm.peers[1]`,
    /// `origin[0].url`, with 0-based indices into the merged list), or
    /// `None` when the problem is not one key's (unreadable file, syntax
    /// error, unknown environment variable).
    pub fn field(&self) -> Option<&str> {
        match &*self.kind {
            ErrorKind::UnknownKey { key, .. } => Some(key),
            ErrorKind::Invalid { field, .. } => Some(field),
            ErrorKind::TokenFile { .. } => Some("admin.token_file"),
            ErrorKind::Read { .. } | ErrorKind::Syntax { .. } | ErrorKind::UnknownEnv { .. } => {
                None
            }
        }
    }

    /// A bad value: `value` is its TOML rendering (redacted by the caller
    /// for secrets).
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: Option<String>,
        origin: Origin,
        problem: impl Into<String>,
    ) -> ConfigError {
        ErrorKind::Invalid {
            field: field.into(),
            value,
            origin,
            problem: problem.into(),
        }
        .into()
    }
}

impl From<ErrorKind> for ConfigError {
    fn from(kind: ErrorKind) -> ConfigError {
        ConfigError {
            kind: Box::new(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_on_their_own() {
        let err = ConfigError::invalid(
            "store.capacity",
            Some("\"50XB\"".into()),
            Origin::Env("FLEETCACHE_STORE_CAPACITY".into()),
            "unknown size unit \"XB\"; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB",
        );
        assert_eq!(
            err.to_string(),
            "invalid config: store.capacity = \"50XB\" (from env FLEETCACHE_STORE_CAPACITY): \
             unknown size unit \"XB\"; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
        );
        assert_eq!(err.field(), Some("store.capacity"));

        let err = ConfigError::from(ErrorKind::UnknownKey {
            key: "store.capcity".into(),
            origin: Origin::File("/etc/fc.toml".into()),
            suggestion: Some("store.capacity".into()),
        });
        assert_eq!(
            err.to_string(),
            "invalid config: unknown key `store.capcity` (from file /etc/fc.toml); \
             did you mean store.capacity?"
        );

        let err = ConfigError::from(ErrorKind::UnknownEnv {
            name: "FLEETCACHE_NOPE".into(),
            suggestion: None,
        });
        assert_eq!(
            err.to_string(),
            "invalid config: unknown environment variable FLEETCACHE_NOPE: it names no config key"
        );
        assert_eq!(err.field(), None);
    }
}
