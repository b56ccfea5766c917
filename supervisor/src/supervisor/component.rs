//! The three daemons a node is made of (docs/ARCHITECTURE.md) and the states the supervisor reports.

use std::fmt;
use std::str::FromStr;

/// One of the daemons the supervisor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Component {
    Userd,
    Consensusd,
    Execd,
}

impl Component {
    /// Start order: what the others call first. The daemons retry their neighbours, so this only
    /// shortens the time to readiness; it is not needed for correctness.
    pub const START_ORDER: [Component; 3] = [Component::Execd, Component::Consensusd, Component::Userd];
    /// Stop order: first the user port (no new inputs), then consensus, then execution, so that
    /// no daemon loses the neighbour it is waiting on while it winds down.
    pub const STOP_ORDER: [Component; 3] = [Component::Userd, Component::Consensusd, Component::Execd];

    /// The component's place in [`Component::STOP_ORDER`] (and in status listings).
    pub fn index(self) -> usize {
        match self {
            Component::Userd => 0,
            Component::Consensusd => 1,
            Component::Execd => 2,
        }
    }

    /// The name used in the control API, in logs and as the socket's base name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Userd => "userd",
            Component::Consensusd => "consensusd",
            Component::Execd => "execd",
        }
    }

    /// The executable's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Component::Userd => "hp-userd",
            Component::Consensusd => "hp-consensusd",
            Component::Execd => "hp-execd",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of `userd`, `consensusd`, `execd`.
#[derive(Debug, thiserror::Error)]
#[error("unknown component `{0}` (expected userd, consensusd or execd)")]
pub struct UnknownComponent(pub String);

impl FromStr for Component {
    type Err = UnknownComponent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "userd" => Ok(Component::Userd),
            "consensusd" => Ok(Component::Consensusd),
            "execd" => Ok(Component::Execd),
            other => Err(UnknownComponent(other.to_string())),
        }
    }
}

/// What the supervisor knows about a component (docs/command-line.md, `hotpocket status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its process runs but its gRPC has not answered yet.
    Starting,
    /// Ready: it answers on its socket (and, for userd, the user port is bound).
    Running,
    /// It exited or is being restarted; a new process follows.
    Restarting,
    /// Not running and not coming back: the node is shutting down.
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub component: Component,
    /// 0 when no process runs.
    pub pid: u32,
    pub state: State,
    pub restarts: u32,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_orders_cover_every_component() {
        for c in Component::START_ORDER {
            assert_eq!(c.name().parse::<Component>().ok(), Some(c));
            assert_eq!(c.binary(), format!("hp-{}", c.name()));
            assert_eq!(Component::STOP_ORDER[c.index()], c);
        }
        assert!("supervisor".parse::<Component>().is_err());
    }
}
