//! The supervisor loop: one task owns the state of all three daemons. Child exits, readiness,
//! timers and control requests reach it as messages; it starts, stops and restarts processes
//! and keeps systemd informed. Nothing else touches a child.

use super::backoff::Backoff;
use super::component::{Component, Snapshot, State};
use super::notify::Notifier;
use super::spawn::{self, Binaries};
use super::{Timing, probe};
use hp_cfg::ContractDir;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A request from the control socket.
#[derive(Debug)]
pub enum Request {
    /// Each component's pid, state and restart count, in the order userd, consensusd, execd.
    Status(oneshot::Sender<Vec<Snapshot>>),
    /// Stop the component (SIGTERM, SIGKILL after a grace) and start it again; answered once
    /// the new process has been started.
    Restart(Component, oneshot::Sender<Result<(), RestartError>>),
}

/// Why a requested restart did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestartError {
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("{component} could not be started: {reason}")]
    StartFailed { component: Component, reason: String },
}

/// What the helper tasks report. `generation` tells a message about the current process of a
/// component from a late one about a process that is already gone.
#[derive(Debug)]
enum Event {
    Exited { component: Component, generation: u64, status: std::io::Result<ExitStatus> },
    Ready { component: Component, generation: u64 },
    BackoffDone { component: Component, generation: u64 },
    GraceOver { component: Component, generation: u64 },
}

/// A running process of a component.
#[derive(Debug)]
struct Live {
    pid: u32,
    started: Instant,
    /// The readiness probe; aborted when the process exits.
    probe: JoinHandle<()>,
}

/// Everything the supervisor knows about one component.
#[derive(Debug)]
struct Slot {
    component: Component,
    state: State,
    restarts: u32,
    /// Bumped at every start; events of older processes are ignored.
    generation: u64,
    child: Option<Live>,
    backoff: Backoff,
    /// A `Restart` request stopped the process: start it again at once when it exits.
    restart_requested: bool,
    /// `Restart` callers waiting for the new process.
    waiters: Vec<oneshot::Sender<Result<(), RestartError>>>,
}

impl Slot {
    fn new(component: Component) -> Self {
        Self {
            component,
            state: State::Starting,
            restarts: 0,
            generation: 0,
            child: None,
            backoff: Backoff::default(),
            restart_requested: false,
            waiters: Vec::new(),
        }
    }

    fn answer_waiters(&mut self, result: Result<(), RestartError>) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }
}

fn send_signal(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let _ = kill(Pid::from_raw(raw), signal);
}

/// SIGKILL for the process and its whole group (it leads one of its own).
fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
}

/// How a process ended, for the log.
fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => {
                let name = Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("unknown signal");
                format!("signal {signal} ({name})")
            }
            _ => s.to_string(),
        },
        Err(error) => format!("wait failed: {error}"),
    }
}

/// The supervisor's state and the channels into it.
pub struct Node {
    dir: ContractDir,
    binaries: Binaries,
    env: Vec<(OsString, OsString)>,
    timing: Timing,
    slots: [Slot; 3],
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    requests: mpsc::Receiver<Request>,
    notifier: Notifier,
    stopping: bool,
}

impl Node {
    pub fn new(
        dir: ContractDir,
        binaries: Binaries,
        env: Vec<(OsString, OsString)>,
        timing: Timing,
        requests: mpsc::Receiver<Request>,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Self {
            dir,
            binaries,
            env,
            timing,
            slots: Component::STOP_ORDER.map(Slot::new),
            events_tx,
            events,
            requests,
            notifier: Notifier::default(),
            stopping: false,
        }
    }

    fn slot(&mut self, component: Component) -> &mut Slot {
        &mut self.slots[component.index()]
    }

