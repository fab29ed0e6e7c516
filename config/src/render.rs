//! `Config::to_toml`: the effective configuration as a TOML file that loads
//! back to the same `Config`, secrets excepted.

use std::fmt::Write as _;
use std::path::Path;

use toml::Value;

use crate::duration;
use crate::origin::OriginConfig;
use crate::schema::{KEYS, ORIGIN_KEYS};
use crate::types::Config;

/// What a secret is shown as, in errors and in `to_toml` comments.
pub(crate) const REDACTED: &str = "<redacted>";

/// One key's rendering.
enum Leaf {
    Set(Value),
    Unset,
    /// A secret that is set: printed only as a comment, so that the output
    /// never starts a node with a placeholder as its real token.
    Secret,
}

impl Config {
    /// The effective configuration as TOML, every key included, in the
    /// order of `default.toml`, then one `[[origin]]` table per origin.
    /// `admin.token` is never printed: when set it appears as a comment, so
    /// loading the output needs the token supplied again (e.g.
    /// FLEETCACHE_ADMIN_TOKEN). Unset optional keys appear as comments.
    /// Non-UTF-8 paths are printed lossily.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# fleetcache effective configuration\n\
             # (embedded defaults < config file < FLEETCACHE_* env < flags; secrets redacted)\n",
        );
        let mut section = "";
        for key in KEYS {
            let Some((table, name)) = key.path.rsplit_once('.') else {
                continue;
            };
            if table != section {
                let _ = write!(out, "\n[{table}]\n");
                section = table;
            }
            write_leaf(&mut out, name, self.leaf(key.path));
        }
        if self.origins.is_empty() {
            out.push_str("\n# No [[origin]] tables: origin mode is off.\n");
        }
        for origin in &self.origins {
            out.push_str("\n[[origin]]\n");
            for key in ORIGIN_KEYS {
                write_leaf(&mut out, key.name, origin_leaf(origin, key.name));
            }
        }
        out
    }

    fn leaf(&self, path: &str) -> Leaf {
        let text = |s: String| Leaf::Set(Value::String(s));
        let path_text = |p: &Path| text(p.to_string_lossy().into_owned());
        let int = |n: usize| Leaf::Set(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        let (http, admin, store, swarm) = (&self.http, &self.admin, &self.store, &self.swarm);
        let tls = &http.tls;
        let paths = |paths: &[std::path::PathBuf]| {
            Leaf::Set(Value::Array(
                paths
                    .iter()
                    .map(|p| Value::String(p.to_string_lossy().into_owned()))
                    .collect(),
            ))
        };
        match path {
            "http.listen" => text(http.listen.to_string()),
            "http.max_header_bytes" => text(http.max_header_bytes.to_string()),
            "http.max_headers" => int(http.max_headers),
            "http.header_read_timeout" => text(duration::format(http.header_read_timeout)),
            "http.idle_timeout" => text(duration::format(http.idle_timeout)),
            "http.max_connections" => int(http.max_connections),
            "http.plaintext" => Leaf::Set(Value::Boolean(http.plaintext)),
            "http.max_concurrent_streams" => {
                Leaf::Set(Value::Integer(http.max_concurrent_streams.into()))
            }
            "http.tls.listen" => text(tls.listen.to_string()),
            "http.tls.cert_file" => tls.cert_file.as_deref().map_or(Leaf::Unset, path_text),
            "http.tls.key_file" => tls.key_file.as_deref().map_or(Leaf::Unset, path_text),
            "http.tls.certificates" => paths(&tls.certificates),
            "http.tls.http3" => Leaf::Set(Value::Boolean(tls.http3)),
            "http.tls.http3_unvalidated_handshakes" => int(tls.http3_unvalidated_handshakes),
            "http.tls.http3_advertised_port" => {
                Leaf::Set(Value::Integer(tls.http3_advertised_port.into()))
            }
            "http.tls.reload_interval" => text(duration::format(tls.reload_interval)),
            "admin.listen" => text(admin.listen.to_string()),
            "admin.token" => match admin.token {
                Some(_) => Leaf::Secret,
                None => Leaf::Unset,
            },
            "admin.token_file" => admin.token_file.as_deref().map_or(Leaf::Unset, path_text),
            "admin.max_upload_size" => text(admin.max_upload_size.to_string()),
            "store.data_dir" => path_text(&store.data_dir),
            "store.capacity" => text(store.capacity.to_string()),
            "store.high_watermark" => Leaf::Set(Value::Float(store.high_watermark)),
            "store.low_watermark" => Leaf::Set(Value::Float(store.low_watermark)),
            "store.memory_cache" => text(store.memory_cache.to_string()),
            "swarm.listen" => text(swarm.listen.to_string()),
            "swarm.peers" => Leaf::Set(Value::Array(
                swarm.peers.iter().cloned().map(Value::String).collect(),
            )),
            "swarm.cert_dir" => swarm.cert_dir.as_deref().map_or(Leaf::Unset, path_text),
            "swarm.peer_timeout" => text(duration::format(swarm.peer_timeout)),
            "swarm.ping_interval" => text(duration::format(swarm.ping_interval)),
            "swarm.resolve_interval" => text(duration::format(swarm.resolve_interval)),
            "swarm.max_uploads" => int(swarm.max_uploads),
            "swarm.purge_retention" => text(duration::format(swarm.purge_retention)),
            "shutdown.grace_period" => text(duration::format(self.shutdown.grace_period)),
            "log.level" => text(self.log.level.clone()),
            "log.format" => text(self.log.format.to_string()),
            // The schema test below keeps this list and `KEYS` in step.
            _ => Leaf::Unset,
        }
    }
}

