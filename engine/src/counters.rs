//! Per-campaign money and cap counters: preallocated atomics that live
//! outside the immutable snapshot, so a snapshot swap never resets spend.
//!
//! Exactness: every counter is changed only by compare-and-swap loops that
//! check the limit and add in one atomic step, so no interleaving of
//! concurrent charges can take a counter past its limit. A charge touches up
//! to nine counters; it reserves them one by one and, if one refuses, gives
//! back what it took (in reverse order). A concurrent charge may therefore be
//! refused because of a reservation that is later given back: that errs on
//! the side of never overspending, never the other way.
//!
//! Memory orderings: all `Relaxed`. Each counter is an independent quantity;
//! the atomic read-modify-write alone makes it exact, and no other memory is
//! published through these values (readers of a sale learn of it through the
//! journal callback and the request's own happens-before edges).

use crate::localtime::LocalTime;
use crate::spec::Caps;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a charge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeRefusal {
    /// Not enough budget left.
    Budget,
    /// A lead or spend cap would be exceeded.
    Cap,
}

/// Cap limits compiled for fast checks: index = period * 2 + (0 leads, 1 spend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapLimits(pub [Option<u32>; 8]);

impl CapLimits {
    /// Compiles spec caps (already validated to fit 32 bits).
    pub fn from_spec(caps: &Caps) -> CapLimits {
        let mut out = [None; 8];
        for (p, limit) in [caps.hourly, caps.daily, caps.weekly, caps.monthly]
            .iter()
            .enumerate()
        {
            out[p * 2] = limit.leads;
            out[p * 2 + 1] = limit
                .spend_cents
                .map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        }
        CapLimits(out)
    }

    /// True when no cap is set.
    pub fn is_unlimited(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

fn pack(period: u32, value: u32) -> u64 {
    (u64::from(period) << 32) | u64::from(value)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The counters of one campaign.
#[derive(Debug, Default)]
pub struct CampaignCounters {
    spent_cents: AtomicU64,
    sold: AtomicU64,
    /// `[period key : 32 | amount in that period : 32]` per cap slot.
    periods: [AtomicU64; 8],
}

/// What a successful charge took, so it can be given back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Price charged, cents.
    pub price_cents: u64,
    /// Period keys the caps were charged in.
    pub period_keys: [u32; 4],
}

/// A point-in-time reading of a campaign's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterReading {
    /// Lifetime spend, cents.
    pub spent_cents: u64,
    /// Lifetime leads bought.
    pub sold: u64,
    /// Use of each cap slot in the current period (index as [`CapLimits`]).
    pub period_use: [u32; 8],
}

impl CampaignCounters {
    fn amount(slot: usize, price_cents: u64) -> u32 {
        if slot % 2 == 0 {
            1
        } else {
            u32::try_from(price_cents).unwrap_or(u32::MAX)
        }
    }

    /// Use of cap slot `slot` in the period `now` falls in (0 once the
    /// counter's period is over).
    fn use_now(&self, slot: usize, now: &LocalTime) -> u32 {
        let (period, value) = unpack(self.periods[slot].load(Ordering::Relaxed));
        if period == now.period_keys[slot / 2] {
            value
        } else {
            0
        }
    }

    /// The raw counter words: (spend, leads sold, period words), for state
    /// images. Exact only while nothing charges concurrently.
    pub fn raw(&self) -> (u64, u64, [u64; 8]) {
        (
            self.spent_cents.load(Ordering::Relaxed),
            self.sold.load(Ordering::Relaxed),
            std::array::from_fn(|slot| self.periods[slot].load(Ordering::Relaxed)),
        )
    }

    /// Sets the raw counter words from a state image (restore, before
    /// serving).
    pub fn restore_raw(&self, spent_cents: u64, sold: u64, periods: &[u64; 8]) {
        self.spent_cents.store(spent_cents, Ordering::Relaxed);
        self.sold.store(sold, Ordering::Relaxed);
        for (word, value) in self.periods.iter().zip(periods) {
            word.store(*value, Ordering::Relaxed);
        }
    }

    /// Lifetime spend, cents.
    pub fn spent_cents(&self) -> u64 {
        self.spent_cents.load(Ordering::Relaxed)
    }

