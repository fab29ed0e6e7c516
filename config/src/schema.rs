//! The set of configuration keys: what env vars and flags may name, and how
//! their string values become TOML values before deserialization.
//!
//! The serde types in `types.rs` are the authority on shapes; this list is
//! what the loader needs to resolve `FLEETCACHE_STORE_DATA_DIR` without
//! guessing where the underscores split. Tests check it against both the
//! embedded `default.toml` and `Config::to_toml`.
//!
//! `[[origin]]` entries are not leaves of a table: their keys are
//! [`ORIGIN_KEYS`], documented in `default.toml` as a commented example
//! block, and the only one reachable from the environment or a flag is the
//! default origin's url ([`ENV_ORIGIN`], flag key [`ORIGIN`]).

/// How a string from the environment or a flag becomes a TOML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Kept as a string: strings, paths, addresses, sizes, durations, enums.
    /// Sizes and durations parse from strings anyway.
    Text,
    /// A whole number.
    Integer,
    /// A floating-point number.
    Float,
    /// A list of strings, comma-separated.
    List,
    /// `true` or `false`.
    Bool,
}

/// One leaf key of the configuration.
#[derive(Debug)]
pub(crate) struct Key {
    /// Dotted path, e.g. `store.data_dir`.
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    /// Absent from the defaults (an `Option` field); documented there only
    /// as a comment. Only the tests that hold `default.toml` to this list
    /// read it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) optional: bool,
    /// Never shown: redacted in errors and in `to_toml`.
    pub(crate) secret: bool,
}

const fn key(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        optional: false,
        secret: false,
    }
}

const fn optional(path: &'static str) -> Key {
    Key {
        path,
        kind: Kind::Text,
        optional: true,
        secret: false,
    }
}

/// Every leaf key, in the order `to_toml` prints them.
pub(crate) const KEYS: &[Key] = &[
    key("http.listen", Kind::Text),
    key("http.max_header_bytes", Kind::Text),
    key("http.max_headers", Kind::Integer),
    key("http.header_read_timeout", Kind::Text),
    key("http.idle_timeout", Kind::Text),
    key("http.max_connections", Kind::Integer),
    key("http.plaintext", Kind::Bool),
    key("http.max_concurrent_streams", Kind::Integer),
    key("http.tls.listen", Kind::Text),
    optional("http.tls.cert_file"),
    optional("http.tls.key_file"),
    key("http.tls.certificates", Kind::List),
    key("http.tls.http3", Kind::Bool),
    key("http.tls.http3_unvalidated_handshakes", Kind::Integer),
    key("http.tls.http3_advertised_port", Kind::Integer),
    key("http.tls.reload_interval", Kind::Text),
    key("admin.listen", Kind::Text),
    Key {
        secret: true,
        ..optional("admin.token")
    },
    optional("admin.token_file"),
    key("admin.max_upload_size", Kind::Text),
    key("store.data_dir", Kind::Text),
    key("store.capacity", Kind::Text),
    key("store.high_watermark", Kind::Float),
    key("store.low_watermark", Kind::Float),
    key("store.memory_cache", Kind::Text),
    key("swarm.listen", Kind::Text),
    key("swarm.peers", Kind::List),
    optional("swarm.cert_dir"),
    key("swarm.peer_timeout", Kind::Text),
    key("swarm.ping_interval", Kind::Text),
    key("swarm.resolve_interval", Kind::Text),
    key("swarm.max_uploads", Kind::Integer),
    key("swarm.purge_retention", Kind::Text),
    key("shutdown.grace_period", Kind::Text),
    key("log.level", Kind::Text),
    key("log.format", Kind::Text),
];

/// The array of `[[origin]]` tables, and the flag key that sets the default
/// origin's url (`--origin URL`).
pub(crate) const ORIGIN: &str = "origin";
/// Sets the default origin's url, like the [`ORIGIN`] flag.
pub(crate) const ENV_ORIGIN: &str = "FLEETCACHE_ORIGIN";

/// One key of an `[[origin]]` table.
#[derive(Debug)]
pub(crate) struct EntryKey {
    pub(crate) name: &'static str,
    /// An `Option` field, unset by default. Only tests read it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) optional: bool,
}

const fn entry(name: &'static str, optional: bool) -> EntryKey {
    EntryKey { name, optional }
}

/// Every key of an `[[origin]]` table, in the order `to_toml` prints them.
pub(crate) const ORIGIN_KEYS: &[EntryKey] = &[
    entry("url", false),
    entry("host", true),
    entry("ca_file", true),
    entry("connect_timeout", false),
    entry("first_byte_timeout", false),
    entry("idle_timeout", false),
    entry("max_object_size", false),
    entry("max_fetches", false),
    entry("queue_timeout", false),
    entry("default_ttl", true),
    entry("stale_if_error", false),
    entry("forwarded", false),
];

