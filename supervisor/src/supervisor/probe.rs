//! Asking the daemons over their sockets: readiness (DESIGN.md §8: a component is `running`
//! once its gRPC answers, and for userd once the user port is bound) and the figures that
//! `hotpocket status` shows.

use super::component::Component;
use hp_cfg::ContractDir;
use hp_daemon::ipc;
use hp_proto::v1::consensus_client::ConsensusClient;
use hp_proto::v1::exec_client::ExecClient;
use hp_proto::v1::userd_client::UserdClient;
use hp_proto::v1::{ConsensusStatus, ConsensusStatusRequest, StateInfoRequest, UserdStatus, UserdStatusRequest};
use std::time::Duration;

/// How long one probe may take. Short: a daemon that is up answers in microseconds, and a slow
/// answer only delays the next probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The first probes come quickly (a daemon starts in milliseconds) and slow down to this.
pub const PROBE_INTERVAL_MAX: Duration = Duration::from_millis(500);
pub const PROBE_INTERVAL_MIN: Duration = Duration::from_millis(25);

fn request<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(PROBE_TIMEOUT);
    req
}

/// Runs `call` with [`PROBE_TIMEOUT`] as a hard bound (the gRPC deadline does not cover the
/// connect), folding every failure into `None`.
async fn bounded<T, F>(call: F) -> Option<T>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(reply)) => Some(reply.into_inner()),
        _ => None,
    }
}

/// consensusd's `Status`, if it answers.
pub async fn consensus_status(dir: &ContractDir) -> Option<ConsensusStatus> {
    let mut client = ConsensusClient::new(ipc::channel(&dir.socket(Component::Consensusd.name())));
    bounded(client.status(request(ConsensusStatusRequest {}))).await
}

/// userd's `Status`, if it answers.
pub async fn userd_status(dir: &ContractDir) -> Option<UserdStatus> {
    let mut client = UserdClient::new(ipc::channel(&dir.socket(Component::Userd.name())));
    bounded(client.status(request(UserdStatusRequest {}))).await
}

/// Whether `component` is ready: execd answers `StateInfo`, consensusd `Status`, userd `Status`
/// with `listening` set.
pub async fn is_ready(dir: &ContractDir, component: Component) -> bool {
    match component {
        Component::Execd => {
            let mut client = ExecClient::new(ipc::channel(&dir.socket(component.name())));
            bounded(client.state_info(request(StateInfoRequest {}))).await.is_some()
        }
        Component::Consensusd => consensus_status(dir).await.is_some(),
        Component::Userd => userd_status(dir).await.is_some_and(|s| s.listening),
    }
}

/// Probes until `component` is ready, quickly at first and then every [`PROBE_INTERVAL_MAX`].
/// The caller cancels it (by dropping the future) when the process exits.
pub async fn wait_ready(dir: &ContractDir, component: Component) {
    let mut interval = PROBE_INTERVAL_MIN;
    loop {
        if is_ready(dir, component).await {
            return;
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(PROBE_INTERVAL_MAX);
    }
}
