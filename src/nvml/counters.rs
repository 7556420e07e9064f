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

/// When a reading was taken: on NVML's clock (its field timestamp, wall-clock µs) or, where the
/// driver left that at zero, on the reader's own monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    Nvml(u64),
    Reader(u64),
}

impl Stamp {
    /// NVML's timestamp if the reading has one, else `reader_us`.
    pub fn of(reading: &CounterReading, reader_us: u64) -> Stamp {
        reading.at_us.map_or(Stamp::Reader(reader_us), Stamp::Nvml)
    }

    /// Microseconds from `earlier` to `self` when both are on one clock and time moved on.
    fn since(self, earlier: Stamp) -> Option<u64> {
        match (earlier, self) {
            (Stamp::Nvml(a), Stamp::Nvml(b)) | (Stamp::Reader(a), Stamp::Reader(b)) if b > a => {
                Some(b - a)
            }
            _ => None,
        }
    }
}

/// A per-interval rate from successive readings of one cumulative counter, timed on one clock:
/// two readings on different clocks give no rate, never a difference between two clocks.
#[derive(Clone, Debug, Default)]
pub struct RateCounter {
    last: Option<(CounterReading, Stamp)>,
}

impl RateCounter {
    /// Takes a new reading (or its absence), taken at `reader_us` on the reader's clock, and
    /// returns the rate since the previous reading in GB/s, counting `bytes_per_unit` bytes
    /// for each unit of the counter.
    ///
    /// The first reading has no rate; neither has a reading that is no later than the last one,
    /// on another clock, that changed width, or that went back (see [`growth`]).
    pub fn update(
        &mut self,
        reading: Option<CounterReading>,
        reader_us: u64,
        bytes_per_unit: f64,
    ) -> Option<f64> {
        let now = reading?;
        let stamp = Stamp::of(&now, reader_us);
        let (before, then) = self.last.replace((now, stamp))?;
        let micros = stamp.since(then)?;
        if now.bits != before.bits {
            return None;
        }
        let units = growth(before.value, now.value, now.bits)?;
        Some(units as f64 * bytes_per_unit / (micros as f64 / 1e6) / 1e9)
    }
}

/// A counter NVML may wrap at 32 bits (its PCIe byte counters: "can be wrapped"), kept as a
/// 64-bit total. Read it faster than it can wrap (at PCIe 5.0 x16, 2^32 bytes pass in 68 ms) and
/// each step's growth modulo 2^32 is the true growth, whether the driver's counter is 32 or 64
/// bits wide.
#[derive(Clone, Debug, Default)]
pub struct WrappingTotal {
    last: Option<u64>,
    total: u64,
    stamp: Option<Stamp>,
}

impl WrappingTotal {
    pub fn add(&mut self, reading: Option<CounterReading>, reader_us: u64) {
        let Some(now) = reading else { return };
        if let Some(last) = self.last {
            self.total += now.value.wrapping_sub(last) & u64::from(u32::MAX);
        }
        self.last = Some(now.value);
        self.stamp = Some(Stamp::of(&now, reader_us));
    }

    /// The total so far as a reading (of a counter that never wraps), if there was any.
    pub fn reading(&self) -> Option<(CounterReading, u64)> {
        let stamp = self.stamp?;
        let (at_us, reader_us) = match stamp {
            Stamp::Nvml(t) => (Some(t), 0),
            Stamp::Reader(t) => (None, t),
        };
        Some((
            CounterReading {
                value: self.total,
                bits: 64,
                at_us,
            },
            reader_us,
        ))
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
        Some(CounterReading {
            value,
            bits,
            at_us: Some(at_us),
        })
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
            rate.update(at(0, 64, 1_000_000), 0, 1.0),
            None,
            "first reading"
        );
        // 5 GB in half a second.
        assert_eq!(
            rate.update(at(5_000_000_000, 64, 1_500_000), 0, 1.0),
            Some(10.0)
        );
        assert_eq!(
            rate.update(at(6_000_000_000, 64, 1_500_000), 0, 1.0),
            None,
            "no time passed"
        );
        assert_eq!(rate.update(at(5, 64, 2_000_000), 0, 1.0), None, "reset");
        // After a reset the next interval counts again: 1 GiB (KiB units) over one second.
        let rate_kib = rate.update(at(5 + (1 << 20), 64, 3_000_000), 0, 1024.0);
        assert_eq!(rate_kib, Some(1.073741824));
    }

    #[test]
    fn a_missing_reading_keeps_the_last_one() {
        let mut rate = RateCounter::default();
        rate.update(at(0, 32, 1), 0, 1.0);
        assert_eq!(rate.update(None, 0, 1.0), None);
        assert_eq!(
            rate.update(at(2_000_000_000, 32, 1_000_001), 0, 1.0),
            Some(2.0)
        );
    }

    #[test]
    fn a_32_bit_wrap_gives_the_true_rate() {
        let mut rate = RateCounter::default();
        let near_top = u64::from(u32::MAX) - 999;
        rate.update(at(near_top, 32, 1), 0, 1024.0);
        let gbps = rate.update(at(1_000, 32, 1_000_001), 0, 1024.0).unwrap();
        assert!((gbps - 2_000.0 * 1024.0 / 1e9).abs() < 1e-12, "{gbps}");
    }

    #[test]
    fn a_counter_keeps_one_clock_and_a_reading_on_another_gives_no_rate() {
        let untimed = |value| {
            Some(CounterReading {
                value,
                bits: 64,
                at_us: None,
            })
        };
        let mut rate = RateCounter::default();
        // The driver left the timestamp at zero: the reader's own clock times the counter.
        rate.update(untimed(0), 10_000_000, 1.0);
        assert_eq!(
            rate.update(untimed(1_000_000_000), 11_000_000, 1.0),
            Some(1.0)
        );
        // NVML's wall clock (µs since 1970) against the reader's (µs since it started) would
        // be a difference of decades: no rate, and NVML's clock from here on.
        assert_eq!(
            rate.update(
                at(2_000_000_000, 64, 1_764_000_000_000_000),
                12_000_000,
                1.0
            ),
            None
        );
        assert_eq!(
            rate.update(
                at(3_000_000_000, 64, 1_764_000_001_000_000),
                13_000_000,
                1.0
            ),
            Some(1.0)
        );
    }

    #[test]
    fn a_wrapping_total_read_often_enough_counts_every_byte() {
        let mut total = WrappingTotal::default();
        // 2 GB per read of a counter that wraps at 4 GiB: it wraps every third read.
        let mut counter: u64 = u64::from(u32::MAX) - 1_000;
        for step in 0..10u64 {
            total.add(at(counter % (1 << 32), 64, 1 + step * 50_000), 0);
            counter += 2_000_000_000;
        }
        let (reading, _) = total.reading().unwrap();
        assert_eq!(reading.value, 9 * 2_000_000_000);
        assert_eq!(reading.at_us, Some(1 + 9 * 50_000));
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
