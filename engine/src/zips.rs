//! US ZIP centroids and great-circle distance, for routing leads to agents
//! by distance.
//!
//! The table is `engine/data/zip_centroids.bin`, embedded at compile time (no
//! runtime download, no file to ship): one point per Census ZIP Code
//! Tabulation Area (ZCTA), its internal point from the Census Bureau's 2021
//! ZCTA Gazetteer, in microdegrees. Public domain; provenance, byte layout and
//! how to rebuild it are in `engine/data/README.md`
//! (`scripts/gen-zip-centroids`).
//!
//! A ZCTA is not quite a ZIP: ZIPs that serve only PO boxes, single firms or
//! military mail have no ZCTA (about 7,700 of the ~41,000 ZIPs), so
//! [`ZipCentroids::centroid`] answers `None` for them.
//! [`ZipCentroids::centroid_or_prefix`] then falls back to the mean point of
//! the ZCTAs that share the ZIP's three-digit prefix (its sectional center),
//! which is tens of kilometres off at worst in dense areas and more in rural
//! ones.
//!
//! The table holds no state: a Census ZCTA has none. The state of a ZIP stays
//! [`crate::geo::state_of_zip`], one rule for the whole engine.
//!
//! Lookups are a binary search over a sorted array of ZIP values: O(log n),
//! no allocation, no lock. The table is decoded once, on first use
//! ([`ZipCentroids::embedded`]), in well under a millisecond.

use std::sync::OnceLock;

use crate::lead::Zip;

/// The embedded table; see the module docs and `engine/data/README.md`.
static EMBEDDED: &[u8] = include_bytes!("../data/zip_centroids.bin");

const MAGIC: &[u8; 4] = b"LXZC";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 16;
const RECORD_LEN: usize = 12;
const PREFIXES: usize = 1000;

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Metres in an international mile.
const METRES_PER_MILE: f64 = 1_609.344;

/// A point on Earth in integer microdegrees (1e-6 degree, about 0.11 m of
/// latitude): exact for the Census figures, which have six decimals, and
/// `Eq`/`Ord`-friendly for deterministic ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LatLon {
    /// Latitude, microdegrees, `-90_000_000..=90_000_000`.
    pub lat_e6: i32,
    /// Longitude, microdegrees, `-180_000_000..=180_000_000`.
    pub lon_e6: i32,
}

impl LatLon {
    /// A point from microdegrees, if both are in range.
    pub fn new(lat_e6: i32, lon_e6: i32) -> Option<LatLon> {
        ((-90_000_000..=90_000_000).contains(&lat_e6)
            && (-180_000_000..=180_000_000).contains(&lon_e6))
        .then_some(LatLon { lat_e6, lon_e6 })
    }

    /// A point from decimal degrees, rounded to the microdegree, if in range.
    pub fn from_degrees(lat: f64, lon: f64) -> Option<LatLon> {
        if !(lat.is_finite() && lon.is_finite()) {
            return None;
        }
        let (lat, lon) = ((lat * 1e6).round(), (lon * 1e6).round());
        if lat.abs() > 90e6 || lon.abs() > 180e6 {
            return None;
        }
        LatLon::new(lat as i32, lon as i32)
    }

    /// Latitude in degrees.
    pub fn lat(self) -> f64 {
        f64::from(self.lat_e6) / 1e6
    }

    /// Longitude in degrees.
    pub fn lon(self) -> f64 {
        f64::from(self.lon_e6) / 1e6
    }
}

/// Great-circle (haversine) distance in metres, rounded; on a sphere of the
/// mean Earth radius, so within about 0.5 % of the ellipsoidal distance.
/// Fits a `u32` (half the circumference is about 20,015 km). Deterministic for
/// a given build and platform (it uses `f64` `sin`/`cos`/`asin`).
pub fn distance_m(a: LatLon, b: LatLon) -> u32 {
    let (la1, la2) = (a.lat().to_radians(), b.lat().to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon() - a.lon()).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    let d = 2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin();
    d.round() as u32
}

