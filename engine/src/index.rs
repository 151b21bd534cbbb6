//! The targeting index: per vertical, one bitset over that vertical's
//! campaigns for every (attribute, value) pair.
//!
//! Row `(a, v)` has a campaign's bit set when the campaign's filter on
//! attribute `a` accepts value `v`; campaigns without a filter on `a` are set
//! in every row of `a`, including the row for "attribute missing". A ping
//! selects exactly one row per attribute, and the AND of those rows is the
//! set of campaigns whose indexed filters all match. That is the conjunctive
//! case of Whang et al., "Indexing Boolean Expressions" (VLDB 2009), with
//! bitsets instead of posting lists: the cost is `rows × campaigns / 64` word
//! operations, which vectorizes, instead of a predicate call per campaign.
//! Filters with open-ended value sets (ZIP lists, carriers, sources, income)
//! are checked afterwards on the few survivors.

use crate::lead::{Credit, Device, LeadAttributes, SaleType, SaleTypeRequest, UsState};
use crate::spec::Filters;

/// An indexed attribute: its number of rows and where they start.
#[derive(Debug, Clone, Copy)]
struct Attr {
    first_row: usize,
    values: usize, // rows = values + 1 (the last one is "missing")
}

const AGE_VALUES: usize = 121; // 0..=120
const SMALL_COUNT_VALUES: usize = 11; // vehicles, drivers: 0..=10
const INCIDENT_VALUES: usize = 21; // violations, accidents: 0..=20
const BOOL_VALUES: usize = 2;

/// Attribute slots in a fixed order.
#[derive(Debug, Clone, Copy)]
enum Slot {
    State,
    Age,
    Credit,
    Device,
    Homeowner,
    CurrentlyInsured,
    Sr22,
    Military,
    Tobacco,
    PreExisting,
    Vehicles,
    Drivers,
    Violations,
    Accidents,
    SaleType,
}

const SLOTS: [(Slot, usize); 15] = [
    (Slot::State, UsState::COUNT),
    (Slot::Age, AGE_VALUES),
    (Slot::Credit, 4),
    (Slot::Device, 2),
    (Slot::Homeowner, BOOL_VALUES),
    (Slot::CurrentlyInsured, BOOL_VALUES),
    (Slot::Sr22, BOOL_VALUES),
    (Slot::Military, BOOL_VALUES),
    (Slot::Tobacco, BOOL_VALUES),
    (Slot::PreExisting, BOOL_VALUES),
    (Slot::Vehicles, SMALL_COUNT_VALUES),
    (Slot::Drivers, SMALL_COUNT_VALUES),
    (Slot::Violations, INCIDENT_VALUES),
    (Slot::Accidents, INCIDENT_VALUES),
    // Sale type "values": 0 = exclusive requested, 1 = shared requested; the
    // "missing" row stands for `any`.
    (Slot::SaleType, 2),
];

/// Number of rows a ping selects (one per slot).
pub const QUERY_ROWS: usize = SLOTS.len();

fn attrs() -> [Attr; QUERY_ROWS] {
    let mut out = [Attr {
        first_row: 0,
        values: 0,
    }; QUERY_ROWS];
    let mut next = 0;
    for (i, (_, values)) in SLOTS.iter().enumerate() {
        out[i] = Attr {
            first_row: next,
            values: *values,
        };
        next += values + 1;
    }
    out
}

fn total_rows() -> usize {
    SLOTS.iter().map(|(_, v)| v + 1).sum()
}

