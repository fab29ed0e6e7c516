//! fleetcache configuration: the serde types, layered loading, validation
//! and the embedded defaults.
//!
//! # Layers
//!
//! [`load`] builds one TOML table from four layers, each overriding single
//! keys of the ones below it:
//!
//! 1. the embedded defaults, [`DEFAULT_TOML`] (`config/default.toml`, which
//!    is also the commented reference for every key), so a node runs with no
//!    config file at all;
//! 2. the config file (`--config FILE`), which needs only the keys it changes;
//! 3. environment variables `FLEETCACHE_*`;
//! 4. command-line flags, passed by the CLI as (dotted key path, value);
//!    `--origin URL` is passed as `("origin", URL)`.
//!
//! The merged table is deserialized into [`Config`] with unknown fields
//! denied and the failing key path tracked, then validated (ranges,
//! watermark order, admin exposure, peer shape). Every [`ConfigError`] names
//! the key, shows the value (secrets redacted), says which layer it came
//! from, and reads on its own.
//!
//! # Environment variables
//!
//! A key's variable is `FLEETCACHE_` + its path in upper case with `.`
//! replaced by `_`: `store.data_dir` is `FLEETCACHE_STORE_DATA_DIR`,
//! `admin.token_file` is `FLEETCACHE_ADMIN_TOKEN_FILE`. Names are resolved by
//! exact match against the known keys, never by splitting on `_`. Values
//! are strings; integer and float keys are parsed, list keys
//! (`swarm.peers`) are split on commas, and everything else (addresses,
//! paths, sizes, durations) stays a string for the field's own parser.
//!
//! Any other `FLEETCACHE_` variable is an error naming it, with three
//! exceptions: `FLEETCACHE_CONFIG` (the CLI's config-file path) is skipped,
//! `FLEETCACHE_LOG` is an alias of `FLEETCACHE_LOG_LEVEL` (setting both
//! is an error), and `FLEETCACHE_ORIGIN` is the default origin's url (below).
//!
//! # Origins
//!
//! `[[origin]]` tables ([`OriginConfig`], in [`Config::origins`]) put the
//! node in front of origin servers as a shared cache. Their keys exist only
//! in the file, except the default origin's (the one without `host`) url:
//! `FLEETCACHE_ORIGIN` and the `origin` flag replace that entry's `url`,
//! keeping its other keys, or append a default origin with default settings.
//! Errors name entries by 0-based position in the merged list, like
//! `swarm.peers[1]`: `origin[0].url` is the first file entry's url, and an
//! entry appended from the environment or a flag comes after the file's.
//! [`Config::origin_for_host`] picks the origin for a request's Host.
//!
//! # Values
//!
//! Sizes ([`ByteSize`]) are "16KiB", "1.5GB", "10 MB" or plain bytes
//! (a TOML integer, or a string without unit). Durations are "500ms",
//! "30s", "1h30m"; TOML integers are refused for them because the unit
//! would be a guess.
//!
//! [`Config::to_toml`] prints the effective configuration (for
//! `fleetcache config print`) in a form that loads back, with the admin
//! token left out.

#![forbid(unsafe_code)]

mod duration;
mod error;
mod load;
mod origin;
mod render;
mod schema;
mod size;
#[cfg(test)]
mod test_case;
mod types;
mod validate;

pub use error::ConfigError;
pub use load::{Sources, load};
pub use origin::{OriginConfig, OriginUrl, ParseOriginUrlError};
pub use size::{ByteSize, ParseSizeError};
pub use types::{
    AdminConfig, Config, HttpConfig, LogConfig, LogFormat, ShutdownConfig, StoreConfig,
    SwarmConfig, TlsConfig,
};

/// The embedded defaults and documented reference (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../default.toml");
