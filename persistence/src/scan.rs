//! Replay: reading every segment in order, telling a torn tail from
//! corruption, and (when opening for writing) cutting the torn tail.

use crate::error::PersistenceError;
use crate::format::{self, BadRecord, SegmentHeader};
use leadex_engine::journal::{Lsn, ReplayStats};
use leadex_engine::Event;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Whether replay may change the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Opening for writing, under the directory lock: cut a torn tail and
    /// remove half-created segments.
    Repair,
    /// A reader: change nothing; a torn tail is just where the journal ends.
    ReadOnly,
}

/// Which records a scan visits: LSNs in `after + 1 ..= upto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LsnRange {
    /// Records up to this LSN are covered already (by a snapshot): whole
    /// segments before it are not even read.
    pub(crate) after: Lsn,
    /// Stop after this LSN (a reader beside a writer stops at what it knows
    /// is durable, and never looks at bytes being written); `None` = to the
    /// end.
    pub(crate) upto: Option<Lsn>,
}

/// A segment file found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) first_lsn: Lsn,
}

/// What replay of a whole directory found.
#[derive(Debug)]
pub(crate) struct DirectoryScan {
    pub(crate) stats: ReplayStats,
    /// LSN the next record gets.
    pub(crate) next_lsn: Lsn,
    /// The segment to append to, if there is any.
    pub(crate) last_segment: Option<LastSegment>,
}

/// The last segment, where appends continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastSegment {
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// End of the last good record (after a cut, the file's size).
    pub(crate) good_end_bytes: u64,
}

/// The segment files of `dir`, in LSN order. In `Repair` mode, leftovers of
/// a segment creation that crashed before its rename are removed.
pub(crate) fn list_segments(
    dir: &Path,
    mode: ScanMode,
) -> Result<Vec<SegmentFile>, PersistenceError> {
    let entries =
        std::fs::read_dir(dir).map_err(PersistenceError::io("listing journal directory", dir))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(PersistenceError::io("listing journal directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first_lsn) = format::parse_segment_file_name(name) {
            segments.push(SegmentFile {
                path: entry.path(),
                first_lsn,
            });
        } else if name.ends_with(format::SEGMENT_TEMPORARY_EXTENSION) && mode == ScanMode::Repair {
            // Never renamed into place, so it never held an acknowledged record.
            let path = entry.path();
            tracing::warn!(path = %path.display(), "removing a half-created journal segment");
            std::fs::remove_file(&path)
                .map_err(PersistenceError::io("removing half-created segment", &path))?;
        }
    }
    segments.sort_by_key(|segment| segment.first_lsn);
    Ok(segments)
}

/// Replays every segment of `dir` in order; see the crate documentation for
/// what counts as a torn tail and what as corruption.
pub(crate) fn scan_directory(
    dir: &Path,
    mode: ScanMode,
    range: LsnRange,
    visit: &mut dyn FnMut(Lsn, Event),
) -> Result<DirectoryScan, PersistenceError> {
    let segments = list_segments(dir, mode)?;
    let mut stats = ReplayStats::default();
    // Segments wholly covered by `range.after` (the next one starts at or
    // before `after + 1`) are skipped unread; compaction deletes such
    // segments once a snapshot covers them.
    let skip = segments
        .windows(2)
        .take_while(|pair| pair[1].first_lsn <= range.after + 1)
        .count();
    // The first segment read must start at or before the first LSN wanted
    // (if it starts later, the check in the loop reports the gap). An empty
    // journal continues after what the caller has covered.
    let mut next_lsn: Lsn = match segments.get(skip) {
        Some(first) => first.first_lsn.min(range.after + 1),
        None => range.after + 1,
    };
    let mut last_segment = None;
    let mut torn_bytes_cut = 0;
    let mut visit_in_range = |lsn: Lsn, event: Event| {
        if lsn > range.after && range.upto.is_none_or(|upto| lsn <= upto) {
            stats.events += 1;
            visit(lsn, event);
        }
    };
    for (index, segment) in segments.iter().enumerate().skip(skip) {
        // Every segment must continue where the previous one ended, and the
        // first one read must start at or before the first LSN wanted: a gap
        // is a lost segment, that is lost sales.
        if segment.first_lsn != next_lsn {
            return Err(PersistenceError::Corrupt {
                segment: segment.path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at LSN {} but the journal continues at LSN {next_lsn} \
                     (a segment is missing or misnamed)",
                    segment.first_lsn
                ),
            });
        }
        let is_last = index + 1 == segments.len();
        let bytes = std::fs::read(&segment.path)
            .map_err(PersistenceError::io("reading segment", &segment.path))?;
        let scan = scan_segment(
            &segment.path,
            &bytes,
            segment.first_lsn,
            is_last,
            range.after,
            range.upto,
            &mut visit_in_range,
        )?;
        next_lsn += scan.records;
        if range.upto.is_some_and(|upto| next_lsn > upto) {
            break;
        }
        if let Some(torn) = &scan.torn {
            assert!(
                is_last,
                "invariant: only the last segment may end in a torn record"
            );
            torn_bytes_cut = torn.bytes;
            match mode {
                ScanMode::Repair => {
                    tracing::warn!(
                        segment = %segment.path.display(),
                        offset = torn.offset,
                        bytes = torn.bytes,
                        reason = %torn.reason,
                        "cutting a torn record at the end of the journal (it was never acknowledged)"
                    );
                    cut_tail(&segment.path, torn.offset)?;
                }
                ScanMode::ReadOnly => tracing::debug!(
                    segment = %segment.path.display(),
                    offset = torn.offset,
                    bytes = torn.bytes,
                    reason = %torn.reason,
                    "journal ends in a torn record; ignoring it"
                ),
            }
        }
        last_segment = Some(LastSegment {
            path: segment.path.clone(),
            header: scan.header,
            good_end_bytes: scan.good_end_bytes,
        });
    }
    stats.torn_bytes_cut = torn_bytes_cut;
    Ok(DirectoryScan {
        stats,
        next_lsn,
        last_segment,
    })
}