/// [`distance_m`] in international miles, rounded.
pub fn distance_miles(a: LatLon, b: LatLon) -> u32 {
    (f64::from(distance_m(a, b)) / METRES_PER_MILE).round() as u32
}

/// How a centroid was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The ZIP is a ZCTA: its own internal point.
    Zcta,
    /// The ZIP has no ZCTA: the mean point of its three-digit prefix's ZCTAs.
    Prefix,
}

/// Why a table's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Shorter than the header.
    #[error("zip table: shorter than its {HEADER_LEN}-byte header")]
    Truncated,
    /// The first four bytes are not `LXZC`.
    #[error("zip table: bad magic")]
    BadMagic,
    /// A format version this code does not read.
    #[error("zip table: unsupported version {0}")]
    Version(u16),
    /// A record size other than 12.
    #[error("zip table: record size {0}, expected {RECORD_LEN}")]
    RecordSize(u16),
    /// The length disagrees with the header's count.
    #[error("zip table: {actual} bytes, header says {expected}")]
    Length {
        /// Bytes the header's count implies.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Record `index` is not a ZIP in `0..=99999`, not above its predecessor,
    /// or has a coordinate out of range.
    #[error("zip table: bad record {index}")]
    Record {
        /// Zero-based record index.
        index: usize,
    },
}

/// The ZIP centroid table, decoded: ZIP values ascending, and their points.
#[derive(Debug)]
pub struct ZipCentroids {
    zips: Box<[u32]>,
    points: Box<[LatLon]>,
    /// Mean point of each three-digit prefix's ZCTAs; `None` for a prefix
    /// with none.
    prefix_means: Box<[Option<LatLon>]>,
}