    /// Reads every counter, with period use relative to `now`.
    pub fn read(&self, now: &LocalTime) -> CounterReading {
        let mut period_use = [0u32; 8];
        for (slot, used) in period_use.iter_mut().enumerate() {
            *used = self.use_now(slot, now);
        }
        CounterReading {
            spent_cents: self.spent_cents.load(Ordering::Relaxed),
            sold: self.sold.load(Ordering::Relaxed),
            period_use,
        }
    }

    /// Whether a charge of `price_cents` would fit right now. Advisory (used
    /// by pings); only [`CampaignCounters::try_charge`] is exact.
    pub fn would_fit(
        &self,
        budget_cents: u64,
        limits: &CapLimits,
        price_cents: u64,
        now: &LocalTime,
    ) -> Result<(), ChargeRefusal> {
        if self
            .spent_cents
            .load(Ordering::Relaxed)
            .saturating_add(price_cents)
            > budget_cents
        {
            return Err(ChargeRefusal::Budget);
        }
        for (slot, limit) in limits.0.iter().enumerate() {
            let Some(limit) = *limit else { continue };
            let used = self.use_now(slot, now);
            if u64::from(used) + u64::from(Self::amount(slot, price_cents)) > u64::from(limit) {
                return Err(ChargeRefusal::Cap);
            }
        }
        Ok(())
    }

    /// Charges `price_cents` against the budget and every cap, exactly, or
    /// changes nothing.
    pub fn try_charge(
        &self,
        budget_cents: u64,
        limits: &CapLimits,
        price_cents: u64,
        now: &LocalTime,
    ) -> Result<Charge, ChargeRefusal> {
        let mut spent = self.spent_cents.load(Ordering::Relaxed);
        loop {
            let next = spent
                .checked_add(price_cents)
                .filter(|n| *n <= budget_cents);
            let Some(next) = next else {
                return Err(ChargeRefusal::Budget);
            };
            match self.spent_cents.compare_exchange_weak(
                spent,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => spent = actual,
            }
        }
        for slot in 0..8 {
            if !self.add_in_period(
                slot,
                now.period_keys[slot / 2],
                Self::amount(slot, price_cents),
                limits.0[slot],
            ) {
                for undo in (0..slot).rev() {
                    self.sub_in_period(
                        undo,
                        now.period_keys[undo / 2],
                        Self::amount(undo, price_cents),
                    );
                }
                self.spent_cents.fetch_sub(price_cents, Ordering::Relaxed);
                return Err(ChargeRefusal::Cap);
            }
        }
        self.sold.fetch_add(1, Ordering::Relaxed);
        Ok(Charge {
            price_cents,
            period_keys: now.period_keys,
        })
    }

    /// Gives back a charge (its sale was not made durable).
    pub fn refund(&self, charge: &Charge) {
        for slot in 0..8 {
            self.sub_in_period(
                slot,
                charge.period_keys[slot / 2],
                Self::amount(slot, charge.price_cents),
            );
        }
        self.spent_cents
            .fetch_sub(charge.price_cents, Ordering::Relaxed);
        self.sold.fetch_sub(1, Ordering::Relaxed);
    }

    /// Gives back spend for a returned lead: the lifetime spend goes down by
    /// `cents`, so the budget has that much more room; the caps the sale
    /// used stay used (a return does not reopen an hour's cap).
    ///
    /// Wrapping, so that a refund and the sale it refunds give the same sum
    /// in either order (a multi-partition journal may replay them in
    /// either); the admin API never refunds more than a sale charged.
    pub fn credit(&self, cents: u64) {
        // Relaxed: the spend word is read and changed only by atomic
        // read-modify-writes; nothing else is published with it.
        self.spent_cents.fetch_sub(cents, Ordering::Relaxed);
    }