/// Every environment variable the loader reads starts with this.
pub(crate) const ENV_PREFIX: &str = "FLEETCACHE_";
/// The CLI's config-file variable; the loader skips it.
pub(crate) const ENV_CONFIG: &str = "FLEETCACHE_CONFIG";
/// Short alias of `FLEETCACHE_LOG_LEVEL`, in the spirit of `RUST_LOG`.
pub(crate) const ENV_LOG_ALIAS: &str = "FLEETCACHE_LOG";
/// The key [`ENV_LOG_ALIAS`] sets.
pub(crate) const LOG_LEVEL: &str = "log.level";

/// The leaf key at `path`.
pub(crate) fn leaf(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

/// Whether `path` is a table that holds keys (`store`, not `store.capacity`).
pub(crate) fn is_table(path: &str) -> bool {
    KEYS.iter().any(|key| {
        key.path
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// `store.data_dir` → `FLEETCACHE_STORE_DATA_DIR`.
pub(crate) fn env_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.to_ascii_uppercase().replace('.', "_")
    )
}

/// The key an environment variable sets, by exact match against the names
/// of all known keys (plus the log alias).
pub(crate) fn key_for_env(name: &str) -> Option<&'static Key> {
    if name == ENV_LOG_ALIAS {
        return leaf(LOG_LEVEL);
    }
    KEYS.iter().find(|key| env_name(key.path) == name)
}

/// Whether `name` is a key of an `[[origin]]` table.
pub(crate) fn is_origin_key(name: &str) -> bool {
    ORIGIN_KEYS.iter().any(|key| key.name == name)
}

/// What a file, a flag or a variable may name: the leaves and `origin`.
fn settable() -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .map(|key| key.path)
        .chain(std::iter::once(ORIGIN))
}

/// The known key closest to a misspelt one, if any is close.
pub(crate) fn suggest_key(unknown: &str) -> Option<&'static str> {
    closest(unknown, settable()).map(|(_, path)| path)
}

/// The `[[origin]]` key closest to a misspelt one, if any is close.
pub(crate) fn suggest_origin_key(unknown: &str) -> Option<&'static str> {
    closest(unknown, ORIGIN_KEYS.iter().map(|key| key.name)).map(|(_, name)| name)
}

/// The known variable closest to a misspelt one, if any is close.
pub(crate) fn suggest_env(unknown: &str) -> Option<String> {
    closest(unknown, settable()).map(|(_, path)| env_name(path))
}

