//! The `Supervisor` gRPC service on `run/supervisor.sock`: `Status` and `Restart` for
//! `hotpocket status` and `hotpocket restart`. Handlers validate, hand a typed request to the
//! supervisor loop and await its answer; the chain figures come from the daemons themselves.

use super::component::{Component, Snapshot, State};
use super::node::{Request, RestartError};
use super::probe;
use hp_cfg::ContractDir;
use hp_proto::v1::supervisor_server::Supervisor;
use hp_proto::v1::{
    ComponentStatus, ConsensusStatus, NodeStatus, NodeStatusRequest, RestartReply, RestartRequest, UserdStatus,
};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request as GrpcRequest, Response, Status};

/// The service; cheap to clone into tonic.
#[derive(Debug, Clone)]
pub struct Control {
    requests: mpsc::Sender<Request>,
    dir: ContractDir,
}

impl Control {
    pub fn new(requests: mpsc::Sender<Request>, dir: ContractDir) -> Self {
        Self { requests, dir }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).await.map_err(|_| Status::unavailable("the supervisor is stopping"))?;
        rx.await.map_err(|_| Status::unavailable("the supervisor is stopping"))
    }
}

pub fn is_running(snapshots: &[Snapshot], component: Component) -> bool {
    snapshots.iter().any(|s| s.component == component && s.state == State::Running)
}

/// What the supervisor knows of the node at one moment: its own view of the daemons and what
/// the running ones answered.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub snapshots: Vec<Snapshot>,
    /// consensusd's `Status`, when it runs and answered.
    pub consensus: Option<ConsensusStatus>,
    pub userd: Option<UserdStatus>,
}

impl Gathered {
    /// The `NodeStatus` of `hotpocket status`.
    pub fn node_status(&self) -> NodeStatus {
        let mut status = NodeStatus {
            users: self.userd.as_ref().map_or(0, |u| u.users),
            components: self
                .snapshots
                .iter()
                .map(|s| ComponentStatus {
                    name: s.component.name().to_string(),
                    pid: s.pid,
                    state: s.state.as_str().to_string(),
                    restarts: s.restarts,
                })
                .collect(),
            ..NodeStatus::default()
        };
        if let Some(c) = &self.consensus {
            status.lcl_seq = c.lcl_seq;
            status.lcl_hash = c.lcl_hash.clone();
            status.state_hash = c.state_hash.clone();
            status.peers = c.peers;
            status.unl = c.unl.clone();
            status.quorum = c.quorum;
            status.config_hash = c.config_hash.clone();
            status.role = c.role.clone();
        }
        status
    }
}

impl Control {
    /// The supervisor's snapshots and the running daemons' status answers.
    pub async fn gather(&self) -> Result<Gathered, Status> {
        let snapshots = self.ask(Request::Status).await?;
        // Only running daemons are asked: one that is starting would just time out.
        let consensus = async {
            if is_running(&snapshots, Component::Consensusd) { probe::consensus_status(&self.dir).await } else { None }
        };
        let userd = async {
            if is_running(&snapshots, Component::Userd) { probe::userd_status(&self.dir).await } else { None }
        };
        let (consensus, userd) = tokio::join!(consensus, userd);
        Ok(Gathered { snapshots, consensus, userd })
    }

    /// Each running daemon's metrics text, in start order; a daemon that is not running or does
    /// not answer contributes nothing.
    pub async fn daemon_metrics(&self, snapshots: &[Snapshot]) -> Vec<String> {
        let ask = |component: Component| async move {
            if !is_running(snapshots, component) {
                return None;
            }
            match probe::metrics(&self.dir, component).await {
                Ok(text) => Some(text),
                Err(reason) => {
                    tracing::debug!(component = component.name(), %reason, "no metrics from the daemon");
                    None
                }
            }
        };
        let (a, b, c) = tokio::join!(
            ask(Component::START_ORDER[0]),
            ask(Component::START_ORDER[1]),
            ask(Component::START_ORDER[2])
        );
        [a, b, c].into_iter().flatten().collect()
    }

    pub fn dir(&self) -> &ContractDir {
        &self.dir
    }
}

#[tonic::async_trait]
impl Supervisor for Control {
    async fn status(&self, _request: GrpcRequest<NodeStatusRequest>) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(self.gather().await?.node_status()))
    }

    async fn restart(&self, request: GrpcRequest<RestartRequest>) -> Result<Response<RestartReply>, Status> {
        let component: Component = request
            .into_inner()
            .component
            .parse()
            .map_err(|e: super::component::UnknownComponent| Status::invalid_argument(e.to_string()))?;
        match self.ask(|reply| Request::Restart(component, reply)).await? {
            Ok(()) => Ok(Response::new(RestartReply {})),
            Err(e @ RestartError::ShuttingDown) => Err(Status::unavailable(e.to_string())),
            Err(e @ RestartError::StartFailed { .. }) => Err(Status::internal(e.to_string())),
        }
    }
}
