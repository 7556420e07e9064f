//! Which blocks of which kernels are resident on a GPU's SMs.
//!
//! A block occupies registers (allocated per warp, in units of 256), threads (whole warps) and a
//! block slot on one SM until its kernel ends. A launch starts when all its blocks fit beside the
//! kernels already running, as a kernel whose blocks cannot get an SM waits on hardware; a launch
//! larger than the whole GPU runs in waves, so it starts once the GPU is otherwise idle. Two
//! full-grid copy kernels on one GPU therefore run one after the other, while grids sized to
//! share the SMs run side by side.

/// Registers per SM on every GPU p2ptop supports (Pascal to Blackwell).
const REGISTERS_PER_SM: u32 = 65_536;
const REGISTER_UNIT: u32 = 256;
const WARP: u32 = 32;

/// What one SM can hold at once, by compute capability (CUDA's occupancy tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmLimits {
    pub threads: u32,
    pub blocks: u32,
    pub registers: u32,
}

impl SmLimits {
    pub fn for_capability(major: u32, minor: u32) -> SmLimits {
        let (threads, blocks) = match (major, minor) {
            (7, 5) => (1024, 16),
            (8, 6) | (8, 7) => (1536, 16),
            (8, 9) => (1536, 24),
            (12, _) => (1536, 32),
            _ => (2048, 32),
        };
        SmLimits {
            threads,
            blocks,
            registers: REGISTERS_PER_SM,
        }
    }
}

/// What one block of a launch needs on its SM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockNeeds {
    pub threads: u32,
    pub registers: u32,
}

impl BlockNeeds {
    pub fn new(threads_per_block: u32, registers_per_thread: u32) -> BlockNeeds {
        let warps = threads_per_block.div_ceil(WARP);
        let per_warp = (registers_per_thread * WARP).next_multiple_of(REGISTER_UNIT);
        BlockNeeds {
            threads: warps * WARP,
            registers: warps * per_warp,
        }
    }

    /// How many such blocks one empty SM holds.
    pub fn per_sm(self, limits: SmLimits) -> u32 {
        (limits.threads / self.threads.max(1))
            .min(limits.blocks)
            .min(limits.registers / self.registers.max(1))
    }
}

/// One SM's free resources.
#[derive(Clone, Copy, Debug)]
struct Free {
    threads: u32,
    blocks: u32,
    registers: u32,
}

/// Blocks a launch holds, per SM, to give back when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    blocks: Vec<(usize, u32)>,
    needs: BlockNeeds,
}

/// A GPU's SMs.
pub struct Sms {
    limits: SmLimits,
    free: Vec<Free>,
    /// Launches running now.
    running: usize,
    /// Where the next placement starts looking, so blocks spread like the hardware's.
    cursor: usize,
}

impl Sms {
    pub fn new(count: u32, limits: SmLimits) -> Sms {
        Sms {
            limits,
            free: vec![
                Free {
                    threads: limits.threads,
                    blocks: limits.blocks,
                    registers: limits.registers,
                };
                count as usize
            ],
            running: 0,
            cursor: 0,
        }
    }

