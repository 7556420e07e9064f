//! Latency: a pointer chase through a chain of cache lines in the far end's memory (see
//! `p2ptop::probe::chain` for what the figure means), timed by events around the launch.

use super::{BufferKey, Probe, Role, wait};
use crate::cuda::driver;
use crate::cuda::gpu::CHASE_RESULT_OFFSET;
use p2ptop::probe::chain::Chain;
use p2ptop::probe::plan::Transfer;
use p2ptop::probe::protocol::{Event, Node, Pair, Settings};
use p2ptop::probe::session::{Control, Failure, Finish};
use std::time::Duration;

/// Loads of the untimed walk before the timed one: it maps the chain's pages and clocks the
/// GPU up. The timed walk goes on from where it stopped, so no line is loaded twice.
const WARM_STEPS: u64 = 1_000;
/// A dependent load slower than this is no memory access but a hang.
const SLOWEST_LOAD: Duration = Duration::from_micros(20);

impl Probe {
    pub(super) fn latency(
        &mut self,
        id: u64,
        pair: Pair,
        t: Transfer,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        // The chain lives at the far end from the GPU that follows it, so the chase crosses the
        // path being measured (host → GPU and GPU → host alike); device-local, in its own memory.
        let far = if t.src == Node::Gpu(t.executor) {
            t.dst
        } else {
            t.src
        };
        let l2 = match far {
            Node::Gpu(g) => self.gpu(g).l2_bytes.max(self.gpu(t.executor).l2_bytes),
            Node::Host => self.gpu(t.executor).l2_bytes,
        };
        let steps = settings.latency_steps;
        let lines = WARM_STEPS + steps;
        let region = Chain::region_bytes(lines, l2);
        let key = BufferKey::new(far, Role::Chain, t.executor);
        let base = self.buffer(key, region, id, settings, control)?;
        let chain = Chain::new(base, region, lines, u64::from(self.take_seed()));
        self.buffers[&key].write_words(&chain.words())?;
        let deadline = SLOWEST_LOAD * steps as u32 + Duration::from_secs(1);
        let untimed = Duration::from_millis(settings.sample_timeout_ms);
        control.emit(Event::Progress {
            id,
            step: format!("pointer chase {t}"),
            deadline_ms: (untimed + deadline).as_millis() as u64,
        });
        let gpu = self.gpu(t.executor);
        let lane = &gpu.lanes[0];
        gpu.make_current()?;
        let out = gpu.scratch + CHASE_RESULT_OFFSET;
        let what = format!("the pointer chase {t}");
        // SAFETY (both launches): the chain's slots lie inside the region at `base`, each holding
        // the next slot's address; `out` is the scratch block's chase word.
        unsafe {
            gpu.kernels
                .chase(lane.stream, chain.at(0), WARM_STEPS, out)?
        };
        driver::record(lane.fence, lane.stream)?;
        wait(gpu, lane.fence, untimed, &what)?;
        driver::record(lane.start, lane.stream)?;
        unsafe {
            gpu.kernels
                .chase(lane.stream, chain.at(WARM_STEPS), steps, out)?
        };
        driver::record(lane.end, lane.stream)?;
        wait(gpu, lane.end, deadline, &what)?;
        let seconds = f64::from(driver::elapsed_ms(lane.start, lane.end)?) / 1e3;
        let mut found = [0u64; 1];
        // SAFETY: reads the chase's 8-byte result inside the scratch block; the kernel is done.
        unsafe { driver::copy_from_device(&mut found, out)? };
        control.emit(Event::Latency {
            id,
            pair,
            executor: t.executor,
            steps,
            ns_per_access: seconds * 1e9 / steps as f64,
            chain_ok: found[0] == chain.at(WARM_STEPS + steps),
        });
        Ok(Finish::Complete)
    }
}