    /// Starts the daemons and supervises them until `shutdown`, then stops them in order.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if shutdown.is_cancelled() {
            return;
        }
        for component in Component::START_ORDER {
            self.start(component);
        }
        self.report();
        let mut watchdog = Notifier::watchdog_interval().map(|period| {
            tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog enabled");
            let mut interval = tokio::time::interval(period);
            // After a stall, one ping when the loop turns again, not a burst of catch-up pings.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(event) = self.events.recv() => self.on_event(event),
                Some(request) = self.requests.recv() => self.on_request(request),
                // Pinged from this loop, so systemd only hears from a supervisor that still
                // turns: a hung loop stops the pings and systemd restarts the node.
                _ = tick(&mut watchdog) => self.notifier.watchdog(),
            }
            self.report();
        }
        self.shutdown().await;
    }

    /// Starts a new process of `component`; on failure schedules the next try with backoff.
    fn start(&mut self, component: Component) {
        let dir = self.dir.clone();
        // A socket left by a killed process must not answer for the new one. Removed before the
        // start: the new process may bind its socket before `spawn` even returns.
        let _ = std::fs::remove_file(dir.socket(component.name()));
        let started = spawn::start(&self.binaries, component, &dir, &self.env);
        let events = self.events_tx.clone();
        let slot = self.slot(component);
        slot.generation += 1;
        let generation = slot.generation;
        match started {
            Ok((mut child, pid)) => {
                spawn::write_pid_file(&dir, component, pid);
                let exits = events.clone();
                tokio::spawn(async move {
                    let status = child.wait().await;
                    let _ = exits.send(Event::Exited { component, generation, status });
                });
                let probe = tokio::spawn(async move {
                    probe::wait_ready(&dir, component).await;
                    let _ = events.send(Event::Ready { component, generation });
                });
                slot.child = Some(Live { pid, started: Instant::now(), probe });
                slot.state = State::Starting;
                tracing::info!(component = component.name(), pid, restarts = slot.restarts, "started");
                slot.answer_waiters(Ok(()));
            }
            Err(error) => {
                tracing::error!(component = component.name(), %error, "cannot start");
                slot.answer_waiters(Err(RestartError::StartFailed { component, reason: error.to_string() }));
                slot.restarts += 1;
                let delay = slot.backoff.on_exit(Duration::ZERO);
                slot.state = State::Restarting;
                self.schedule(delay, Event::BackoffDone { component, generation });
            }
        }
    }

    fn schedule(&self, delay: Duration, event: Event) {
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(event);
        });
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited { component, generation, status } => self.on_exit(component, generation, status),
            Event::Ready { component, generation } => {
                let slot = self.slot(component);
                if slot.generation != generation || slot.state != State::Starting {
                    return;
                }
                let Some(live) = &slot.child else { return };
                slot.state = State::Running;
                let startup_ms = live.started.elapsed().as_millis() as u64;
                tracing::info!(component = component.name(), pid = live.pid, startup_ms, "running");
            }
            Event::BackoffDone { component, generation } => {
                let stopping = self.stopping;
                let slot = self.slot(component);
                if !stopping && slot.generation == generation && slot.child.is_none() {
                    self.start(component);
                }
            }
            Event::GraceOver { component, generation } => {
                let slot = self.slot(component);
                if slot.generation != generation || !slot.restart_requested {
                    return;
                }
                if let Some(live) = &slot.child {
                    tracing::warn!(component = component.name(), pid = live.pid, "did not stop after SIGTERM; killing");
                    kill_group(live.pid);
                }
            }
        }
    }

    fn on_exit(&mut self, component: Component, generation: u64, status: std::io::Result<ExitStatus>) {
        let stopping = self.stopping;
        let dir = self.dir.clone();
        let slot = self.slot(component);
        if slot.generation != generation {
            return;
        }
        let Some(live) = slot.child.take() else { return };
        live.probe.abort();
        spawn::remove_pid_file(&dir, component);
        let ran_for = live.started.elapsed();
        let how = describe(&status);
        if stopping {
            slot.state = State::Stopped;
            tracing::info!(component = component.name(), pid = live.pid, status = %how, "stopped");
            return;
        }
        slot.restarts += 1;
        if slot.restart_requested {
            slot.restart_requested = false;
            tracing::info!(component = component.name(), pid = live.pid, status = %how, restarts = slot.restarts, "restarting on request");
            self.start(component);
            return;
        }
        let delay = slot.backoff.on_exit(ran_for);
        slot.state = State::Restarting;
        let (name, pid, restarts) = (component.name(), live.pid, slot.restarts);
        let (delay_ms, ran_ms) = (delay.as_millis() as u64, ran_for.as_millis() as u64);
        if slot.backoff.in_crash_loop() {
            let quick_exits = slot.backoff.quick_exits();
            tracing::warn!(component = name, pid, status = %how, restarts, delay_ms, ran_ms, quick_exits,
                "crash loop: restarting with backoff");
        } else {
            tracing::warn!(component = name, pid, status = %how, restarts, delay_ms, ran_ms, "exited; restarting");
        }
        self.schedule(delay, Event::BackoffDone { component, generation });
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Status(reply) => {
                let _ = reply.send(self.snapshots());
            }
            Request::Restart(component, reply) => {
                if self.stopping {
                    let _ = reply.send(Err(RestartError::ShuttingDown));
                    return;
                }
                let grace = self.timing.restart_grace;
                let slot = self.slot(component);
                slot.waiters.push(reply);
                match &slot.child {
                    Some(live) if !slot.restart_requested => {
                        tracing::info!(
                            component = component.name(),
                            pid = live.pid,
                            "restart requested; sending SIGTERM"
                        );
                        slot.restart_requested = true;
                        slot.state = State::Restarting;
                        send_signal(live.pid, Signal::SIGTERM);
                        let generation = slot.generation;
                        self.schedule(grace, Event::GraceOver { component, generation });
                    }
                    // Already being stopped on request: the waiter hears when it is back.
                    Some(_) => {}
                    // Waiting out a backoff: start it now.
                    None => {
                        tracing::info!(component = component.name(), "restart requested; starting now");
                        self.start(component);
                    }
                }
            }
        }
    }

    fn snapshots(&self) -> Vec<Snapshot> {
        self.slots
            .iter()
            .map(|s| Snapshot {
                component: s.component,
                pid: s.child.as_ref().map_or(0, |l| l.pid),
                state: s.state,
                restarts: s.restarts,
            })
            .collect()
    }

    /// Sends systemd the node's state line, and READY=1 the first time all three run.
    fn report(&mut self) {
        if self.stopping {
            return;
        }
        let line = status_line(&self.snapshots());
        let all_running = self.slots.iter().all(|s| s.state == State::Running);
        self.notifier.update(&line, all_running);
    }

    /// Stops the daemons: SIGTERM in the order userd → consensusd → execd, each given a step to
    /// exit before the next is asked; whatever still runs when the total budget is spent gets
    /// SIGKILL with its whole process group.
    async fn shutdown(&mut self) {
        self.stopping = true;
        self.notifier.stopping();
        tracing::info!("stopping daemons");
        let deadline = Instant::now() + self.timing.shutdown_total;
        for slot in &mut self.slots {
            slot.answer_waiters(Err(RestartError::ShuttingDown));
            if slot.child.is_none() {
                slot.state = State::Stopped;
            }
        }
        for component in Component::STOP_ORDER {
            let slot = self.slot(component);
            let Some(live) = &slot.child else { continue };
            tracing::info!(component = component.name(), pid = live.pid, "sending SIGTERM");
            send_signal(live.pid, Signal::SIGTERM);
            let step_end = (Instant::now() + self.timing.shutdown_step).min(deadline);
            self.wait_until(step_end, |node| node.slot(component).child.is_none()).await;
        }
        self.wait_until(deadline, Node::all_stopped).await;
        for slot in &self.slots {
            if let Some(live) = &slot.child {
                tracing::warn!(
                    component = slot.component.name(),
                    pid = live.pid,
                    "still running after SIGTERM; killing"
                );
                kill_group(live.pid);
            }
        }
        let reaped_by = Instant::now() + self.timing.reap_after_kill;
        self.wait_until(reaped_by, Node::all_stopped).await;
        for slot in &self.slots {
            if let Some(live) = &slot.child {
                tracing::error!(component = slot.component.name(), pid = live.pid, "could not be reaped after SIGKILL");
            }
        }
    }

    fn all_stopped(&mut self) -> bool {
        self.slots.iter().all(|s| s.child.is_none())
    }

    /// Handles events and requests until `done` holds or `deadline` passes.
    async fn wait_until(&mut self, deadline: Instant, mut done: impl FnMut(&mut Self) -> bool) {
        while !done(self) {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                Some(event) = self.events.recv() => self.on_event(event),
                Some(request) = self.requests.recv() => self.on_request(request),
            }
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The one-line summary systemd shows (`systemctl status`), e.g.
/// `userd running (pid 12), consensusd running (pid 13), execd restarting (3 restarts)`.
pub fn status_line(snapshots: &[Snapshot]) -> String {
    snapshots
        .iter()
        .map(|s| {
            let mut part = format!("{} {}", s.component, s.state);
            if s.pid != 0 {
                part.push_str(&format!(" (pid {})", s.pid));
            }
            if s.restarts != 0 {
                part.push_str(&format!(" [{} restarts]", s.restarts));
            }
            part
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_line_names_every_component() {
        let snaps = [
            Snapshot { component: Component::Userd, pid: 12, state: State::Running, restarts: 0 },
            Snapshot { component: Component::Consensusd, pid: 0, state: State::Restarting, restarts: 3 },
        ];
        assert_eq!(status_line(&snaps), "userd running (pid 12), consensusd restarting [3 restarts]");
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(describe(&Ok(ExitStatus::from_raw(3 << 8))), "exit code 3");
        assert_eq!(describe(&Ok(ExitStatus::from_raw(9))), "signal 9 (SIGKILL)");
    }
}