/// Close means at most a third of the name differs (and at most 4 edits).
fn closest(
    unknown: &str,
    candidates: impl Iterator<Item = &'static str>,
) -> Option<(usize, &'static str)> {
    let unknown = unknown
        .strip_prefix(ENV_PREFIX)
        .map(|rest| rest.to_ascii_lowercase().replace('_', "."))
        .unwrap_or_else(|| unknown.to_owned());
    // Env names lose the difference between `.` and `_`; compare without it.
    let normalise = |s: &str| s.replace(['.', '_'], "");
    let wanted = normalise(&unknown);
    let limit = (wanted.len() / 3).clamp(1, 4);
    candidates
        .map(|candidate| (edit_distance(&wanted, &normalise(candidate)), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
}

/// Levenshtein distance over bytes; the key names are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::DEFAULT_TOML;

    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (name, value) in table {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match value {
                toml::Value::Table(inner) => leaves(inner, &path, out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn defaults_file_holds_exactly_the_required_keys() {
        let table: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let mut found = Vec::new();
        leaves(&table, "", &mut found);
        found.sort();
        let mut expected: Vec<String> = KEYS
            .iter()
            .filter(|key| !key.optional)
            .map(|key| key.path.to_owned())
            .collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn defaults_file_documents_the_optional_keys() {
        for key in KEYS.iter().filter(|key| key.optional) {
            let (section, name) = key.path.rsplit_once('.').unwrap();
            let section_start = DEFAULT_TOML.find(&format!("\n[{section}]\n")).unwrap();
            let rest = &DEFAULT_TOML[section_start + 1..];
            let section_text = &rest[..rest.find("\n[").unwrap_or(rest.len())];
            assert!(
                section_text.contains(&format!("\n# {name} = ")),
                "{} is not documented in default.toml",
                key.path
            );
        }
    }

    /// The commented `# [[origin]]` example in `default.toml`, uncommented:
    /// its `# key = value` lines (prose there is `# # ...`).
    fn documented_origin() -> Vec<String> {
        let start = DEFAULT_TOML.find("\n# [[origin]]\n").unwrap() + "\n# [[origin]]\n".len();
        DEFAULT_TOML[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .map(|line| line.trim_start_matches('#').trim_start())
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn origin_keys_are_the_fields() {
        let url = "http://a".parse().unwrap();
        // No `..`: a new field does not compile until it is listed here,
        // and then the assertion asks for it in `ORIGIN_KEYS`.
        let crate::OriginConfig {
            url: _,
            host: _,
            ca_file: _,
            connect_timeout: _,
            first_byte_timeout: _,
            idle_timeout: _,
            max_object_size: _,
            max_fetches: _,
            queue_timeout: _,
            default_ttl: _,
            stale_if_error: _,
            forwarded: _,
        } = crate::OriginConfig::new(url);
        let names: Vec<&str> = ORIGIN_KEYS.iter().map(|key| key.name).collect();
        assert_eq!(
            names,
            [
                "url",
                "host",
                "ca_file",
                "connect_timeout",
                "first_byte_timeout",
                "idle_timeout",
                "max_object_size",
                "max_fetches",
                "queue_timeout",
                "default_ttl",
                "stale_if_error",
                "forwarded",
            ]
        );
    }

    #[test]
    fn defaults_file_documents_every_origin_key_with_its_default() {
        let lines = documented_origin();
        let names: Vec<&str> = lines
            .iter()
            .map(|line| line.split_once(" = ").unwrap().0)
            .collect();
        let expected: Vec<&str> = ORIGIN_KEYS.iter().map(|key| key.name).collect();
        assert_eq!(names, expected, "default.toml's [[origin]] block");

        let mut documented: crate::OriginConfig = toml::from_str(&lines.join("\n")).unwrap();
        // The optional keys show examples; everything else shows the default.
        assert!(documented.host.is_some());
        assert!(documented.ca_file.is_some());
        assert!(documented.default_ttl.is_some());
        let optional: Vec<&str> = ORIGIN_KEYS
            .iter()
            .filter(|key| key.optional)
            .map(|key| key.name)
            .collect();
        assert_eq!(optional, ["host", "ca_file", "default_ttl"]);
        documented.host = None;
        documented.ca_file = None;
        documented.default_ttl = None;
        assert_eq!(documented, crate::OriginConfig::new(documented.url.clone()));
    }

    #[test]
    fn env_names_are_unique_and_resolve() {
        for key in KEYS {
            let name = env_name(key.path);
            assert_eq!(key_for_env(&name).map(|k| k.path), Some(key.path));
        }
        assert_eq!(env_name("store.data_dir"), "FLEETCACHE_STORE_DATA_DIR");
        assert_eq!(
            key_for_env("FLEETCACHE_ADMIN_TOKEN_FILE").map(|k| k.path),
            Some("admin.token_file")
        );
        assert_eq!(
            key_for_env("FLEETCACHE_LOG").map(|k| k.path),
            Some("log.level")
        );
        assert!(key_for_env("FLEETCACHE_STORE").is_none());
        assert!(key_for_env("FLEETCACHE_CONFIG").is_none());
    }

    #[test]
    fn tables_and_leaves() {
        assert!(is_table("store"));
        assert!(!is_table("store.capacity"));
        assert!(!is_table("stor"));
        assert!(leaf("store.capacity").is_some());
        assert!(leaf("store").is_none());
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(suggest_key("store.capcity"), Some("store.capacity"));
        assert_eq!(suggest_key("http.listne"), Some("http.listen"));
        assert_eq!(suggest_key("completely.different"), None);
        assert_eq!(
            suggest_env("FLEETCACHE_STORE_CAPCITY").as_deref(),
            Some("FLEETCACHE_STORE_CAPACITY")
        );
        assert_eq!(
            suggest_env("FLEETCACHE_STORE_DATADIR").as_deref(),
            Some("FLEETCACHE_STORE_DATA_DIR")
        );
        assert_eq!(suggest_env("FLEETCACHE_NO_SUCH_THING"), None);
        assert_eq!(suggest_key("orign"), Some("origin"));
        assert_eq!(
            suggest_env("FLEETCACHE_ORIGN").as_deref(),
            Some("FLEETCACHE_ORIGIN")
        );
        assert_eq!(suggest_origin_key("urll"), Some("url"));
        assert_eq!(
            suggest_origin_key("conect_timeout"),
            Some("connect_timeout")
        );
        assert_eq!(suggest_origin_key("tls"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
