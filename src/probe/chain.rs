//! The address chain the latency kernel (`ptx/chase.ptx`) follows.
//!
//! The figure it gives is **memory latency**: the time of one dependent load that misses every
//! cache. So each load goes to a line (128 B, the L2's line) no load of the walk touched before,
//! and the lines are spread over a region at least twice the L2 cache, so no earlier walk leaves
//! them cached either. Loads stay within one page (2 MiB, the GPU's large page) for many steps
//! before moving to the next, so the walk measures memory, not page-table walks. Within a page
//! the lines come in random order, and each slot holds the absolute address of the next, so each
//! load depends on the one before and no prefetcher can guess the next address.

/// Bytes of one cache line: one slot of the chain per line.
pub const LINE_BYTES: u64 = 128;
/// Bytes of one page: the walk stays in a page for many loads.
pub const PAGE_BYTES: u64 = 2 << 20;

/// A walk laid out for memory that starts at `base`.
pub struct Chain {
    base: u64,
    region_bytes: u64,
    /// Byte offsets of the walk's slots in visit order; the last points back to the first.
    order: Vec<u64>,
}

impl Chain {
    /// The region a walk of `lines` loads needs on a GPU with `l2_bytes` of L2: at least twice
    /// the L2, and room enough that the lines stay sparse, in whole pages.
    pub fn region_bytes(lines: u64, l2_bytes: u64) -> u64 {
        (2 * l2_bytes)
            .max(4 * lines * LINE_BYTES)
            .max(PAGE_BYTES)
            .next_multiple_of(PAGE_BYTES)
    }

    /// A walk of `lines` distinct lines over `region_bytes` (whole pages) at `base`.
    pub fn new(base: u64, region_bytes: u64, lines: u64, seed: u64) -> Chain {
        assert!(
            region_bytes.is_multiple_of(PAGE_BYTES) && region_bytes > 0,
            "the region is whole pages"
        );
        let pages = region_bytes / PAGE_BYTES;
        let lines_per_page = PAGE_BYTES / LINE_BYTES;
        assert!(
            lines.max(1) <= pages * lines_per_page,
            "{lines} lines do not fit in {region_bytes} bytes"
        );
        let mut rng = SplitMix64(seed);
        let mut page_order: Vec<u64> = (0..pages).collect();
        shuffle(&mut page_order, &mut rng);
        let per_page = lines.max(1).div_ceil(pages);
        let mut order = Vec::with_capacity(lines as usize);
        let mut line_order: Vec<u64> = (0..lines_per_page).collect();
        for page in page_order {
            let left = lines.max(1) - order.len() as u64;
            if left == 0 {
                break;
            }
            shuffle(&mut line_order, &mut rng);
            for &line in line_order.iter().take(per_page.min(left) as usize) {
                order.push(page * PAGE_BYTES + line * LINE_BYTES);
            }
        }
        Chain {
            base,
            region_bytes,
            order,
        }
    }

    /// Loads in one lap of the walk.
    pub fn lines(&self) -> u64 {
        self.order.len() as u64
    }

    /// The region's contents as 64-bit words, ready to copy to `base`: each slot holds the
    /// address of the next, everything else zero.
    pub fn words(&self) -> Vec<u64> {
        let mut words = vec![0u64; (self.region_bytes / 8) as usize];
        for (i, &slot) in self.order.iter().enumerate() {
            let next = self.order[(i + 1) % self.order.len()];
            words[(slot / 8) as usize] = self.base + next;
        }
        words
    }

    /// The address the walk is at after `steps` loads from its start.
    pub fn at(&self, steps: u64) -> u64 {
        self.base + self.order[(steps % self.order.len() as u64) as usize]
    }
}

fn shuffle(items: &mut [u64], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
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
    use std::collections::HashSet;

    const BASE: u64 = 0x7000_0000;

    fn follow(chain: &Chain, words: &[u64], steps: u64) -> Vec<u64> {
        let mut at = chain.at(0);
        let mut seen = vec![at];
        for _ in 0..steps {
            at = words[((at - BASE) / 8) as usize];
            seen.push(at);
        }
        seen
    }

    #[test]
    fn the_region_is_at_least_twice_the_l2_in_whole_pages() {
        let h100_l2 = 50 << 20;
        assert_eq!(Chain::region_bytes(100_000, h100_l2), 100 << 20);
        assert!(Chain::region_bytes(10_000_000, h100_l2) >= 4 * 10_000_000 * LINE_BYTES);
        assert_eq!(Chain::region_bytes(10, 0), PAGE_BYTES);
    }

    #[test]
    fn every_line_is_loaded_once_per_lap_and_the_lap_closes() {
        let lines = 5_000;
        let chain = Chain::new(BASE, Chain::region_bytes(lines, 8 << 20), lines, 1);
        let words = chain.words();
        let walk = follow(&chain, &words, lines);
        let distinct: HashSet<u64> = walk[..lines as usize].iter().copied().collect();
        assert_eq!(
            distinct.len() as u64,
            lines,
            "a line loaded twice in one lap"
        );
        assert_eq!(
            walk[lines as usize],
            chain.at(0),
            "the lap returns to the start"
        );
        for (steps, address) in walk.iter().enumerate() {
            assert_eq!(*address, chain.at(steps as u64));
            assert_eq!((address - BASE) % LINE_BYTES, 0, "slots are line-aligned");
        }
    }

    #[test]
    fn the_walk_spreads_over_every_page_and_stays_in_each_for_many_loads() {
        let lines = 6_400;
        let region = Chain::region_bytes(lines, 50 << 20);
        let chain = Chain::new(BASE, region, lines, 7);
        let pages: Vec<u64> = (0..lines)
            .map(|s| (chain.at(s) - BASE) / PAGE_BYTES)
            .collect();
        let visited: HashSet<u64> = pages.iter().copied().collect();
        assert_eq!(
            visited.len() as u64,
            region / PAGE_BYTES,
            "every page is used"
        );
        let page_changes = pages.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(page_changes + 1, visited.len(), "each page is entered once");
        let neighbours = (0..lines - 1)
            .filter(|&s| chain.at(s + 1) == chain.at(s) + LINE_BYTES)
            .count();
        assert!(
            neighbours < 100,
            "{neighbours} of {lines} loads go to the next line"
        );
    }

    #[test]
    fn the_layout_is_seeded() {
        let a = Chain::new(BASE, 4 * PAGE_BYTES, 1000, 1);
        let b = Chain::new(BASE, 4 * PAGE_BYTES, 1000, 1);
        let c = Chain::new(BASE, 4 * PAGE_BYTES, 1000, 2);
        assert_eq!(a.order, b.order);
        assert_ne!(a.order, c.order);
    }
}