    /// Places `blocks` blocks of `needs`, or says no (nothing changes) when they do not all fit.
    pub fn place(&mut self, blocks: u32, needs: BlockNeeds) -> Option<Placement> {
        let whole_gpu = needs.per_sm(self.limits) as u64 * self.free.len() as u64;
        if u64::from(blocks) > whole_gpu {
            // More than the GPU ever holds: it runs in waves, over the whole GPU, alone.
            if self.running > 0 {
                return None;
            }
            let all = self.take_everything(needs);
            self.running += 1;
            return Some(all);
        }
        let mut placed = Vec::new();
        let mut left = blocks;
        let count = self.free.len();
        for step in 0..count {
            if left == 0 {
                break;
            }
            let sm = (self.cursor + step) % count;
            let f = self.free[sm];
            let fits = (f.threads / needs.threads.max(1))
                .min(f.blocks)
                .min(f.registers / needs.registers.max(1));
            // Round-robin, one block per SM per pass, as the block scheduler spreads a grid.
            let take = fits.min(left.div_ceil(count as u32)).min(left);
            if take > 0 {
                placed.push((sm, take));
                left -= take;
            }
        }
        // A second pass packs what the first spread could not.
        for sm in 0..count {
            if left == 0 {
                break;
            }
            let already = placed.iter().find(|(s, _)| *s == sm).map_or(0, |(_, n)| *n);
            let f = self.free[sm];
            let fits = ((f.threads / needs.threads.max(1))
                .min(f.blocks)
                .min(f.registers / needs.registers.max(1)))
            .saturating_sub(already);
            let take = fits.min(left);
            if take > 0 {
                match placed.iter_mut().find(|(s, _)| *s == sm) {
                    Some((_, n)) => *n += take,
                    None => placed.push((sm, take)),
                }
                left -= take;
            }
        }
        if left > 0 {
            return None;
        }
        for &(sm, n) in &placed {
            let f = &mut self.free[sm];
            f.threads -= n * needs.threads;
            f.blocks -= n;
            f.registers -= n * needs.registers;
        }
        self.cursor = (self.cursor + blocks as usize) % count.max(1);
        self.running += 1;
        Some(Placement {
            blocks: placed,
            needs,
        })
    }

    fn take_everything(&mut self, needs: BlockNeeds) -> Placement {
        let per_sm = needs.per_sm(self.limits);
        let blocks: Vec<(usize, u32)> = (0..self.free.len()).map(|sm| (sm, per_sm)).collect();
        for &(sm, n) in &blocks {
            let f = &mut self.free[sm];
            f.threads -= n * needs.threads;
            f.blocks -= n;
            f.registers -= n * needs.registers;
        }
        Placement { blocks, needs }
    }

    /// Gives a finished launch's blocks back.
    pub fn release(&mut self, placement: &Placement) {
        for &(sm, n) in &placement.blocks {
            let f = &mut self.free[sm];
            f.threads += n * placement.needs.threads;
            f.blocks += n;
            f.registers += n * placement.needs.registers;
        }
        self.running -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> Sms {
        Sms::new(132, SmLimits::for_capability(9, 0))
    }

    #[test]
    fn two_full_grid_copies_do_not_share_a_gpu_but_split_grids_do() {
        // The copy kernel: 48 registers at 512 threads, 2 blocks per SM.
        let copy = BlockNeeds::new(512, 48);
        assert_eq!(copy.registers, 24_576);
        let mut sms = h100();
        let first = sms.place(264, copy).expect("the first full grid fits");
        assert!(
            sms.place(264, copy).is_none(),
            "a second full grid must wait"
        );
        sms.release(&first);
        assert!(
            sms.place(264, copy).is_some(),
            "it starts once the first ends"
        );
        let mut sms = h100();
        assert!(sms.place(132, copy).is_some());
        assert!(
            sms.place(132, copy).is_some(),
            "two half grids run side by side"
        );
        assert!(sms.place(1, copy).is_none(), "and fill the GPU");
    }

    #[test]
    fn a_gate_fits_beside_a_full_grid_and_a_huge_grid_runs_in_waves() {
        let mut sms = h100();
        let gate = BlockNeeds::new(1, 10);
        assert_eq!(gate.threads, 32, "a block takes whole warps");
        let g = sms.place(1, gate).unwrap();
        assert!(sms.place(264, BlockNeeds::new(512, 48)).is_some());
        sms.release(&g);
        let mut sms = h100();
        let copy = BlockNeeds::new(512, 48);
        let huge = sms
            .place(100_000, copy)
            .expect("waves start on an idle GPU");
        assert!(sms.place(1, copy).is_none(), "its waves fill every SM");
        assert!(
            sms.place(1, gate).is_some(),
            "a small block still fits in what is left"
        );
        sms.release(&huge);
        assert!(sms.place(264, copy).is_some());
    }
}