fn write_leaf(out: &mut String, name: &str, leaf: Leaf) {
    let _ = match leaf {
        Leaf::Set(value) => writeln!(out, "{name} = {value}"),
        Leaf::Unset => writeln!(out, "# {name}: not set"),
        Leaf::Secret => writeln!(
            out,
            "# {name} = \"{REDACTED}\" (set, but not printed; supply it again to use this file)"
        ),
    };
}

fn origin_leaf(origin: &OriginConfig, name: &str) -> Leaf {
    let text = |s: String| Leaf::Set(Value::String(s));
    match name {
        "url" => text(origin.url.as_str().to_owned()),
        "host" => origin.host.clone().map_or(Leaf::Unset, text),
        "ca_file" => origin
            .ca_file
            .as_deref()
            .map_or(Leaf::Unset, |p| text(p.to_string_lossy().into_owned())),
        "connect_timeout" => text(duration::format(origin.connect_timeout)),
        "first_byte_timeout" => text(duration::format(origin.first_byte_timeout)),
        "idle_timeout" => text(duration::format(origin.idle_timeout)),
        "max_object_size" => text(origin.max_object_size.to_string()),
        "max_fetches" => Leaf::Set(Value::Integer(
            i64::try_from(origin.max_fetches).unwrap_or(i64::MAX),
        )),
        "queue_timeout" => text(duration::format(origin.queue_timeout)),
        "default_ttl" => origin
            .default_ttl
            .map_or(Leaf::Unset, |ttl| text(duration::format(ttl))),
        "stale_if_error" => text(duration::format(origin.stale_if_error)),
        "forwarded" => Leaf::Set(Value::Boolean(origin.forwarded)),
        // The schema test below keeps this list and `ORIGIN_KEYS` in step.
        _ => Leaf::Unset,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::{ByteSize, Config, LogFormat, OriginConfig, Sources, load};

    fn reload(config: &Config) -> Config {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("printed.toml");
        std::fs::write(&file, config.to_toml()).unwrap();
        load(Sources {
            file: Some(&file),
            ..Sources::default()
        })
        .unwrap()
    }

    /// A config with every key away from its default, optional ones set.
    fn everything_changed() -> Config {
        let mut c = load(Sources::default()).unwrap();
        c.http.listen = "[::1]:9000".parse().unwrap();
        c.http.max_header_bytes = ByteSize(20_000);
        c.http.max_headers = 7;
        c.http.header_read_timeout = Duration::from_millis(1_500);
        c.http.idle_timeout = Duration::from_secs(5_400);
        c.http.max_connections = 3;
        c.http.plaintext = false;
        c.http.max_concurrent_streams = 7;
        c.http.tls.listen = "[::]:443".parse().unwrap();
        c.http.tls.cert_file = Some(PathBuf::from("/tls/chain.pem"));
        c.http.tls.key_file = Some(PathBuf::from("/tls/key.pem"));
        c.http.tls.certificates = vec![PathBuf::from("/tls/a.pem"), PathBuf::from("/tls/b,c.pem")];
        c.http.tls.http3 = false;
        c.http.tls.http3_unvalidated_handshakes = 0;
        c.http.tls.http3_advertised_port = 443;
        c.http.tls.reload_interval = Duration::ZERO;
        c.admin.listen = "0.0.0.0:9001".parse().unwrap();
        c.admin.token_file = Some(PathBuf::from("/run/secrets/tok en\"quoted\""));
        c.admin.max_upload_size = ByteSize(1_500_000_000);
        c.store.data_dir = PathBuf::from("/var/lib/fleetcache");
        c.store.capacity = ByteSize((3 << 30) + 1);
        c.store.high_watermark = 0.875;
        c.store.low_watermark = 0.1;
        c.store.memory_cache = ByteSize(0);
        c.swarm.listen = "10.0.0.1:7171".parse().unwrap();
        c.swarm.peers = vec!["a.example:7070".into(), "[fd00::2]:7070".into()];
        c.swarm.cert_dir = Some(PathBuf::from("/etc/fleetcache/certs"));
        c.shutdown.grace_period = Duration::ZERO;
        c.log.level = "fleetcache_gateway=debug,info".into();
        c.log.format = LogFormat::Json;
        c.origins = vec![
            OriginConfig {
                url: "HTTPS://Origin.Example:8443/".parse().unwrap(),
                host: Some("shop.example".into()),
                ca_file: Some(PathBuf::from("/etc/fc/origin ca.pem")),
                connect_timeout: Duration::from_millis(250),
                first_byte_timeout: Duration::from_secs(90),
                idle_timeout: Duration::from_secs(5),
                max_object_size: ByteSize(100 << 20),
                max_fetches: 1,
                queue_timeout: Duration::from_millis(1_500),
                default_ttl: Some(Duration::from_secs(300)),
                stale_if_error: Duration::from_secs(90),
                forwarded: false,
            },
            OriginConfig::new("http://[fd00::5]:8080".parse().unwrap()),
        ];
        c
    }

    #[test]
    fn every_key_renders() {
        let config = everything_changed();
        for key in crate::schema::KEYS.iter().filter(|key| !key.secret) {
            assert!(
                matches!(config.leaf(key.path), super::Leaf::Set(_)),
                "{} is not rendered",
                key.path
            );
        }
        for key in crate::schema::ORIGIN_KEYS {
            assert!(
                matches!(
                    super::origin_leaf(&config.origins[0], key.name),
                    super::Leaf::Set(_)
                ),
                "origin key {} is not rendered",
                key.name
            );
        }
    }

    #[test]
    fn defaults_round_trip() {
        let config = load(Sources::default()).unwrap();
        assert_eq!(reload(&config), config);
    }

    #[test]
    fn everything_round_trips() {
        let config = everything_changed();
        assert_eq!(reload(&config), config);
    }

    #[test]
    fn the_token_is_redacted_and_not_reloaded() {
        let mut config = load(Sources::default()).unwrap();
        config.admin.token = Some("hunter2-secret".into());
        let text = config.to_toml();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("# token = \"<redacted>\""), "{text}");
        let again = reload(&config);
        assert_eq!(again.admin.token, None);
        config.admin.token = None;
        assert_eq!(again, config);
    }

    #[test]
    fn output_looks_like_the_reference() {
        let text = load(Sources::default()).unwrap().to_toml();
        for line in [
            "[http]\nlisten = \"127.0.0.1:8080\"\nmax_header_bytes = \"16KiB\"",
            "header_read_timeout = \"10s\"",
            "# token_file: not set",
            "capacity = \"10GiB\"\nhigh_watermark = 0.95\nlow_watermark = 0.9\nmemory_cache = \"64MiB\"\n",
            "peers = []",
            "[log]\nlevel = \"info\"\nformat = \"text\"\n",
            "# No [[origin]] tables: origin mode is off.",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }

        let text = everything_changed().to_toml();
        for line in [
            "\n[[origin]]\nurl = \"HTTPS://Origin.Example:8443/\"\nhost = \"shop.example\"\n\
             ca_file = \"/etc/fc/origin ca.pem\"\nconnect_timeout = \"250ms\"\n",
            "default_ttl = \"5m\"\nstale_if_error = \"1m30s\"\nforwarded = false\n",
            "\n[[origin]]\nurl = \"http://[fd00::5]:8080\"\n# host: not set\n\
             # ca_file: not set\n",
            "max_object_size = \"1GiB\"\nmax_fetches = 256\nqueue_timeout = \"10s\"\n\
             # default_ttl: not set\nstale_if_error = \"1h\"\nforwarded = true\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("No [[origin]]"), "{text}");
    }
}
