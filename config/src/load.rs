//! Layering: embedded defaults < file < env < flags, merged as one TOML table
//! that remembers where each value came from, then deserialized and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::error::{ConfigError, ErrorKind, Origin};
use crate::render::REDACTED;
use crate::schema::{self, Key, Kind};
use crate::types::Config;
use crate::{DEFAULT_TOML, validate};

/// Everything the loader reads, passed in explicitly so tests need no
/// process environment.
#[derive(Clone, Debug, Default)]
pub struct Sources<'a> {
    /// The `--config` file, if any.
    pub file: Option<&'a Path>,
    /// Environment variables. The whole process environment may be passed:
    /// only names starting with `FLEETCACHE_` are read.
    pub env: Vec<(String, String)>,
    /// Command-line flags as (dotted key path, value).
    pub flags: Vec<(&'a str, String)>,
}

/// Loads the configuration: embedded defaults, then the file, then
/// `FLEETCACHE_*` variables, then flags; each layer overrides single keys of
/// the ones below. Then deserializes and validates.
pub fn load(sources: Sources<'_>) -> Result<Config, ConfigError> {
    let mut layered = Layered::defaults()?;
    if let Some(path) = sources.file {
        layered.apply_file(path)?;
    }
    layered.apply_env(&sources.env)?;
    for (path, value) in &sources.flags {
        if *path == schema::ORIGIN {
            layered.set_default_origin_url(value, Origin::UrlFlag);
            continue;
        }
        let key = schema::leaf(path).ok_or_else(|| ErrorKind::UnknownKey {
            key: (*path).to_owned(),
            origin: Origin::Flag,
            suggestion: schema::suggest_key(path).map(str::to_owned),
        })?;
        layered.set(key, value, Origin::Flag)?;
    }
    let config = layered.deserialize()?;
    validate::validate(&config, &layered)?;
    Ok(config)
}

/// The merged table and, per key path, the layer that last set it. Paths
/// not in `origins` come from the defaults.
#[derive(Debug)]
pub(crate) struct Layered {
    table: Table,
    origins: BTreeMap<String, Origin>,
}