/// What one campaign accepts, per slot: `accepts(value)` for values and
/// `accepts_missing` for the missing row.
fn accepts(slot: Slot, f: &Filters, sale_type: SaleType, value: Option<usize>) -> bool {
    let range = |lo: Option<u8>, hi: Option<u8>| match value {
        None => lo.is_none() && hi.is_none(),
        Some(v) => lo.is_none_or(|lo| v >= lo as usize) && hi.is_none_or(|hi| v <= hi as usize),
    };
    let boolean = |want: Option<bool>| match (want, value) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(w), Some(v)) => w == (v == 1),
    };
    match slot {
        Slot::State => match value {
            None => f.states.is_empty() && f.exclude_states.is_empty(),
            Some(v) => {
                let s = UsState::from_index(v).expect("invariant: state row in range");
                (f.states.is_empty() || f.states.contains(&s)) && !f.exclude_states.contains(&s)
            }
        },
        Slot::Age => range(f.age_min, f.age_max),
        Slot::Credit => match value {
            None => f.credit.is_empty(),
            Some(v) => f.credit.is_empty() || f.credit.contains(&Credit::ALL[v]),
        },
        Slot::Device => match value {
            None => f.device.is_empty(),
            Some(v) => f.device.is_empty() || f.device.contains(&Device::ALL[v]),
        },
        Slot::Homeowner => boolean(f.homeowner),
        Slot::CurrentlyInsured => boolean(f.currently_insured),
        Slot::Sr22 => boolean(f.sr22),
        Slot::Military => boolean(f.military),
        Slot::Tobacco => boolean(f.tobacco),
        Slot::PreExisting => boolean(f.pre_existing),
        Slot::Vehicles => range(f.vehicles_min, f.vehicles_max),
        Slot::Drivers => range(None, f.drivers_max),
        Slot::Violations => range(None, f.violations_max),
        Slot::Accidents => range(None, f.accidents_max),
        Slot::SaleType => match value {
            None => true,
            Some(0) => sale_type == SaleType::Exclusive,
            Some(_) => sale_type == SaleType::Shared,
        },
    }
}

/// The bitsets of one vertical.
#[derive(Debug, Clone)]
pub struct VerticalIndex {
    /// Global campaign index of each bit.
    pub campaigns: Vec<u32>,
    /// Per bit: the campaign's maximum price (cents, saturated to `u32`)
    /// and whether it sells exclusive. Dense, so an auction can skip a
    /// campaign without touching the campaign itself.
    pub bounds: Vec<(u32, bool)>,
    words: usize,
    /// Row-major: row `r` is `bits[r * words .. (r + 1) * words]`.
    bits: Vec<u64>,
}

impl VerticalIndex {
    /// Builds the index of `members` (global index, filters, sale type).
    pub fn build<'a>(
        members: impl Iterator<Item = (u32, &'a Filters, SaleType, u64)>,
    ) -> VerticalIndex {
        let members: Vec<_> = members.collect();
        let words = members.len().div_ceil(64);
        let rows = total_rows();
        let mut bits = vec![0u64; rows * words];
        let layout = attrs();
        for (bit, (_, filters, sale_type, _)) in members.iter().enumerate() {
            for (i, (slot, _)) in SLOTS.iter().enumerate() {
                let a = layout[i];
                for v in 0..=a.values {
                    let value = (v < a.values).then_some(v);
                    if accepts(*slot, filters, *sale_type, value) {
                        bits[(a.first_row + v) * words + bit / 64] |= 1u64 << (bit % 64);
                    }
                }
            }
        }
        VerticalIndex {
            campaigns: members.iter().map(|m| m.0).collect(),
            bounds: members
                .iter()
                .map(|m| {
                    (
                        u32::try_from(m.3).unwrap_or(u32::MAX),
                        m.2 == SaleType::Exclusive,
                    )
                })
                .collect(),
            words,
            bits,
        }
    }

    /// Selects the rows for a ping into `rows`.
    pub fn query_rows(
        attrs: &LeadAttributes,
        sale: SaleTypeRequest,
        rows: &mut [usize; QUERY_ROWS],
    ) {
        let layout = self::attrs();
        let b = |x: Option<bool>| x.map(usize::from);
        let bounded = |x: Option<u8>, values: usize| x.map(usize::from).filter(|v| *v < values);
        let values: [Option<usize>; QUERY_ROWS] = [
            Some(attrs.state.index()),
            bounded(attrs.age, AGE_VALUES),
            attrs.credit.map(Credit::index),
            attrs.device.map(Device::index),
            b(attrs.homeowner),
            b(attrs.currently_insured),
            b(attrs.sr22),
            b(attrs.military),
            b(attrs.tobacco),
            b(attrs.pre_existing),
            bounded(attrs.vehicles, SMALL_COUNT_VALUES),
            bounded(attrs.drivers, SMALL_COUNT_VALUES),
            bounded(attrs.violations, INCIDENT_VALUES),
            bounded(attrs.accidents, INCIDENT_VALUES),
            match sale {
                SaleTypeRequest::Exclusive => Some(0),
                SaleTypeRequest::Shared => Some(1),
                SaleTypeRequest::Any => None,
            },
        ];
        // A value outside the indexed range selects the "missing" row: only
        // campaigns without a filter on that attribute stay. The protocol
        // refuses such values, so this is a conservative fallback.
        for i in 0..QUERY_ROWS {
            let a = layout[i];
            rows[i] = a.first_row + values[i].unwrap_or(a.values);
        }
    }