impl ZipCentroids {
    /// The table embedded in the binary, decoded on first use.
    pub fn embedded() -> &'static ZipCentroids {
        static TABLE: OnceLock<ZipCentroids> = OnceLock::new();
        TABLE.get_or_init(|| {
            ZipCentroids::from_bytes(EMBEDDED).expect("the embedded zip table is well formed")
        })
    }

    /// Decodes and checks a table in the format of `engine/data/README.md`.
    pub fn from_bytes(bytes: &[u8]) -> Result<ZipCentroids, TableError> {
        let header = bytes.get(..HEADER_LEN).ok_or(TableError::Truncated)?;
        if &header[0..4] != MAGIC {
            return Err(TableError::BadMagic);
        }
        let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let version = u16_at(4);
        if version != VERSION {
            return Err(TableError::Version(version));
        }
        let record = u16_at(6);
        if usize::from(record) != RECORD_LEN {
            return Err(TableError::RecordSize(record));
        }
        let count = u32_at(header, 8) as usize;
        let expected = HEADER_LEN + count * RECORD_LEN;
        if bytes.len() != expected {
            return Err(TableError::Length {
                expected,
                actual: bytes.len(),
            });
        }
        let mut zips = Vec::with_capacity(count);
        let mut points = Vec::with_capacity(count);
        let mut sums = vec![(0i64, 0i64, 0i64); PREFIXES];
        for (index, rec) in bytes[HEADER_LEN..].chunks_exact(RECORD_LEN).enumerate() {
            let zip = u32_at(rec, 0);
            let point = LatLon::new(u32_at(rec, 4) as i32, u32_at(rec, 8) as i32);
            let ascending = zips.last().is_none_or(|&prev| prev < zip);
            let (Some(point), true, true) = (point, zip <= 99_999, ascending) else {
                return Err(TableError::Record { index });
            };
            let s = &mut sums[(zip / 100) as usize];
            s.0 += i64::from(point.lat_e6);
            s.1 += i64::from(point.lon_e6);
            s.2 += 1;
            zips.push(zip);
            points.push(point);
        }
        // No prefix straddles the antimeridian in the Census data (Guam's
        // and the Aleutians' are on one side each), so a plain mean is the
        // prefix's middle.
        let prefix_means = sums
            .into_iter()
            .map(|(lat, lon, n)| {
                (n > 0).then(|| LatLon {
                    lat_e6: (lat / n) as i32,
                    lon_e6: (lon / n) as i32,
                })
            })
            .collect();
        Ok(ZipCentroids {
            zips: zips.into(),
            points: points.into(),
            prefix_means,
        })
    }

    /// Number of ZCTAs in the table.
    pub fn len(&self) -> usize {
        self.zips.len()
    }

    /// True when the table has no ZCTA.
    pub fn is_empty(&self) -> bool {
        self.zips.is_empty()
    }

    /// The internal point of `zip`'s ZCTA, if `zip` is one.
    pub fn centroid(&self, zip: Zip) -> Option<LatLon> {
        let i = self.zips.binary_search(&zip.value()).ok()?;
        Some(self.points[i])
    }

    /// [`Self::centroid`], or else the mean point of the ZCTAs sharing `zip`'s
    /// three-digit prefix; `None` when that prefix has no ZCTA either.
    pub fn centroid_or_prefix(&self, zip: Zip) -> Option<(LatLon, Resolution)> {
        match self.centroid(zip) {
            Some(p) => Some((p, Resolution::Zcta)),
            None => self.prefix_means[usize::from(zip.prefix3())].map(|p| (p, Resolution::Prefix)),
        }
    }

    /// Every `(ZIP value, point)`, ZIP ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, LatLon)> + '_ {
        self.zips.iter().copied().zip(self.points.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::state_of_zip;

    fn zip(s: &str) -> Zip {
        Zip::parse(s).unwrap()
    }

    fn at(s: &str) -> LatLon {
        ZipCentroids::embedded().centroid(zip(s)).unwrap()
    }

    fn near(p: LatLon, lat: f64, lon: f64) {
        assert!(
            (p.lat() - lat).abs() < 0.05 && (p.lon() - lon).abs() < 0.05,
            "{p:?} is not near {lat},{lon}"
        );
    }

    #[test]
    fn embedded_table_is_sorted_unique_and_complete() {
        let t = ZipCentroids::embedded();
        assert_eq!(t.len(), 33_791, "the 2021 Gazetteer has 33,791 ZCTAs");
        assert!(t.zips.windows(2).all(|w| w[0] < w[1]));
        assert!(t.iter().all(|(z, _)| z <= 99_999));
    }

    #[test]
    fn known_centroids() {
        near(at("90210"), 34.09, -118.41); // Beverly Hills, CA
        near(at("10001"), 40.75, -73.99); // New York, NY
        near(at("60601"), 41.886, -87.62); // Chicago, IL (the Loop)
        near(at("99501"), 61.22, -149.86); // Anchorage, AK
        near(at("96813"), 21.32, -157.85); // Honolulu, HI
        assert_eq!(
            at("90210"),
            LatLon {
                lat_e6: 34_100_517,
                lon_e6: -118_414_630
            },
            "exact Census microdegrees"
        );
    }

    #[test]
    fn unknown_zips_have_no_centroid() {
        let t = ZipCentroids::embedded();
        assert_eq!(t.centroid(zip("00000")), None);
        assert_eq!(t.centroid(zip("99999")), None);
        // The White House: a unique ZIP with no ZCTA; its prefix has ZCTAs.
        assert_eq!(t.centroid(zip("20500")), None);
        let (p, how) = t.centroid_or_prefix(zip("20500")).unwrap();
        assert_eq!(how, Resolution::Prefix);
        assert!(distance_m(p, LatLon::from_degrees(38.8977, -77.0365).unwrap()) < 15_000);
        assert_eq!(
            t.centroid_or_prefix(zip("10001")).unwrap().1,
            Resolution::Zcta
        );
        assert_eq!(
            t.centroid_or_prefix(zip("00000")),
            None,
            "prefix 000 is unassigned"
        );
    }

    #[test]
    fn known_distances() {
        // Beverly Hills to Manhattan: about 3,940 km (the Census points give
        // 3,948 km on the mean sphere).
        let d = distance_m(at("90210"), at("10001"));
        assert!((3_900_000..=3_980_000).contains(&d), "{d}");
        assert_eq!(d, distance_m(at("10001"), at("90210")), "symmetric");
        let mi = distance_miles(at("90210"), at("10001"));
        assert!((2_430..=2_470).contains(&mi), "{mi}");
        // Chicago to Manhattan: about 1,144 km.
        let d = distance_m(at("60601"), at("10001"));
        assert!((1_130_000..=1_160_000).contains(&d), "{d}");
        assert_eq!(distance_m(at("60601"), at("60601")), 0);
        // Antipodes: half the circumference, still a u32.
        let (a, b) = (
            LatLon::new(0, 0).unwrap(),
            LatLon::new(0, 180_000_000).unwrap(),
        );
        assert_eq!(distance_m(a, b), 20_015_114);
    }

    #[test]
    fn every_point_is_plausible_for_its_state() {
        // Each ZCTA that the engine places in a state lies in a rough box
        // around the US (Alaska and Hawaii included): catches a swapped or
        // mis-scaled column.
        for (z, p) in ZipCentroids::embedded().iter() {
            let z = Zip::parse(&format!("{z:05}")).unwrap();
            if state_of_zip(z).is_some() {
                assert!((18.0..72.0).contains(&p.lat()), "{z} {p:?}");
                assert!((-180.0..-66.0).contains(&p.lon()), "{z} {p:?}");
            }
        }
    }

    #[test]
    fn no_prefix_straddles_the_antimeridian() {
        let mut span = vec![(i32::MAX, i32::MIN); PREFIXES];
        for (z, p) in ZipCentroids::embedded().iter() {
            let s = &mut span[(z / 100) as usize];
            *s = (s.0.min(p.lon_e6), s.1.max(p.lon_e6));
        }
        for (prefix, (lo, hi)) in span.into_iter().enumerate() {
            assert!(lo > hi || hi - lo < 180_000_000, "prefix {prefix:03}");
        }
    }

    #[test]
    fn malformed_tables_are_refused() {
        let good = EMBEDDED[..HEADER_LEN + 2 * RECORD_LEN].to_vec();
        let mut header_two = good.clone();
        header_two[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(ZipCentroids::from_bytes(&header_two).unwrap().len(), 2);

        assert_eq!(
            ZipCentroids::from_bytes(&good[..10]).unwrap_err(),
            TableError::Truncated
        );
        let mut bad = header_two.clone();
        bad[0] = b'X';
        assert_eq!(
            ZipCentroids::from_bytes(&bad).unwrap_err(),
            TableError::BadMagic
        );
        let mut bad = header_two.clone();
        bad[4] = 2;
        assert_eq!(
            ZipCentroids::from_bytes(&bad).unwrap_err(),
            TableError::Version(2)
        );
        assert!(matches!(
            ZipCentroids::from_bytes(&good).unwrap_err(),
            TableError::Length { .. }
        ));
        // Two records out of order.
        let mut bad = header_two.clone();
        let (a, b) = bad[HEADER_LEN..].split_at_mut(RECORD_LEN);
        a.swap_with_slice(b);
        assert_eq!(
            ZipCentroids::from_bytes(&bad).unwrap_err(),
            TableError::Record { index: 1 }
        );
        // A latitude out of range.
        let mut bad = header_two;
        bad[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&91_000_000i32.to_le_bytes());
        assert_eq!(
            ZipCentroids::from_bytes(&bad).unwrap_err(),
            TableError::Record { index: 0 }
        );
    }

    #[test]
    fn from_degrees_rounds_and_checks() {
        assert_eq!(
            LatLon::from_degrees(40.7506504, -73.9972926),
            LatLon::new(40_750_650, -73_997_293)
        );
        assert_eq!(LatLon::from_degrees(90.5, 0.0), None);
        assert_eq!(LatLon::from_degrees(f64::NAN, 0.0), None);
    }
}
