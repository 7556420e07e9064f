//! The address chain the latency kernel (`ptx/chase.ptx`) follows.
//!
//! Slots `stride` bytes apart each hold the absolute address of the next slot, in a random order
//! that forms one cycle through every slot, so each load depends on the previous one and neither
//! caches nor prefetchers can guess the next address.

/// A chain laid out for memory that starts at `base`.
pub struct Chain {
    /// The region's contents as 64-bit words, ready to copy to `base`.
    pub words: Vec<u64>,
    /// Address of the first slot: where the chase starts.
    pub start: u64,
    stride: u64,
    /// Slot indices in the order the chase visits them, starting with slot 0.
    order: Vec<u64>,
}

impl Chain {
    /// A chain over `region_bytes` at `base`, one slot every `stride` bytes (a multiple of 8).
    pub fn new(base: u64, region_bytes: u64, stride: u64, seed: u64) -> Chain {
        assert!(
            stride >= 8 && stride.is_multiple_of(8),
            "stride must be a multiple of 8"
        );
        let slots = (region_bytes / stride).max(1);
        let mut order: Vec<u64> = (0..slots).collect();
        let mut rng = SplitMix64(seed);
        // Fisher–Yates over every slot but the first, so the walk starts at `base`.
        for i in (2..slots as usize).rev() {
            let j = 1 + (rng.next() % i as u64) as usize;
            order.swap(i, j);
        }
        let words_per_slot = (stride / 8) as usize;
        let mut words = vec![0u64; slots as usize * words_per_slot];
        for (i, &slot) in order.iter().enumerate() {
            let next = order[(i + 1) % order.len()];
            words[slot as usize * words_per_slot] = base + next * stride;
        }
        Chain {
            words,
            start: base,
            stride,
            order,
        }
    }

    /// The address a chase from `start` reaches after `steps` loads.
    pub fn end_after(&self, steps: u64) -> u64 {
        let slot = self.order[(steps % self.order.len() as u64) as usize];
        self.start + slot * self.stride
    }
}

/// A tiny, well-known generator: enough to scatter slots, no dependency needed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x7000_0000;

    fn follow(chain: &Chain, steps: u64) -> u64 {
        let mut at = chain.start;
        for _ in 0..steps {
            at = chain.words[((at - BASE) / 8) as usize];
        }
        at
    }

    #[test]
    fn the_chain_is_one_cycle_through_every_slot() {
        let chain = Chain::new(BASE, 64 * 256, 256, 1);
        let mut seen = std::collections::HashSet::new();
        let mut at = chain.start;
        for _ in 0..64 {
            assert!(seen.insert(at), "slot {at:#x} visited twice");
            at = chain.words[((at - BASE) / 8) as usize];
        }
        assert_eq!(at, chain.start, "64 steps return to the start");
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn end_after_matches_walking_the_chain() {
        let chain = Chain::new(BASE, 1000 * 64, 64, 42);
        for steps in [0, 1, 2, 999, 1000, 1001, 12_345] {
            assert_eq!(
                chain.end_after(steps),
                follow(&chain, steps),
                "steps {steps}"
            );
        }
    }

    #[test]
    fn the_order_is_scrambled_and_seeded() {
        let a = Chain::new(BASE, 4096 * 8, 8, 1);
        let b = Chain::new(BASE, 4096 * 8, 8, 1);
        let c = Chain::new(BASE, 4096 * 8, 8, 2);
        assert_eq!(a.words, b.words);
        assert_ne!(a.words, c.words);
        let sequential = (0..100)
            .filter(|&i| a.order[i + 1] == a.order[i] + 1)
            .count();
        assert!(
            sequential < 5,
            "{sequential} of 100 steps go to the next slot"
        );
    }
}
