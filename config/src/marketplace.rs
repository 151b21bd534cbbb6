//! Marketplace files: TOML with `[[sellers]]`, `[[buyers]]` and
//! `[[campaigns]]` (the serde shape of [`MarketplaceSpec`]). Several files
//! are concatenated, in order, and validated together, so a campaign may
//! name a buyer declared in another file; an error names the file and the
//! record's index within that file.

use crate::error::ConfigError;
use leadex_engine::spec::{MarketplaceSpec, SpecError};
use std::path::{Path, PathBuf};

/// What one marketplace file contributed, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarketplaceFileSummary {
    pub(crate) path: PathBuf,
    pub(crate) sellers: usize,
    pub(crate) buyers: usize,
    pub(crate) campaigns: usize,
}

/// Reads, concatenates and validates marketplace files, in order. Paths
/// are used as given (relative to the working directory).
pub fn read_marketplace<P: AsRef<Path>>(files: &[P]) -> Result<MarketplaceSpec, ConfigError> {
    let files: Vec<PathBuf> = files.iter().map(|p| p.as_ref().to_path_buf()).collect();
    read_marketplace_files(&files).map(|(market, _)| market)
}

pub(crate) fn read_marketplace_files(
    files: &[PathBuf],
) -> Result<(MarketplaceSpec, Vec<MarketplaceFileSummary>), ConfigError> {
    let mut market = MarketplaceSpec::default();
    let mut summaries = Vec::with_capacity(files.len());
    for path in files {
        let part = read_one(path)?;
        summaries.push(MarketplaceFileSummary {
            path: path.clone(),
            sellers: part.sellers.len(),
            buyers: part.buyers.len(),
            campaigns: part.campaigns.len(),
        });
        market.sellers.extend(part.sellers);
        market.buyers.extend(part.buyers);
        market.campaigns.extend(part.campaigns);
    }
    market.validate().map_err(|e| locate(e, &summaries))?;
    Ok((market, summaries))
}

fn read_one(path: &Path) -> Result<MarketplaceSpec, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Turns an error about the concatenated marketplace (`campaigns[205]...`)
/// into one about the file that holds the record (`b.toml: campaigns[5]...`).
fn locate(error: SpecError, files: &[MarketplaceFileSummary]) -> ConfigError {
    let fallback_path = files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_else(|| PathBuf::from("marketplace"));
    let Some((list, index, rest)) = split_record_path(&error.path) else {
        return ConfigError::Marketplace {
            path: fallback_path,
            source: error,
        };
    };
    let mut offset = 0;
    for file in files {
        let count = match list {
            "sellers" => file.sellers,
            "buyers" => file.buyers,
            _ => file.campaigns,
        };
        if index < offset + count {
            let path = format!("{list}[{}]{rest}", index - offset);
            return ConfigError::Marketplace {
                path: file.path.clone(),
                source: SpecError {
                    path,
                    message: error.message,
                },
            };
        }
        offset += count;
    }
    ConfigError::Marketplace {
        path: fallback_path,
        source: error,
    }
}

/// `campaigns[12].caps.daily` → `("campaigns", 12, ".caps.daily")`.
fn split_record_path(path: &str) -> Option<(&str, usize, &str)> {
    let (list, after) = path.split_once('[')?;
    if !matches!(list, "sellers" | "buyers" | "campaigns") {
        return None;
    }
    let (index, rest) = after.split_once(']')?;
    Some((list, index.parse().ok()?, rest))
}

/// Keys of a campaign (or of its nested tables) whose default is what
/// an omitted key means, so writing them adds only noise.
const DEFAULT_CAMPAIGN_LINES: &[&str] = &[
    "status = \"active\"",
    "dedupe_scope = \"buyer\"",
    "require_tcpa = false",
    "require_trustedform = false",
    "require_jornaya = false",
    "priority = 0",
    "adjust_bps = 0",
    "adjust_cents = 0",
];

/// Writes a marketplace as TOML that reads back to the same value, leaving
/// out what is implied by defaults inside campaigns (empty lists, empty
/// tables, `require_tcpa = false`, ...), so a file of hundreds of campaigns
/// stays readable.
///
/// Only lines inside `[[campaigns]]` are left out, and only
/// `[table]` headers (never `[[array]]` headers, which create an element)
/// are dropped when empty: for sellers, `api_key_sha256 = []` is required
/// and `active = false` is not a default.
pub fn marketplace_to_toml(market: &MarketplaceSpec) -> Result<String, toml::ser::Error> {
    let full = toml::to_string(market)?;
    let mut kept: Vec<&str> = Vec::new();
    let mut in_campaign = false;
    for line in full.lines() {
        if line.starts_with('[') {
            in_campaign = line.starts_with("[[campaigns") || line.starts_with("[campaigns.");
        } else if in_campaign && (line.ends_with(" = []") || DEFAULT_CAMPAIGN_LINES.contains(&line))
        {
            continue;
        }
        kept.push(line);
    }
    let mut out = String::with_capacity(full.len());
    for (i, line) in kept.iter().enumerate() {
        let is_table_header = line.starts_with('[') && !line.starts_with("[[");
        if is_table_header {
            let next_content = kept[i + 1..].iter().find(|l| !l.is_empty());
            if next_content.is_none_or(|l| l.starts_with('[')) {
                continue;
            }
        }
        // Two blank lines in a row appear where a header was dropped.
        if line.is_empty() && out.ends_with("\n\n") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadex_engine::lead::{SaleType, UsState};
    use leadex_engine::spec::{CapLimit, PriceModifier, ScheduleWindow, Weekday};
    use leadex_engine::testing;

    #[test]
    fn compact_toml_reads_back_to_the_same_marketplace() {
        let mut a = testing::campaign("a", "b1", SaleType::Exclusive, 1500);
        a.filters.states = vec![UsState::parse("CA").unwrap()];
        a.caps.daily = CapLimit {
            leads: Some(10),
            spend_cents: None,
        };
        // A modifier whose every field is a default must survive as an element.
        a.modifiers = vec![
            PriceModifier::default(),
            PriceModifier {
                adjust_bps: 500,
                ..Default::default()
            },
        ];
        a.schedule = vec![ScheduleWindow {
            days: vec![Weekday::Mon],
            from_hour: 9,
            to_hour: 17,
        }];
        a.require_jornaya = true;
        let b = testing::campaign("b", "b1", SaleType::Shared, 700);
        let mut market = testing::market(&["b1"], vec![a, b]);
        market.sellers.push(testing::seller("no-keys"));
        market.sellers[1].active = false;

        let text = marketplace_to_toml(&market).unwrap();
        let back: MarketplaceSpec = toml::from_str(&text).unwrap();
        assert_eq!(back, market, "{text}");
        assert!(!text.contains("require_tcpa"), "{text}");
        assert!(!text.contains("exclude_zips"), "{text}");
        assert!(
            text.contains("api_key_sha256 = []"),
            "required seller key kept: {text}"
        );
        assert!(
            text.contains("active = false"),
            "non-default seller flag kept: {text}"
        );
        assert!(!text.contains("\n\n\n"), "{text}");
    }

    #[test]
    fn record_paths_split() {
        assert_eq!(
            split_record_path("campaigns[12].caps"),
            Some(("campaigns", 12, ".caps"))
        );
        assert_eq!(
            split_record_path("sellers[0].id"),
            Some(("sellers", 0, ".id"))
        );
        assert_eq!(split_record_path("engine.x"), None);
    }
}