    /// ANDs the selected rows into `acc` (resized to this vertical's words)
    /// and calls `visit` with the global index of every campaign left.
    /// Campaigns are visited in the order they were given to [`build`]
    /// (the snapshot gives them by descending maximum price, so an auction
    /// can stop early); `visit` returns `false` to stop.
    ///
    /// [`build`]: VerticalIndex::build
    pub fn matches(
        &self,
        rows: &[usize; QUERY_ROWS],
        acc: &mut Vec<u64>,
        mut visit: impl FnMut(u32, (u32, bool)) -> bool,
    ) {
        let w = self.words;
        acc.clear();
        acc.extend_from_slice(&self.bits[rows[0] * w..rows[0] * w + w]);
        for &r in &rows[1..] {
            let row = &self.bits[r * w..r * w + w];
            for (a, b) in acc.iter_mut().zip(row) {
                *a &= *b;
            }
        }
        for (wi, &word) in acc.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let i = wi * 64 + bit;
                if !visit(self.campaigns[i], self.bounds[i]) {
                    return;
                }
            }
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.campaigns.capacity() * 4 + self.bounds.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{Vertical, Zip};

    fn lead() -> LeadAttributes {
        let mut a = LeadAttributes::new(
            Vertical::Auto,
            Zip::parse("90210").unwrap(),
            UsState::parse("CA").unwrap(),
        );
        a.age = Some(30);
        a.credit = Some(Credit::Good);
        a.homeowner = Some(true);
        a
    }

    fn run(idx: &VerticalIndex, attrs: &LeadAttributes, sale: SaleTypeRequest) -> Vec<u32> {
        let mut rows = [0; QUERY_ROWS];
        VerticalIndex::query_rows(attrs, sale, &mut rows);
        let mut out = vec![];
        idx.matches(&rows, &mut Vec::new(), |c, _| {
            out.push(c);
            true
        });
        out
    }

    #[test]
    fn index_agrees_with_filters() {
        let ca = UsState::parse("CA").unwrap();
        let tx = UsState::parse("TX").unwrap();
        let f_all = Filters::default();
        let f_tx = Filters {
            states: vec![tx],
            ..Default::default()
        };
        let f_not_ca = Filters {
            exclude_states: vec![ca],
            ..Default::default()
        };
        let f_age = Filters {
            age_min: Some(25),
            age_max: Some(29),
            ..Default::default()
        };
        let f_credit = Filters {
            credit: vec![Credit::Good, Credit::Excellent],
            homeowner: Some(true),
            ..Default::default()
        };
        let f_renter = Filters {
            homeowner: Some(false),
            ..Default::default()
        };
        let f_vehicles = Filters {
            vehicles_min: Some(1),
            ..Default::default()
        };
        let members = [
            (10, &f_all, SaleType::Exclusive, 1),
            (11, &f_tx, SaleType::Exclusive, 1),
            (12, &f_not_ca, SaleType::Shared, 1),
            (13, &f_age, SaleType::Shared, 1),
            (14, &f_credit, SaleType::Shared, 1),
            (15, &f_renter, SaleType::Exclusive, 1),
            (16, &f_vehicles, SaleType::Exclusive, 1),
        ];
        let idx = VerticalIndex::build(members.iter().copied());
        assert_eq!(run(&idx, &lead(), SaleTypeRequest::Any), vec![10, 14]);
        assert_eq!(run(&idx, &lead(), SaleTypeRequest::Shared), vec![14]);
        assert_eq!(run(&idx, &lead(), SaleTypeRequest::Exclusive), vec![10]);
        let mut l = lead();
        l.vehicles = Some(2);
        l.age = Some(29);
        assert_eq!(run(&idx, &l, SaleTypeRequest::Any), vec![10, 13, 14, 16]);
        l.age = None; // campaigns filtering on age need it
        assert_eq!(run(&idx, &l, SaleTypeRequest::Any), vec![10, 14, 16]);
    }

    #[test]
    fn many_campaigns_cross_word_boundaries() {
        let f = Filters::default();
        let idx = VerticalIndex::build((0..200u32).map(|i| (i, &f, SaleType::Shared, 1)));
        assert_eq!(
            run(&idx, &lead(), SaleTypeRequest::Any),
            (0..200).collect::<Vec<_>>()
        );
        assert!(run(&idx, &lead(), SaleTypeRequest::Exclusive).is_empty());
    }
}
