//! Turning NVML's cumulative counters into rates and increases.
//!
//! NVML's traffic and error counters only grow, until they wrap at their width or someone
//! resets them. A rate needs two readings; a counter that moved backwards by more than a wrap
//! can explain gives no figure rather than a huge wrong one.

use super::source::CounterReading;

/// How much a counter of `bits` width grew from `before` to `after`.
///
/// A smaller `after` is read as one wrap when the wrapped growth is under half the counter's
/// range; otherwise the counter was reset and the growth is unknown. (A reset that lands just
/// below a high reading of a 32-bit counter looks like a wrap: nothing in the values tells
/// them apart.)
pub fn growth(before: u64, after: u64, bits: u32) -> Option<u64> {
    if after >= before {
        return Some(after - before);
    }
    if bits == 0 || bits >= 64 {
        // A 64-bit counter of bytes would take decades to wrap: going back means a reset.
        return None;
    }
    let range = 1u64 << bits;
    if before >= range {
        return None; // not a counter of this width at all
    }
    let wrapped = range - before + after;
    (wrapped < range / 2).then_some(wrapped)
}

/// A per-interval rate from successive readings of one cumulative counter.
#[derive(Clone, Debug, Default)]
pub struct RateCounter {
    last: Option<CounterReading>,
}

impl RateCounter {
    /// Takes a new reading (or its absence) and returns the rate since the previous reading in
    /// GB/s, counting `bytes_per_unit` bytes for each unit of the counter.
    ///
    /// The first reading has no rate; neither has a reading that is no later than the last one,
    /// that changed width, or that went back (see [`growth`]).
    pub fn update(&mut self, reading: Option<CounterReading>, bytes_per_unit: f64) -> Option<f64> {
        let now = reading?;
        let before = self.last.replace(now)?;
        if now.bits != before.bits || now.at_us <= before.at_us {
            return None;
        }
        let units = growth(before.value, now.value, now.bits)?;
        let seconds = (now.at_us - before.at_us) as f64 / 1e6;
        Some(units as f64 * bytes_per_unit / seconds / 1e9)
    }
}

/// How much an error counter grew since the first reading.
///
/// Once the counter goes back (someone reset it), what happened before is lost: it reports
/// nothing from then on rather than a count that silently restarted.
#[derive(Clone, Debug, Default)]
pub struct SinceStart {
    last: Option<u64>,
    total: u64,
    reset: bool,
}

impl SinceStart {
    pub fn update(&mut self, reading: Option<u64>, bits: u32) -> Option<u64> {
        let now = reading?;
        if self.reset {
            return None;
        }
        let last = self.last.replace(now).unwrap_or(now);
        // Adding up each step's growth counts every wrap along the way once.
        match growth(last, now, bits) {
            Some(step) => {
                self.total += step;
                Some(self.total)
            }
            None => {
                self.reset = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: u64, bits: u32, at_us: u64) -> Option<CounterReading> {
        Some(CounterReading { value, bits, at_us })
    }

    #[test]
    fn growth_handles_wraps_at_the_counter_width() {
        assert_eq!(growth(10, 25, 32), Some(15));
        assert_eq!(growth(u64::from(u32::MAX) - 4, 5, 32), Some(10));
        assert_eq!(
            growth(u64::MAX - 4, 5, 64),
            None,
            "64-bit going back is a reset"
        );
        assert_eq!(
            growth(1_000, 5, 32),
            None,
            "far back is a reset, not a wrap"
        );
        assert_eq!(growth(1 << 33, 5, 32), None, "bigger than its width");
        assert_eq!(growth(7, 7, 64), Some(0));
    }

    #[test]
    fn rates_need_two_readings_and_forward_time() {
        let mut rate = RateCounter::default();
        assert_eq!(
            rate.update(at(0, 64, 1_000_000), 1.0),
            None,
            "first reading"
        );
        // 5 GB in half a second.
        assert_eq!(
            rate.update(at(5_000_000_000, 64, 1_500_000), 1.0),
            Some(10.0)
        );
        assert_eq!(
            rate.update(at(6_000_000_000, 64, 1_500_000), 1.0),
            None,
            "no time passed"
        );
        assert_eq!(rate.update(at(5, 64, 2_000_000), 1.0), None, "reset");
        // After a reset the next interval counts again: 1 GiB (KiB units) over one second.
        let rate_kib = rate.update(at(5 + (1 << 20), 64, 3_000_000), 1024.0);
        assert_eq!(rate_kib, Some(1.073741824));
    }

    #[test]
    fn a_missing_reading_keeps_the_last_one() {
        let mut rate = RateCounter::default();
        rate.update(at(0, 32, 0), 1.0);
        assert_eq!(rate.update(None, 1.0), None);
        assert_eq!(
            rate.update(at(2_000_000_000, 32, 1_000_000), 1.0),
            Some(2.0)
        );
    }

    #[test]
    fn a_32_bit_wrap_gives_the_true_rate() {
        let mut rate = RateCounter::default();
        let near_top = u64::from(u32::MAX) - 999;
        rate.update(at(near_top, 32, 0), 1024.0);
        let gbps = rate.update(at(1_000, 32, 1_000_000), 1024.0).unwrap();
        assert!((gbps - 2_000.0 * 1024.0 / 1e9).abs() < 1e-12, "{gbps}");
    }

    #[test]
    fn errors_count_from_the_first_reading_and_stop_at_a_reset() {
        let mut errors = SinceStart::default();
        assert_eq!(errors.update(None, 64), None);
        assert_eq!(errors.update(Some(7), 64), Some(0));
        assert_eq!(errors.update(Some(9), 64), Some(2));
        assert_eq!(errors.update(None, 64), None);
        assert_eq!(errors.update(Some(12), 64), Some(5));
        assert_eq!(errors.update(Some(0), 64), None, "reset");
        assert_eq!(errors.update(Some(3), 64), None, "history lost");
    }
}
