//! Loading: built-in defaults, then the TOML file, then `LEADEX_*`
//! environment overrides, then validation of the config and of the
//! marketplace files it names.
//!
//! The core, [`load`], takes the environment as an argument and reads
//! nothing but the files it is given, so tests need no global state.
//!
//! Environment overrides are `LEADEX_<SECTION>__<KEY>=<value>`: the prefix
//! is removed, the rest is lower-cased and split on `__` into a key path
//! (`LEADEX_SERVER__LISTEN` is `server.listen`). Values are read as figment
//! reads environment values: `true`/`false` are booleans, digits are
//! numbers, `[a, b]` is an array, anything else is a string. A number given
//! for a string key (`LEADEX_STORAGE__PATH=2024`) is taken as the string.

use crate::error::ConfigError;
use crate::marketplace::{read_marketplace_files, MarketplaceFileSummary};
use crate::settings::{Config, Invalid};
use figment::error::{Actual, Kind};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use leadex_engine::spec::MarketplaceSpec;
use std::path::{Path, PathBuf};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "LEADEX_";

/// The first admin key of a new deployment (see the admin API). A secret,
/// not a config key: the loader skips it, so it is neither refused as an
/// unknown key nor copied into the config.
pub const ADMIN_KEY_ENV: &str = "LEADEX_ADMIN_KEY";

/// Separator between the parts of a key in an environment override's name.
pub const ENV_KEY_SEPARATOR: &str = "__";

/// A loaded, validated configuration and the marketplace it names.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration, with marketplace paths resolved.
    pub config: Config,
    /// Every seller, buyer and campaign of the marketplace files, in file
    /// order, validated.
    pub marketplace: MarketplaceSpec,
    /// What was read, for the startup log: the config file (or built-in
    /// defaults), the names (not the values) of the environment overrides,
    /// and each marketplace file with its record counts.
    pub source: String,
}

/// Loads and validates the configuration.
///
/// `config_path` is the TOML file (`None`: built-in defaults only). `env` is
/// the environment, as name/value pairs; names without the `LEADEX_` prefix
/// are ignored, so `std::env::vars()` can be passed as is. Marketplace paths
/// from the config file are relative to the file's directory; paths from an
/// environment override are relative to the working directory.
pub fn load(
    config_path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let file = config_path.map(ConfigFile::read).transpose()?;
    let mut overrides = parse_env(env)?;
    let (mut config, figment) = extract(file.as_ref(), &mut overrides)?;
    config.validate().map_err(|e| invalid_at(&figment, e))?;

    let base_dir = config_path.and_then(Path::parent).unwrap_or(Path::new(""));
    let files_from_file = file.is_some()
        && figment
            .find_metadata("marketplace.files")
            .is_some_and(|m| m.source.as_ref().is_some_and(|s| s.file_path().is_some()));
    if files_from_file {
        config.marketplace.files = config
            .marketplace
            .files
            .iter()
            .map(|p| resolve(base_dir, p))
            .collect();
    }
    let (marketplace, summaries) = read_marketplace_files(&config.marketplace.files)?;
    let source = describe_sources(config_path, &overrides, &summaries);
    Ok(Loaded {
        config,
        marketplace,
        source,
    })
}

/// [`load`] with the process's environment.
///
/// A `LEADEX_*` variable whose value is not UTF-8 is an error; variables
/// without the prefix are not looked at.
pub fn load_from_process_env(config_path: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        // Our names are ASCII: a name that is not UTF-8 is not ours.
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Env {
            name: name.to_owned(),
            message: "the value is not valid UTF-8".to_owned(),
        })?;
        vars.push((name.to_owned(), value));
    }
    load(config_path, vars)
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// The config file, read once; figment sees it through [`Provider`] so that
/// errors can say which file a value came from.
struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Parse here too, to report syntax errors with the file's path
        // rather than as figment's "TOML source string".
        toml::from_str::<toml::Table>(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
        })
    }
}