impl Layered {
    fn defaults() -> Result<Layered, ConfigError> {
        let table = parse_toml(DEFAULT_TOML, Path::new("<embedded default.toml>"))?;
        Ok(Layered {
            table,
            origins: BTreeMap::new(),
        })
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ErrorKind::Read {
            path: path.to_owned(),
            error,
        })?;
        let file = parse_toml(&text, path)?;
        let origin = Origin::File(path.to_owned());
        reject_unknown(&file, "", &origin)?;
        merge(&mut self.table, file, "", &origin, &mut self.origins);
        Ok(())
    }

    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        let mut ours: Vec<&(String, String)> = env
            .iter()
            .filter(|(name, _)| name.starts_with(schema::ENV_PREFIX) && name != schema::ENV_CONFIG)
            .collect();
        // The process environment has no order; sort so errors are stable.
        ours.sort();
        let alias = ours.iter().any(|(name, _)| name == schema::ENV_LOG_ALIAS);
        let full = schema::env_name(schema::LOG_LEVEL);
        if alias && ours.iter().any(|(name, _)| *name == full) {
            return Err(ConfigError::invalid(
                schema::LOG_LEVEL,
                None,
                Origin::Env(schema::ENV_LOG_ALIAS.to_owned()),
                format!(
                    "{} and {full} are both set; the first is an alias of the second, set only one",
                    schema::ENV_LOG_ALIAS
                ),
            ));
        }
        for (name, value) in ours {
            if name == schema::ENV_ORIGIN {
                self.set_default_origin_url(value, Origin::Env(name.clone()));
                continue;
            }
            let key = schema::key_for_env(name).ok_or_else(|| ErrorKind::UnknownEnv {
                name: name.clone(),
                suggestion: schema::suggest_env(name),
            })?;
            self.set(key, value, Origin::Env(name.clone()))?;
        }
        Ok(())
    }

    /// Sets one leaf from a string (env or flag), typed by the schema.
    fn set(&mut self, key: &Key, raw: &str, origin: Origin) -> Result<(), ConfigError> {
        let bad = |problem: &str| {
            ConfigError::invalid(
                key.path,
                Some(show(key.path, &Value::String(raw.to_owned()))),
                origin.clone(),
                problem,
            )
        };
        let value = match key.kind {
            Kind::Text => Value::String(raw.to_owned()),
            Kind::Integer => Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| bad("expected a whole number"))?,
            ),
            Kind::Float => Value::Float(
                raw.trim()
                    .parse()
                    .map_err(|_| bad("expected a number, like 0.9"))?,
            ),
            Kind::Bool => Value::Boolean(match raw.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("expected true or false")),
            }),
            Kind::List => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            ),
        };
        let mut table = &mut self.table;
        let mut parts = key.path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                self.origins.insert(key.path.to_owned(), origin);
                return Ok(());
            }
            let next = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            match next {
                Value::Table(inner) => table = inner,
                // A lower layer put a non-table here (`store = 5` in the
                // file); deserialization reports that with its origin.
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Points the default origin (the entry without `host`) at `url`,
    /// keeping its other keys, or appends a default origin with only a url.
    fn set_default_origin_url(&mut self, url: &str, origin: Origin) {
        let entries = self
            .table
            .entry(schema::ORIGIN)
            .or_insert_with(|| Value::Array(Vec::new()));
        // A file `origin` that is not a list was refused by `reject_unknown`.
        let Value::Array(entries) = entries else {
            return;
        };
        let default = entries.iter_mut().enumerate().find_map(|(index, entry)| {
            entry
                .as_table_mut()
                .filter(|table| !table.contains_key("host"))
                .map(|table| (index, table))
        });
        let url = Value::String(url.to_owned());
        let index = match default {
            Some((index, table)) => {
                table.insert("url".to_owned(), url);
                index
            }
            None => {
                entries.push(Value::Table(Table::from_iter([("url".to_owned(), url)])));
                entries.len() - 1
            }
        };
        self.origins.insert(format!("origin[{index}].url"), origin);
    }

    fn deserialize(&self) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(self.table.clone())).map_err(|err| {
            let path = err.path().to_string();
            let message = err.inner().message();
            // serde blames the table for a missing key; the key is the fault.
            match missing_field(message) {
                Some(name) => self.error(&join(&path, name), "required, but not set".to_owned()),
                None => self.error(&path, plain_words(message)),
            }
        })
    }

    /// An error about `field`, showing its merged value and origin.
    pub(crate) fn error(&self, field: &str, problem: String) -> ConfigError {
        let value = lookup(&self.table, field).map(|value| show(field, value));
        ConfigError::invalid(field, value, self.origin(field), problem)
    }

    /// Where the value at `field` came from: the nearest recorded ancestor
    /// (a file may replace a whole table; `origin[1].url` may be a flag's
    /// while the rest of `origin` is the file's), else the defaults.
    pub(crate) fn origin(&self, field: &str) -> Origin {
        let mut path = field;
        loop {
            if let Some(origin) = self.origins.get(path) {
                return origin.clone();
            }
            let parent = match path.strip_suffix(']') {
                Some(indexed) => indexed.rsplit_once('['),
                None => path.rsplit_once('.'),
            };
            match parent {
                Some((parent, _)) => path = parent,
                None => return Origin::Default,
            }
        }
    }
}

/// The key of serde's "missing field `url`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde speaks Rust ("expected usize", "expected struct StoreConfig");
/// operators write TOML.
fn plain_words(message: &str) -> String {
    let mut text = message
        .replace("expected usize", "expected a whole number of at least 0")
        .replace("expected f64", "expected a number")
        .replace(
            "expected a sequence",
            "expected a list, like [\"a\", \"b\"]",
        );
    if let Some(start) = text.find("expected struct ") {
        let name_end = text[start + "expected struct ".len()..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(text.len(), |i| start + "expected struct ".len() + i);
        text.replace_range(start..name_end, "expected a table");
    }
    text
}

/// `swarm.peers[1]` → `swarm.peers`, `origin[0].url` → `origin`.
fn strip_index(field: &str) -> &str {
    field.split('[').next().unwrap_or(field)
}

/// The value at a dotted path, with `[i]` indexing into arrays.
fn lookup<'a>(table: &'a Table, field: &str) -> Option<&'a Value> {
    let mut segments = field.split('.');
    let first = segments.next()?;
    let mut value = index_into(table.get(first.split('[').next()?)?, first)?;
    for segment in segments {
        let name = segment.split('[').next()?;
        value = index_into(value.as_table()?.get(name)?, segment)?;
    }
    Some(value)
}