/// A torn record at the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub(crate) offset: u64,
    pub(crate) bytes: u64,
    pub(crate) reason: String,
}

/// What one segment held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    pub(crate) header: SegmentHeader,
    pub(crate) records: u64,
    pub(crate) good_end_bytes: u64,
    pub(crate) torn: Option<TornTail>,
}

/// Checks and visits the records of one segment's `bytes`: those after LSN
/// `skip_through` are decoded and visited; it stops after LSN `upto` when
/// given (the bytes after it are not looked at).
pub(crate) fn scan_segment(
    path: &Path,
    bytes: &[u8],
    first_lsn: Lsn,
    is_last: bool,
    skip_through: Lsn,
    upto: Option<Lsn>,
    visit: &mut dyn FnMut(Lsn, Event),
) -> Result<SegmentScan, PersistenceError> {
    let corrupt = |offset: usize, reason: String| PersistenceError::Corrupt {
        segment: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let header = SegmentHeader::decode(bytes).map_err(|reason| corrupt(0, reason))?;
    if header.first_lsn != first_lsn {
        return Err(corrupt(
            0,
            format!(
                "header says the first LSN is {} but the file name says {first_lsn}",
                header.first_lsn
            ),
        ));
    }
    let mut offset = format::SEGMENT_HEADER_BYTES;
    let mut records: u64 = 0;
    // Bounded: every iteration consumes at least one whole record or returns.
    while offset < bytes.len() {
        if upto.is_some_and(|upto| first_lsn + records > upto) {
            return Ok(SegmentScan {
                header,
                records,
                good_end_bytes: offset as u64,
                torn: None,
            });
        }
        match format::parse_record(&bytes[offset..], header.salt) {
            Ok(record) => {
                // Records a snapshot covers are checked (length, CRC) but
                // not decoded: decoding is most of a replay's cost.
                if first_lsn + records > skip_through {
                    let event =
                        format::decode_event(&record).map_err(|reason| corrupt(offset, reason))?;
                    visit(first_lsn + records, event);
                }
                records += 1;
                offset += record.record_bytes;
            }
            Err(bad) => {
                let torn = torn_or_corrupt(bytes, offset, header.salt, bad, is_last)
                    .map_err(|reason| corrupt(offset, reason))?;
                return Ok(SegmentScan {
                    header,
                    records,
                    good_end_bytes: offset as u64,
                    torn: Some(torn),
                });
            }
        }
    }
    assert_eq!(
        offset,
        bytes.len(),
        "invariant: records end exactly at the end of the segment"
    );
    Ok(SegmentScan {
        header,
        records,
        good_end_bytes: offset as u64,
        torn: None,
    })
}

/// A bad record is a torn tail only at the end of the last segment with no
/// valid record anywhere after it; otherwise it is corruption (the reason).
fn torn_or_corrupt(
    bytes: &[u8],
    offset: usize,
    salt: u32,
    bad: BadRecord,
    is_last: bool,
) -> Result<TornTail, String> {
    if !is_last {
        return Err(format!("{bad}, in a segment that is not the last one"));
    }
    // The length field of a bad record cannot be trusted, so look for a valid
    // record at every later byte. Cheap in practice: most garbage fails the
    // length bound before any CRC is computed, and zeros fail it at once.
    if let Some(next) =
        (offset + 1..bytes.len()).find(|&at| format::parse_record(&bytes[at..], salt).is_ok())
    {
        return Err(format!("{bad}, yet a valid record follows at byte {next}"));
    }
    Ok(TornTail {
        offset: offset as u64,
        bytes: (bytes.len() - offset) as u64,
        reason: bad.to_string(),
    })
}

/// Truncates `path` to `length` and makes that durable.
fn cut_tail(path: &Path, length: u64) -> Result<(), PersistenceError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(PersistenceError::io(
            "opening segment to cut a torn tail",
            path,
        ))?;
    file.set_len(length)
        .map_err(PersistenceError::io("cutting a torn tail of", path))?;
    // The new size is inode metadata: an fsync of the file makes it durable.
    file.sync_all()
        .map_err(PersistenceError::io("syncing the cut of", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn segment_bytes(salt: u32, events: &[Event]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = SegmentHeader { first_lsn: 1, salt }.encode().to_vec();
        let mut starts = vec![];
        for event in events {
            starts.push(bytes.len());
            format::encode_record(&mut bytes, salt, event).unwrap();
        }
        (bytes, starts)
    }

    fn scan(
        bytes: &[u8],
        is_last: bool,
    ) -> (Result<SegmentScan, PersistenceError>, Vec<(Lsn, Event)>) {
        let mut seen = vec![];
        let result = scan_segment(
            Path::new("s.ldxj"),
            bytes,
            1,
            is_last,
            0,
            None,
            &mut |lsn, event| seen.push((lsn, event)),
        );
        (result, seen)
    }

    #[test]
    fn a_clean_segment_is_visited_in_order() {
        let events: Vec<Event> = (0..5).map(testing::event).collect();
        let (bytes, _) = segment_bytes(3, &events);
        let (result, seen) = scan(&bytes, true);
        let result = result.unwrap();
        assert_eq!(result.records, 5);
        assert_eq!(result.torn, None);
        assert_eq!(result.good_end_bytes, bytes.len() as u64);
        assert_eq!(
            seen,
            events
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i as Lsn + 1, e))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn zeros_at_the_tail_are_torn() {
        let events: Vec<Event> = (0..3).map(testing::event).collect();
        let (mut bytes, _) = segment_bytes(3, &events);
        let good = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        let (result, seen) = scan(&bytes, true);
        let result = result.unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(result.good_end_bytes, good as u64);
        assert_eq!(result.torn.unwrap().bytes, 4096);
    }

    #[test]
    fn a_bad_record_followed_by_a_good_one_is_corrupt() {
        let events: Vec<Event> = (0..4).map(testing::event).collect();
        let (mut bytes, starts) = segment_bytes(3, &events);
        bytes[starts[2] + 20] ^= 0xff;
        let (result, seen) = scan(&bytes, true);
        let error = result.unwrap_err();
        assert!(
            matches!(&error, PersistenceError::Corrupt { offset, reason, .. }
                if *offset == starts[2] as u64 && reason.contains("valid record follows")),
            "{error}"
        );
        assert_eq!(seen.len(), 2, "events before the damage were visited");
    }

    #[test]
    fn a_torn_record_in_an_earlier_segment_is_corrupt() {
        let events: Vec<Event> = (0..2).map(testing::event).collect();
        let (bytes, _) = segment_bytes(3, &events);
        let (result, _) = scan(&bytes[..bytes.len() - 1], false);
        let error = result.unwrap_err();
        assert!(error.to_string().contains("not the last one"), "{error}");
    }

    #[test]
    fn a_header_naming_another_lsn_is_corrupt() {
        let bytes = SegmentHeader {
            first_lsn: 2,
            salt: 0,
        }
        .encode();
        let (result, _) = scan(&bytes, true);
        assert!(result.unwrap_err().to_string().contains("file name says 1"));
    }
}
