//! The loader harness both test modules use: a config file in a temp dir,
//! env and flags, loaded and checked to fail on a named field.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::types::Config;
use crate::{Sources, load};

/// A config file in a temp dir that lives as long as the value.
pub(crate) struct Case {
    pub(crate) dir: tempfile::TempDir,
    file: Option<PathBuf>,
    env: Vec<(String, String)>,
    flags: Vec<(&'static str, String)>,
}

impl Case {
    pub(crate) fn new() -> Case {
        Case {
            dir: tempfile::TempDir::new().unwrap(),
            file: None,
            env: vec![],
            flags: vec![],
        }
    }

    pub(crate) fn file(mut self, text: &str) -> Case {
        let path = self.dir.path().join("fleetcache.toml");
        std::fs::write(&path, text).unwrap();
        self.file = Some(path);
        self
    }

    pub(crate) fn env(mut self, name: &str, value: &str) -> Case {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn flag(mut self, key: &'static str, value: &str) -> Case {
        self.flags.push((key, value.to_owned()));
        self
    }

    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        load(Sources {
            file: self.file.as_deref(),
            env: self.env.clone(),
            flags: self.flags.clone(),
        })
    }

    pub(crate) fn file_name(&self) -> String {
        self.file.as_ref().unwrap().display().to_string()
    }

    /// The error, checked to name `field`; returns its message.
    pub(crate) fn fails_on(&self, field: &str) -> String {
        let err = self.load().unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("invalid config: "), "{text}");
        assert!(text.contains(field), "{text}");
        text
    }
}

impl Case {
    /// The error, checked to name `field` first and to say the value came
    /// from `source`; returns its message.
    pub(crate) fn fails_on_from(&self, field: &str, source: &str) -> String {
        let text = self.fails_on(field);
        assert!(
            text.starts_with(&format!("invalid config: {field}")),
            "{text}"
        );
        assert!(text.contains(source), "{text}");
        text
    }

    /// `(from file PATH)`, as errors name the file.
    pub(crate) fn file_source(&self) -> String {
        format!("(from file {})", self.file_name())
    }
}