/// Applies the `[i]` suffixes of one path segment.
fn index_into<'a>(mut value: &'a Value, segment: &str) -> Option<&'a Value> {
    for index in segment.split('[').skip(1) {
        let index: usize = index.strip_suffix(']')?.parse().ok()?;
        value = value.as_array()?.get(index)?;
    }
    Some(value)
}

/// A value as TOML for an error message; secrets become a placeholder.
fn show(field: &str, value: &Value) -> String {
    let secret = schema::leaf(strip_index(field)).is_some_and(|key| key.secret);
    if secret {
        REDACTED.to_owned()
    } else {
        value.to_string()
    }
}

fn parse_toml(text: &str, path: &Path) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|err| {
        let (line, column) = err
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        ErrorKind::Syntax {
            path: PathBuf::from(path),
            line,
            column,
            message: err.message().trim_end().replace('\n', "; "),
        }
        .into()
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Fails on the first key (in file order) that is neither a known leaf nor
/// a known table. Wrong shapes (`store = 5`) are left to deserialization,
/// which says what was expected.
fn reject_unknown(table: &Table, prefix: &str, origin: &Origin) -> Result<(), ConfigError> {
    for (name, value) in table {
        let path = join(prefix, name);
        if path == schema::ORIGIN {
            reject_unknown_in_origins(value, origin)?;
            continue;
        }
        if schema::leaf(&path).is_some() {
            continue;
        }
        if schema::is_table(&path) {
            if let Value::Table(inner) = value {
                reject_unknown(inner, &path, origin)?;
            }
            continue;
        }
        return Err(ErrorKind::UnknownKey {
            suggestion: schema::suggest_key(&path).map(str::to_owned),
            key: path,
            origin: origin.clone(),
        }
        .into());
    }
    Ok(())
}

/// The keys of each `[[origin]]` table. `[origin]` (one table, single
/// brackets) is the likely mistake, so it gets its own message.
fn reject_unknown_in_origins(value: &Value, origin: &Origin) -> Result<(), ConfigError> {
    let entries = match value {
        Value::Array(entries) => entries,
        Value::Table(_) => {
            return Err(ConfigError::invalid(
                schema::ORIGIN,
                Some(value.to_string()),
                origin.clone(),
                "origins are a list of tables: write [[origin]] (double brackets) above each one",
            ));
        }
        // Deserialization says what was expected instead.
        _ => return Ok(()),
    };
    for (index, entry) in entries.iter().enumerate() {
        let Value::Table(entry) = entry else {
            continue;
        };
        if let Some(name) = entry.keys().find(|name| !schema::is_origin_key(name)) {
            return Err(ErrorKind::UnknownKey {
                key: format!("origin[{index}].{name}"),
                origin: origin.clone(),
                suggestion: schema::suggest_origin_key(name)
                    .map(|known| format!("origin[{index}].{known}")),
            }
            .into());
        }
    }
    Ok(())
}

/// Overlays `from` on `into` key by key, recording `origin` for every value
/// that replaces one below it.
fn merge(
    into: &mut Table,
    from: Table,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (name, value) in from {
        let path = join(prefix, &name);
        match (into.get_mut(&name), value) {
            (Some(Value::Table(below)), Value::Table(above)) if schema::is_table(&path) => {
                merge(below, above, &path, origin, origins);
            }
            (_, value) => {
                into.insert(name, value);
                origins.insert(path, origin.clone());
            }
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
