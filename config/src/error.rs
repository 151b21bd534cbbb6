//! The one error type of this crate. Every variant's message names the file
//! or the key at fault, so the binary can print it as is and exit.

use leadex_engine::spec::SpecError;
use std::path::PathBuf;

/// Why a configuration or a marketplace could not be loaded.
///
/// The `Display` of each variant is complete on its own (it repeats its
/// cause), because the binary prints it in one line before exiting; the
/// cause is also kept as [`std::error::Error::source`] for programs that
/// want it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML, or a marketplace file does not have the
    /// shape of a marketplace (unknown key, wrong type).
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// A configuration key is unknown or has a bad value.
    #[error("invalid config: {key}: {message}{}", from_suffix(origin.as_deref()))]
    Invalid {
        /// Dotted key, e.g. `server.listen`.
        key: String,
        /// What is wrong with it.
        message: String,
        /// Where the value came from: the config file's path or the
        /// environment variable's name, when known.
        origin: Option<String>,
        /// The deserialisation error, when the problem was found while
        /// reading rather than while checking ranges.
        #[source]
        source: Option<Box<figment::Error>>,
    },
    /// A `LEADEX_*` environment variable cannot be turned into a key.
    #[error("invalid environment override {name}: {message}")]
    Env {
        /// The variable's name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A marketplace record is invalid. The key in `source` is relative to
    /// `path` (`campaigns[3]` is the fourth campaign of that file).
    #[error("{}: {source}", path.display())]
    Marketplace {
        /// The marketplace file holding the record.
        path: PathBuf,
        /// The key and the problem.
        #[source]
        source: SpecError,
    },
}

fn from_suffix(origin: Option<&str>) -> String {
    origin.map(|o| format!(" (from {o})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_key_and_origin() {
        let e = ConfigError::Invalid {
            key: "server.listen".into(),
            message: "\"abc\" is not an address".into(),
            origin: Some("LEADEX_SERVER__LISTEN".into()),
            source: None,
        };
        assert_eq!(
            e.to_string(),
            "invalid config: server.listen: \"abc\" is not an address (from LEADEX_SERVER__LISTEN)"
        );
        let e = ConfigError::Marketplace {
            path: "config/marketplace/demo.toml".into(),
            source: SpecError {
                path: "campaigns[3].caps.daily.leads".into(),
                message: "must be at least 1".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "config/marketplace/demo.toml: campaigns[3].caps.daily.leads: must be at least 1"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
