//! Latency: a pointer chase through a random chain in the source's memory.

use super::{Probe, Role, wait};
use crate::cuda::driver;
use crate::cuda::gpu::CHASE_RESULT_OFFSET;
use p2ptop::probe::chain::Chain;
use p2ptop::probe::plan::Transfer;
use p2ptop::probe::protocol::{Event, Node, Pair, Settings};
use p2ptop::probe::session::{Control, Failure, Finish};

/// The latency chain spans at most this much memory (more than any GPU's L2 cache), one slot per
/// page-sized stride so each step is a fresh cache line.
const CHASE_REGION_BYTES: u64 = 128 << 20;
const CHASE_STRIDE: u64 = 4096;

impl Probe {
    pub(super) fn latency(
        &mut self,
        id: u64,
        pair: Pair,
        t: Transfer,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        let bytes = settings.buffer_mib << 20;
        let region = bytes.min(CHASE_REGION_BYTES);
        // The chain lives at the far end from the GPU that follows it, so the chase crosses the
        // path being measured (host → GPU and GPU → host alike); device-local, in its own memory.
        let far = if t.src == Node::Gpu(t.executor) {
            t.dst
        } else {
            t.src
        };
        let base = self.buffer(far, Role::Source, bytes)?;
        let seed = self.take_seed();
        let chain = Chain::new(base, region, CHASE_STRIDE, seed as u64);
        self.buffers[&(far, Role::Source)].write_words(&chain.words)?;
        let gpu = self.gpu(t.executor);
        let lane = &gpu.lanes[0];
        gpu.make_current()?;
        let out = gpu.scratch + CHASE_RESULT_OFFSET;
        // A short walk first, so the timed one finds the chain's pages mapped.
        for steps in [1_000u64.min(settings.latency_steps), settings.latency_steps] {
            // SAFETY: the chain starts at `base` and stays inside the region; `out` is scratch.
            unsafe { gpu.kernels.chase(lane.stream, chain.start, steps, out)? };
            driver::record(lane.fence, lane.stream)?;
            wait(gpu, lane.fence, settings, &format!("the pointer chase {t}"))?;
        }
        let mut found = [0u64; 2];
        // SAFETY: reads the 16-byte chase result inside the scratch block.
        unsafe { driver::copy_from_device(&mut found, out)? };
        control.emit(Event::Latency {
            id,
            pair,
            executor: t.executor,
            steps: settings.latency_steps,
            ns_per_access: found[1] as f64 / settings.latency_steps.max(1) as f64,
            chain_ok: found[0] == chain.end_after(settings.latency_steps),
        });
        Ok(Finish::Complete)
    }
}
