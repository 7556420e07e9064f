//! A simulated machine behind a [`Connection`]: the simulated probe runs the probe's own command
//! loop on one thread and a sampler reads telemetry on another, both paced to the wall clock so
//! the live view shows the simulation at the speed a real machine would run.

use super::{Commands, Connection};
use crate::app::feed::Feed;
use crate::probe::protocol::{Engine, Event, Op, Pair, Settings};
use crate::probe::session::{self, Control, Failure, Finish, Measurer};
use crate::sim::machine::Machine;
use crate::sim::simulation::Simulation;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The simulation shared by the probe thread and the sampler, with the wall-clock start that
/// simulated time follows.
#[derive(Clone)]
struct Shared {
    sim: Arc<Mutex<Simulation>>,
    started: Instant,
}

impl Shared {
    /// Locks the simulation and lets it idle up to the wall clock.
    fn catch_up(&self) -> MutexGuard<'_, Simulation> {
        // A panic on another thread while it held the lock leaves a usable simulation: its
        // state is plain numbers, updated step by step.
        let mut sim = self.sim.lock().unwrap_or_else(|e| e.into_inner());
        let wall = self.started.elapsed().as_secs_f64();
        if wall > sim.now_s() {
            let behind = wall - sim.now_s();
            sim.idle(behind);
        }
        sim
    }

    /// Sleeps until simulated second `at_s` comes round on the wall clock.
    fn wait_until(&self, at_s: f64) {
        let due = self.started + Duration::from_secs_f64(at_s.max(0.0));
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            thread::sleep(left);
        }
    }
}

/// Opens `machine` (named `name` in every screen and report), simulating with `seed` and
/// reading telemetry every `interval`.
pub fn open(machine: Machine, name: &str, seed: u64, interval: Duration) -> Connection {
    let topology = machine.topology();
    let shared = Shared {
        sim: Arc::new(Mutex::new(Simulation::new(machine, seed))),
        started: Instant::now(),
    };
    let (feed_tx, feed) = mpsc::channel();
    let (commands, command_rx) = mpsc::channel();
    let (parsed_tx, parsed_rx) = mpsc::channel();
    // The probe's session reads commands as parsed lines; forward ours as already parsed.
    thread::spawn(move || {
        for command in command_rx {
            if parsed_tx.send(Ok(command)).is_err() {
                break;
            }
        }
    });
    let probe_feed = feed_tx.clone();
    let mut probe = PacedProbe {
        shared: shared.clone(),
    };
    thread::spawn(move || {
        session::run(&mut probe, parsed_rx, &mut |event| {
            let _ = probe_feed.send(Feed::Probe(event.clone()));
        });
    });
    thread::spawn(move || {
        loop {
            let frame = shared.catch_up().telemetry();
            if feed_tx.send(Feed::Telemetry(frame)).is_err() {
                break;
            }
            thread::sleep(interval);
        }
    });
    Connection {
        topology,
        simulated: Some(name.to_owned()),
        feed,
        commands: Commands::Simulated(commands),
    }
}

/// The simulated probe, releasing each event when its simulated moment comes on the wall clock.
struct PacedProbe {
    shared: Shared,
}

/// Holds a measurement's events back until their time comes.
struct Recorder<'a> {
    events: Vec<Event>,
    outer: &'a mut dyn Control,
}

impl Control for Recorder<'_> {
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    fn stop_requested(&mut self) -> bool {
        self.outer.stop_requested()
    }
}

impl PacedProbe {
    /// Runs `measure` on the simulation at once, then releases its events evenly over the
    /// simulated time it took (its samples last about the same), on the wall clock.
    fn paced(
        &mut self,
        control: &mut dyn Control,
        measure: impl FnOnce(&mut Simulation, &mut dyn Control) -> Result<Finish, Failure>,
    ) -> Result<Finish, Failure> {
        let mut sim = self.shared.catch_up();
        let start = sim.now_s();
        let mut recorder = Recorder {
            events: Vec::new(),
            outer: control,
        };
        let result = measure(&mut sim, &mut recorder);
        let end = sim.now_s();
        drop(sim);
        let events = recorder.events;
        let count = events.len().max(1) as f64;
        for (k, event) in events.into_iter().enumerate() {
            self.shared
                .wait_until(start + (end - start) * (k + 1) as f64 / count);
            control.emit(event);
        }
        self.shared.wait_until(end);
        result
    }
}

impl Measurer for PacedProbe {
    fn measure(
        &mut self,
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        self.paced(control, |sim, c| {
            sim.measure(id, pair, op, engine, settings, c)
        })
    }

    fn measure_together(
        &mut self,
        id: u64,
        pairs: &[Pair],
        op: Op,
        engine: Engine,
        settings: &Settings,
        control: &mut dyn Control,
    ) -> Result<Finish, Failure> {
        self.paced(control, |sim, c| {
            sim.measure_together(id, pairs, op, engine, settings, c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::protocol::{Command, Node};

    #[test]
    fn a_simulated_connection_answers_commands_and_sends_telemetry() {
        let machine = crate::sim::load("h100-single").unwrap();
        let conn = open(machine, "h100-single", 1, Duration::from_millis(20));
        assert_eq!(conn.simulated.as_deref(), Some("h100-single"));
        assert!(conn.send(Command::Measure {
            id: 9,
            pairs: vec![Pair {
                src: Node::Host,
                dst: Node::Gpu(0)
            }],
            ops: vec![Op::Read],
            engines: vec![Engine::Ce],
            settings: Settings {
                samples: 2,
                ..Settings::default()
            },
        }));
        let (mut results, mut frames) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match conn.feed.recv_timeout(Duration::from_secs(1)) {
                Ok(Feed::Probe(Event::Result { id: 9, .. })) => results += 1,
                Ok(Feed::Probe(Event::Done { id: 9, complete })) => {
                    assert!(complete);
                    break;
                }
                Ok(Feed::Telemetry(_)) => frames += 1,
                _ => {}
            }
        }
        assert_eq!(results, 1);
        assert!(frames >= 1);
    }
}
