//! A simulated machine behind a [`Connection`]: the simulated probe runs the probe's own command
//! loop on one thread. For the live view it is paced to the wall clock, with a sampler reading
//! telemetry on another thread, so the simulation runs at the speed a real machine would. For
//! headless runs it runs as fast as it can, with a telemetry frame after every measurement.

use super::Connection;
use crate::app::feed::Feed;
use crate::probe::launch::StartError;
use crate::probe::protocol::{Command, Engine, Event, Op, Pair, Settings};
use crate::probe::session::{self, Control, Failure, Finish, Measurer};
use crate::probe::supervisor::{self, Launcher, LineSink, RunningProbe};
use crate::sim::machine::Machine;
use crate::sim::simulation::Simulation;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The simulation shared by the probe thread and the sampler, with the wall-clock start that
/// simulated time follows and how many simulated seconds pass per wall-clock second.
#[derive(Clone)]
struct Shared {
    sim: Arc<Mutex<Simulation>>,
    started: Instant,
    speed: f64,
}

/// The environment variable that runs a wall-clock simulation faster than real time (`20`:
/// twenty simulated seconds per second), so minutes of heat can be watched or tested in
/// seconds. Every screen names the speed beside the machine.
pub const SPEED_VAR: &str = "P2PTOP_SIM_SPEED";

/// The speed `P2PTOP_SIM_SPEED` asks for: a finite number above 0, else real time.
fn speed_from_env() -> f64 {
    std::env::var(SPEED_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

impl Shared {
    /// Locks the simulation and lets it idle up to the wall clock.
    fn catch_up(&self) -> MutexGuard<'_, Simulation> {
        // A panic on another thread while it held the lock leaves a usable simulation: its
        // state is plain numbers, updated step by step.
        let mut sim = self.sim.lock().unwrap_or_else(|e| e.into_inner());
        let wall = self.started.elapsed().as_secs_f64() * self.speed;
        if wall > sim.now_s() {
            let behind = wall - sim.now_s();
            sim.idle(behind);
        }
        sim
    }

    /// Sleeps until simulated second `at_s` comes round on the wall clock.
    fn wait_until(&self, at_s: f64) {
        let due = self.started + Duration::from_secs_f64(at_s.max(0.0) / self.speed);
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            thread::sleep(left);
        }
    }
}

/// How simulated time relates to the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Events arrive when a real machine would send them; telemetry every interval.
    WallClock { telemetry: Duration },
    /// Events arrive at once; a telemetry frame follows every measurement.
    Instant,
}

/// Opens `machine` (named `name` in every screen and report), simulating with `seed`. The
/// simulated probe runs under the same supervisor as the real one, so a simulated hang is
/// reported, left out and restarted from exactly as a real one.
pub fn open(machine: Machine, name: &str, seed: u64, pacing: Pacing) -> Connection {
    let topology = machine.topology();
    let hello = machine.hello().to_line();
    let speed = match pacing {
        Pacing::WallClock { .. } => speed_from_env(),
        Pacing::Instant => 1.0,
    };
    let shared = Shared {
        sim: Arc::new(Mutex::new(Simulation::new(machine, seed))),
        started: Instant::now(),
        speed,
    };
    let (feed_tx, feed) = mpsc::channel();
    let launcher = Launch {
        shared: shared.clone(),
        hello,
        frames: match pacing {
            Pacing::WallClock { .. } => None,
            Pacing::Instant => Some(feed_tx.clone()),
        },
    };
    // The simulated probe needs no driver: it always greets, so starting cannot fail.
    let (supervisor, _) =
        supervisor::start_with(launcher, feed_tx.clone()).expect("a simulated probe always starts");
    if let Pacing::WallClock { telemetry } = pacing {
        thread::spawn(move || {
            loop {
                let frame = shared.catch_up().telemetry();
                if feed_tx.send(Feed::Telemetry(frame)).is_err() {
                    break;
                }
                thread::sleep(telemetry);
            }
        });
    }
    let simulated = if speed == 1.0 {
        name.to_owned()
    } else {
        format!("{name} at {speed}× time")
    };
    Connection {
        topology,
        simulated: Some(simulated),
        feed,
        commands: supervisor,
    }
}

/// Starts simulated probes: a thread running the probe's command loop on the shared
/// simulation, speaking the protocol's lines.
struct Launch {
    shared: Shared,
    hello: String,
    frames: Option<mpsc::Sender<Feed>>,
}

impl Launcher for Launch {
    fn launch(&self, output: LineSink) -> Result<Box<dyn RunningProbe>, StartError> {
        let (commands, rx) = mpsc::channel();
        let mut probe = PacedProbe {
            shared: self.shared.clone(),
            frames: self.frames.clone(),
        };
        let hello = self.hello.clone();
        thread::spawn(move || {
            if output.line(hello) {
                session::run(&mut probe, rx, &mut |event| {
                    output.line(event.to_line());
                });
            }
            output.end();
        });
        Ok(Box::new(Running {
            commands: Some(commands),
        }))
    }
}

/// A running simulated probe: its command queue.
struct Running {
    commands: Option<mpsc::Sender<Result<Command, String>>>,
}

impl RunningProbe for Running {
    fn send(&mut self, command: &Command) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|c| c.send(Ok(command.clone())).is_ok())
    }

    fn kill(&mut self) {
        // Closing its input ends the loop after the current measurement; later lines carry an
        // old generation and are ignored.
        self.commands = None;
    }

    fn exit_text(&mut self) -> String {
        "the simulated probe ended".into()
    }

    fn stderr_text(&self) -> String {
        String::new()
    }
}

/// The simulated probe, releasing each event when its simulated moment comes on the wall clock,
/// or at once with a telemetry frame after each measurement (`frames`).
struct PacedProbe {
    shared: Shared,
    frames: Option<std::sync::mpsc::Sender<Feed>>,
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
        if let Some(frames) = &self.frames {
            let mut sim = self.shared.sim.lock().unwrap_or_else(|e| e.into_inner());
            let result = measure(&mut sim, control);
            let _ = frames.send(Feed::Telemetry(sim.telemetry()));
            return result;
        }
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
        let conn = open(
            machine,
            "h100-single",
            1,
            Pacing::WallClock {
                telemetry: Duration::from_millis(20),
            },
        );
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