impl Provider for ConfigFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("config file", Source::File(self.path.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict =
            toml::from_str(&self.text).map_err(|e| figment::Error::from(e.to_string()))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// One `LEADEX_*` variable. Each is its own provider, so an error names the
/// exact variable (figment's own `Env` names only the key).
#[derive(Debug, Clone)]
struct EnvOverride {
    name: String,
    key: Vec<String>,
    raw: String,
    value: Value,
}

impl Provider for EnvOverride {
    fn metadata(&self) -> Metadata {
        Metadata::from("environment variable", Source::Custom(self.name.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        let (last, parents) = self
            .key
            .split_last()
            .expect("invariant: an override key has at least one part");
        dict.insert(last.clone(), self.value.clone());
        for part in parents.iter().rev() {
            let mut outer = Dict::new();
            outer.insert(part.clone(), Value::from(dict));
            dict = outer;
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn parse_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut overrides = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if name == ADMIN_KEY_ENV {
            continue;
        }
        let key: Vec<String> = rest
            .split(ENV_KEY_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        let well_formed = key.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if !well_formed {
            return Err(ConfigError::Env {
                name,
                message: format!(
                    "expected {ENV_PREFIX}<SECTION>{ENV_KEY_SEPARATOR}<KEY> with letters, digits and '_', \
                     e.g. LEADEX_SERVER__LISTEN"
                ),
            });
        }
        let value = raw
            .parse::<Value>()
            .expect("invariant: figment's value parser is infallible");
        overrides.push(EnvOverride {
            name,
            key,
            raw,
            value,
        });
    }
    // Sorted so the startup log is stable; the sort is stable, so of two
    // entries with the same name the later one still wins.
    overrides.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(overrides)
}

fn figment(file: Option<&ConfigFile>, overrides: &[EnvOverride]) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(file);
    }
    for o in overrides {
        figment = figment.merge(o);
    }
    figment
}

/// Deserialises [`Config`]. When an override such as `LEADEX_LOG__LEVEL=12`
/// was read as a number but the key wants a string, that override is taken
/// as its raw text and extraction is tried again: at most once per override,
/// so the loop is bounded.
fn extract(
    file: Option<&ConfigFile>,
    overrides: &mut [EnvOverride],
) -> Result<(Config, Figment), ConfigError> {
    let mut retries_left = overrides.len();
    loop {
        let figment = figment(file, overrides);
        let error = match figment.extract::<Config>() {
            Ok(config) => return Ok((config, figment)),
            Err(e) => e
                .into_iter()
                .next()
                .expect("invariant: a figment error holds at least one error"),
        };
        let wants_string = matches!(
            &error.kind,
            Kind::InvalidType(Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) | Actual::Bool(_), expected)
                if expected.contains("string")
        );
        if wants_string && retries_left > 0 {
            let key = error.path.join(".");
            if let Some(o) = overrides.iter_mut().rev().find(|o| o.key.join(".") == key) {
                if !matches!(o.value, Value::String(..)) {
                    o.value = Value::from(o.raw.clone());
                    retries_left -= 1;
                    continue;
                }
            }
        }
        return Err(invalid_from_figment(&figment, error));
    }
}

fn invalid_from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
    let mut path = error.path.clone();
    let message = match &error.kind {
        Kind::UnknownField(field, expected) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            format!("unknown key (expected one of: {})", expected.join(", "))
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            "is required".to_owned()
        }
        Kind::UnknownVariant(value, expected) => {
            format!(
                "unknown value {value:?} (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("found {actual}, expected {expected}")
        }
        Kind::Message(message) => message.clone(),
        other => other.to_string(),
    };
    let key = path.join(".");
    let origin =
        origin_of(figment, &key).or_else(|| error.metadata.as_ref().map(describe_metadata));
    ConfigError::Invalid {
        key,
        message,
        origin,
        source: Some(Box::new(error)),
    }
}

fn invalid_at(figment: &Figment, invalid: Invalid) -> ConfigError {
    let origin = origin_of(figment, &invalid.key);
    ConfigError::Invalid {
        key: invalid.key,
        message: invalid.message,
        origin,
        source: None,
    }
}

/// Where the value at `key` came from (file path or variable name); for a
/// key such as `marketplace.files[2]`, the origin of `marketplace.files`.
/// `None` for a built-in default.
fn origin_of(figment: &Figment, key: &str) -> Option<String> {
    let key = key.split('[').next().unwrap_or(key);
    figment.find_metadata(key).map(describe_metadata)
}

fn describe_metadata(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(Source::File(path)) => path.display().to_string(),
        Some(Source::Custom(name)) => name.clone(),
        _ => metadata.name.to_string(),
    }
}

fn describe_sources(
    config_path: Option<&Path>,
    overrides: &[EnvOverride],
    files: &[MarketplaceFileSummary],
) -> String {
    let mut out = match config_path {
        Some(p) => format!("config file {}", p.display()),
        None => "built-in defaults (no config file)".to_owned(),
    };
    if overrides.is_empty() {
        out.push_str("; no environment overrides");
    } else {
        let names: Vec<&str> = overrides.iter().map(|o| o.name.as_str()).collect();
        out.push_str(&format!("; environment overrides: {}", names.join(", ")));
    }
    if files.is_empty() {
        out.push_str("; empty marketplace");
    } else {
        let listed: Vec<String> = files
            .iter()
            .map(|f| {
                format!(
                    "{} ({} sellers, {} buyers, {} campaigns)",
                    f.path.display(),
                    f.sellers,
                    f.buyers,
                    f.campaigns
                )
            })
            .collect();
        out.push_str(&format!("; marketplace: {}", listed.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{FsyncMode, LogFormat};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn err_text(r: Result<Loaded, ConfigError>) -> String {
        match r {
            Ok(l) => panic!("accepted: {:?}", l.config),
            Err(e) => e.to_string(),
        }
    }

    const ONE_CAMPAIGN: &str = r#"
[[sellers]]
id = "s1"
api_key_sha256 = []

[[buyers]]
id = "b1"

[[campaigns]]
id = "c1"
buyer_id = "b1"
vertical = "auto"
sale_type = "exclusive"
price_cents = 1500
budget_cents = 100000
"#;

    #[test]
    fn no_file_and_no_env_gives_defaults_and_an_empty_marketplace() {
        let loaded = load(None, Vec::new()).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.marketplace, MarketplaceSpec::default());
        assert!(
            loaded.source.contains("built-in defaults"),
            "{}",
            loaded.source
        );
    }

    #[test]
    fn env_overrides_every_documented_example_and_ignores_other_variables() {
        let loaded = load(
            None,
            env(&[
                ("LEADEX_SERVER__LISTEN", "0.0.0.0:9000"),
                ("LEADEX_ADMIN_KEY", "not-a-config-key"),
                ("LEADEX_STORAGE__PATH", "/var/lib/leadex"),
                ("LEADEX_ENGINE__PRICE_LOCK_MS", "30000"),
                ("LEADEX_LOG__LEVEL", "debug"),
                ("LEADEX_STORAGE__FSYNC", "never"),
                ("LEADEX_LOG__FORMAT", "json"),
                ("HOME", "/root"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.storage.path, PathBuf::from("/var/lib/leadex"));
        assert_eq!(c.engine.price_lock_ms, 30_000);
        assert_eq!(c.log.level, "debug");
        assert_eq!(c.storage.fsync, FsyncMode::Never);
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(
            loaded.source.contains("LEADEX_SERVER__LISTEN"),
            "{}",
            loaded.source
        );
        assert!(
            !loaded.source.contains("0.0.0.0"),
            "values stay out of the log: {}",
            loaded.source
        );
    }

    #[test]
    fn env_values_that_look_like_numbers_or_lists_still_fit_string_keys() {
        let loaded = load(
            None,
            env(&[
                ("LEADEX_STORAGE__PATH", "2024"),
                ("LEADEX_LOG__LEVEL", "warn,leadex=debug,hyper=info"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.storage.path, PathBuf::from("2024"));
        assert_eq!(loaded.config.log.level, "warn,leadex=debug,hyper=info");
        // Still a type error where a number is wanted.
        let text = err_text(load(None, env(&[("LEADEX_ENGINE__PRICE_LOCK_MS", "1.5")])));
        assert!(
            text.contains("engine.price_lock_ms") && text.contains("LEADEX_ENGINE__PRICE_LOCK_MS"),
            "{text}"
        );
    }

    #[test]
    fn env_overrides_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "leadex.toml",
            "[server]\nlisten = \"127.0.0.1:7000\"\nmax_connections = 50\n[log]\nlevel = \"warn\"\n",
        );
        let loaded = load(
            Some(&path),
            env(&[("LEADEX_SERVER__LISTEN", "127.0.0.1:7001")]),
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.server.listen.port(), 7001, "env beats file");
        assert_eq!(c.server.max_connections, 50, "file beats default");
        assert_eq!(c.log.level, "warn");
        assert_eq!(
            c.server.request_timeout_ms, 10_000,
            "default where neither says"
        );
    }

    #[test]
    fn a_bad_listen_address_is_refused_naming_key_value_and_variable() {
        let text = err_text(load(None, env(&[("LEADEX_SERVER__LISTEN", "abc")])));
        assert!(
            text.starts_with("invalid config: server.listen: \"abc\" is not an address"),
            "{text}"
        );
        assert!(text.ends_with("(from LEADEX_SERVER__LISTEN)"), "{text}");

        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "leadex.toml",
            "[server]\nlisten = \"localhost\"\n",
        );
        let text = err_text(load(Some(&path), Vec::new()));
        assert!(
            text.contains("server.listen: \"localhost\" is not an address"),
            "{text}"
        );
        assert!(
            text.contains(&path.display().to_string()),
            "names the file: {text}"
        );
    }

    #[test]
    fn body_limit_over_the_protocol_limit_is_refused() {
        let text = err_text(load(
            None,
            env(&[("LEADEX_SERVER__BODY_LIMIT_BYTES", "65537")]),
        ));
        assert_eq!(
            text,
            "invalid config: server.body_limit_bytes: must be between 1 and 65536 (is 65537) \
             (from LEADEX_SERVER__BODY_LIMIT_BYTES)"
        );
        assert!(load(None, env(&[("LEADEX_SERVER__BODY_LIMIT_BYTES", "65536")])).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_in_the_file_and_in_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "leadex.toml",
            "[server]\nlisen = \"127.0.0.1:1\"\n",
        );
        let text = err_text(load(Some(&path), Vec::new()));
        assert!(
            text.starts_with("invalid config: server.lisen: unknown key (expected one of: listen,"),
            "{text}"
        );
        assert!(text.contains(&path.display().to_string()), "{text}");

        let path = write(
            dir.path(),
            "top.toml",
            "[serverr]\nlisten = \"127.0.0.1:1\"\n",
        );
        let text = err_text(load(Some(&path), Vec::new()));
        assert!(
            text.contains("invalid config: serverr: unknown key"),
            "{text}"
        );

        let text = err_text(load(None, env(&[("LEADEX_FOO__BAR", "1")])));
        assert!(
            text.starts_with("invalid config: foo: unknown key"),
            "{text}"
        );
        assert!(text.ends_with("(from LEADEX_FOO__BAR)"), "{text}");

        let text = err_text(load(None, env(&[("LEADEX_SERVER__LISNT", "1")])));
        assert!(
            text.contains("server.lisnt: unknown key") && text.contains("LEADEX_SERVER__LISNT"),
            "{text}"
        );

        // A single underscore is not a separator: this is key `server_listen`.
        let text = err_text(load(None, env(&[("LEADEX_SERVER_LISTEN", "127.0.0.1:1")])));
        assert!(text.contains("server_listen: unknown key"), "{text}");

        for bad in [
            "LEADEX_SERVER__",
            "LEADEX_",
            "LEADEX_SERVER____LISTEN",
            "LEADEX_SERVER__LIS-TEN",
        ] {
            let text = err_text(load(None, env(&[(bad, "1")])));
            assert!(
                text.starts_with(&format!("invalid environment override {bad}:")),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_storage_backend_is_refused_naming_storage_backend() {
        let text = err_text(load(None, env(&[("LEADEX_STORAGE__BACKEND", "s3")])));
        assert!(
            text.starts_with("invalid config: storage.backend: unknown value \"s3\""),
            "{text}"
        );
        assert!(text.contains("file"), "lists what is accepted: {text}");
        let loaded = load(None, env(&[("LEADEX_STORAGE__BACKEND", "file")])).unwrap();
        assert_eq!(
            loaded.config.storage.backend,
            crate::settings::StorageBackend::File
        );
    }

    #[test]
    fn bad_engine_settings_are_refused_with_their_key() {
        let text = err_text(load(None, env(&[("LEADEX_ENGINE__PRICE_LOCK_MS", "10")])));
        assert_eq!(
            text,
            "invalid config: engine.price_lock_ms: must be between 1000 and 3600000 \
             (from LEADEX_ENGINE__PRICE_LOCK_MS)"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "leadex.toml",
            "[engine]\nmax_shared_buyers = 9\n",
        );
        let text = err_text(load(Some(&path), Vec::new()));
        assert!(
            text.starts_with("invalid config: engine.max_shared_buyers: must be between 1 and 8"),
            "{text}"
        );
        let path = write(dir.path(), "typo.toml", "[engine]\nprice_lock = 9\n");
        let text = err_text(load(Some(&path), Vec::new()));
        assert!(text.contains("engine.price_lock: unknown key"), "{text}");
    }

    #[test]
    fn other_bad_values_are_refused_with_their_key() {
        let cases = [
            (
                "LEADEX_STORAGE__SEGMENT_BYTES",
                "1000",
                "storage.segment_bytes: must be between 1048576",
            ),
            (
                "LEADEX_STORAGE__FSYNC",
                "sometimes",
                "storage.fsync: unknown value \"sometimes\"",
            ),
            ("LEADEX_LOG__LEVEL", "\"\"", "log.level: must not be empty"),
            (
                "LEADEX_LOG__FORMAT",
                "xml",
                "log.format: unknown value \"xml\"",
            ),
            (
                "LEADEX_SERVER__MAX_CONNECTIONS",
                "-1",
                "server.max_connections: found signed int `-1`",
            ),
            (
                "LEADEX_SERVER__REQUEST_TIMEOUT_MS",
                "0",
                "server.request_timeout_ms: must be between 1",
            ),
        ];
        for (name, value, expected) in cases {
            let text = err_text(load(None, env(&[(name, value)])));
            assert!(text.contains(expected), "{name}={value}: {text}");
            assert!(text.contains(&format!("(from {name})")), "{text}");
        }
    }

    #[test]
    fn file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let text = err_text(load(Some(&missing), Vec::new()));
        assert!(
            text.starts_with(&format!("cannot read {}", missing.display())),
            "{text}"
        );

        let broken = write(dir.path(), "broken.toml", "[server\nlisten = 1\n");
        let text = err_text(load(Some(&broken), Vec::new()));
        assert!(text.starts_with(&broken.display().to_string()), "{text}");

        let config = write(
            dir.path(),
            "leadex.toml",
            "[marketplace]\nfiles = [\"gone.toml\"]\n",
        );
        let text = err_text(load(Some(&config), Vec::new()));
        assert!(
            text.contains(&dir.path().join("gone.toml").display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn relative_marketplace_paths_resolve_against_the_config_file_directory() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "conf/markets/one.toml", ONE_CAMPAIGN);
        let config = write(
            dir.path(),
            "conf/leadex.toml",
            "[marketplace]\nfiles = [\"markets/one.toml\"]\n",
        );
        // The working directory is the crate's, not `dir`: only resolution
        // against the config file's directory can find the file.
        let loaded = load(Some(&config), Vec::new()).unwrap();
        assert_eq!(loaded.marketplace.campaigns.len(), 1);
        assert_eq!(
            loaded.config.marketplace.files,
            vec![dir.path().join("conf/markets/one.toml")]
        );
        assert!(loaded.source.contains("1 campaigns"), "{}", loaded.source);

        // From the environment, relative paths are the working directory's.
        let absolute = dir.path().join("conf/markets/one.toml");
        let loaded = load(
            Some(&config),
            env(&[(
                "LEADEX_MARKETPLACE__FILES",
                &format!("[{:?}]", absolute.display().to_string()),
            )]),
        )
        .unwrap();
        assert_eq!(loaded.config.marketplace.files, vec![absolute]);
    }

    #[test]
    fn several_marketplace_files_are_concatenated_then_validated() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            "[[sellers]]\nid = \"s1\"\napi_key_sha256 = []\n\n[[buyers]]\nid = \"b1\"\n",
        );
        write(
            dir.path(),
            "b.toml",
            "[[campaigns]]\nid = \"c1\"\nbuyer_id = \"b1\"\nvertical = \"home\"\nsale_type = \"shared\"\n\
             price_cents = 900\nbudget_cents = 10000\n",
        );
        let config = write(
            dir.path(),
            "leadex.toml",
            "[marketplace]\nfiles = [\"a.toml\", \"b.toml\"]\n",
        );
        let loaded = load(Some(&config), Vec::new()).unwrap();
        assert_eq!(loaded.marketplace.sellers.len(), 1);
        assert_eq!(
            loaded.marketplace.campaigns[0].buyer_id, "b1",
            "a campaign may name a buyer of another file"
        );
    }

    #[test]
    fn a_bad_time_zone_in_a_marketplace_file_names_the_file_and_the_campaign() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "market/first.toml", ONE_CAMPAIGN);
        let second = ONE_CAMPAIGN
            .replace("[[sellers]]\nid = \"s1\"\napi_key_sha256 = []\n", "")
            .replace("[[buyers]]\nid = \"b1\"\n", "")
            .replace("id = \"c1\"", "id = \"c2\"");
        let bad = format!("{second}\n{}", second.replace("\"c2\"", "\"c3\"")).replace(
            "id = \"c3\"\nbuyer_id = \"b1\"",
            "id = \"c3\"\nbuyer_id = \"b1\"\ntime_zone = \"Mars/Olympus_Mons\"",
        );
        let bad_path = write(dir.path(), "market/second.toml", &bad);
        let config = write(
            dir.path(),
            "leadex.toml",
            "[marketplace]\nfiles = [\"market/first.toml\", \"market/second.toml\"]\n",
        );
        let text = err_text(load(Some(&config), Vec::new()));
        // c3 is the third campaign overall but the second of its file.
        assert_eq!(
            text,
            format!(
                "{}: campaigns[1].time_zone: is not an IANA time zone name",
                bad_path.display()
            )
        );
    }

    #[test]
    fn the_shipped_config_and_demo_marketplace_load_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = load(Some(&dir.join("leadex.toml")), Vec::new()).unwrap();
        let c = &loaded.config;
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage.path, PathBuf::from("data"));
        assert_eq!(c.storage.fsync, FsyncMode::Always);
        assert_eq!(c.marketplace.files, vec![dir.join("marketplace/demo.toml")]);
        // The file spells out the defaults; only the marketplace differs.
        let mut expected = Config::default();
        expected.marketplace.files.clone_from(&c.marketplace.files);
        assert_eq!(
            *c, expected,
            "config/leadex.toml drifted from the documented defaults"
        );
        assert!(loaded.marketplace.campaigns.len() >= 150);
        assert!(loaded
            .marketplace
            .sellers
            .iter()
            .any(|s| s.id == crate::synth::DEMO_SELLER_ID));
        assert!(
            loaded.source.contains("demo.toml (4 sellers"),
            "{}",
            loaded.source
        );
    }

    #[test]
    fn marketplace_shape_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let market = write(
            dir.path(),
            "m.toml",
            &ONE_CAMPAIGN.replace("price_cents", "prise_cents"),
        );
        let config = write(
            dir.path(),
            "leadex.toml",
            "[marketplace]\nfiles = [\"m.toml\"]\n",
        );
        let text = err_text(load(Some(&config), Vec::new()));
        assert!(text.starts_with(&market.display().to_string()), "{text}");
        assert!(text.contains("prise_cents"), "{text}");
    }
}