    /// Applies a journaled sale during replay: no limit checks (the sale was
    /// accepted when it happened), periods taken from the sale's own time.
    pub fn replay_charge(&self, price_cents: u64, at: &LocalTime) {
        self.spent_cents.fetch_add(price_cents, Ordering::Relaxed);
        self.sold.fetch_add(1, Ordering::Relaxed);
        for slot in 0..8 {
            let period = at.period_keys[slot / 2];
            let amount = Self::amount(slot, price_cents);
            let word = &self.periods[slot];
            let mut cur = word.load(Ordering::Relaxed);
            loop {
                let (p, v) = unpack(cur);
                let next = if p == period {
                    pack(p, v.saturating_add(amount))
                } else if p < period {
                    pack(period, amount)
                } else {
                    break; // an older period than what is recorded: it no longer counts
                };
                match word.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
    }

    /// Adds `amount` in `period` unless that would pass `limit`. Unlimited
    /// slots are still counted (saturating) so status reports are complete.
    fn add_in_period(&self, slot: usize, period: u32, amount: u32, limit: Option<u32>) -> bool {
        let word = &self.periods[slot];
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let (p, v) = unpack(cur);
            let used = if p == period { v } else { 0 };
            let next_value = match limit {
                Some(limit) => match used.checked_add(amount) {
                    Some(n) if n <= limit => n,
                    _ => return false,
                },
                None => used.saturating_add(amount),
            };
            if p > period {
                // The counter already moved to a later period: this charge read
                // the clock before the period turned (the thread may have been
                // descheduled for any length of time). Its own period's use is
                // no longer known, so a capped slot refuses rather than risk
                // passing the cap; an uncapped slot just does not count it.
                return limit.is_none();
            }
            match word.compare_exchange_weak(
                cur,
                pack(period, next_value),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn sub_in_period(&self, slot: usize, period: u32, amount: u32) {
        let word = &self.periods[slot];
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let (p, v) = unpack(cur);
            if p != period {
                return; // the period rolled over; its use no longer matters
            }
            match word.compare_exchange_weak(
                cur,
                pack(p, v.saturating_sub(amount)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CapLimit;
    use std::sync::Arc;

    fn at(keys: [u32; 4]) -> LocalTime {
        LocalTime {
            weekday: 0,
            hour: 0,
            period_keys: keys,
        }
    }

    #[test]
    fn budget_is_exact_and_refund_restores() {
        let c = CampaignCounters::default();
        let now = at([1, 1, 1, 1]);
        let limits = CapLimits::default();
        let a = c.try_charge(250, &limits, 100, &now).unwrap();
        c.try_charge(250, &limits, 100, &now).unwrap();
        assert_eq!(
            c.try_charge(250, &limits, 100, &now),
            Err(ChargeRefusal::Budget)
        );
        c.try_charge(250, &limits, 50, &now).unwrap();
        assert_eq!(c.spent_cents(), 250);
        c.refund(&a);
        assert_eq!(c.read(&now).spent_cents, 150);
        assert_eq!(c.read(&now).sold, 2);
    }

    #[test]
    fn caps_reset_with_their_period_only() {
        let caps = Caps {
            daily: CapLimit {
                leads: Some(2),
                spend_cents: None,
            },
            ..Default::default()
        };
        let limits = CapLimits::from_spec(&caps);
        let c = CampaignCounters::default();
        let day1 = at([10, 1, 1, 1]);
        c.try_charge(u64::MAX, &limits, 5, &day1).unwrap();
        c.try_charge(u64::MAX, &limits, 5, &at([11, 1, 1, 1]))
            .unwrap();
        assert_eq!(
            c.try_charge(u64::MAX, &limits, 5, &at([12, 1, 1, 1])),
            Err(ChargeRefusal::Cap)
        );
        // A refused cap gives the budget back.
        assert_eq!(c.spent_cents(), 10);
        c.try_charge(u64::MAX, &limits, 5, &at([13, 2, 1, 1]))
            .unwrap();
        assert_eq!(c.read(&at([13, 2, 1, 1])).period_use[2], 1);
    }

    #[test]
    fn concurrent_charges_never_pass_the_spend_cap() {
        let caps = Caps {
            hourly: CapLimit {
                leads: None,
                spend_cents: Some(1000),
            },
            ..Default::default()
        };
        let limits = CapLimits::from_spec(&caps);
        let c = Arc::new(CampaignCounters::default());
        let now = at([5, 5, 5, 5]);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| c.try_charge(5000, &limits, 30, &now).is_ok())
                        .count()
                })
            })
            .collect();
        let sold: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sold, 33, "floor(1000 / 30) sales fit the hourly spend cap");
        assert_eq!(c.spent_cents(), 990);
    }

    #[test]
    fn replay_rebuilds_periods() {
        let c = CampaignCounters::default();
        c.replay_charge(100, &at([1, 1, 1, 1]));
        c.replay_charge(100, &at([2, 1, 1, 1]));
        let r = c.read(&at([2, 1, 1, 1]));
        assert_eq!(r.period_use, [1, 100, 2, 200, 2, 200, 2, 200]);
        assert_eq!(r.spent_cents, 200);
    }
}
