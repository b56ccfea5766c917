//! Asking the daemons over their sockets: readiness (docs/command-line.md: a component is `running`
//! once its gRPC answers, and for userd once the user port is bound) and the figures that
//! `hotpocket status` shows.

use super::component::Component;
use hp_cfg::ContractDir;
use hp_daemon::ipc;
use hp_proto::v1::consensus_client::ConsensusClient;
use hp_proto::v1::exec_client::ExecClient;
use hp_proto::v1::userd_client::UserdClient;
use hp_proto::v1::{
    ConsensusStatus, ConsensusStatusRequest, MetricsRequest, StateInfoRequest, UserdStatus, UserdStatusRequest,
};
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
/// connect); the error says why there was no answer.
async fn bounded<T, F>(call: F) -> Result<T, String>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn consensus(dir: &ContractDir) -> Result<ConsensusStatus, String> {
    let mut client = ConsensusClient::new(ipc::channel(&dir.socket(Component::Consensusd.name())));
    bounded(client.status(request(ConsensusStatusRequest {}))).await
}

async fn userd(dir: &ContractDir) -> Result<UserdStatus, String> {
    let mut client = UserdClient::new(ipc::channel(&dir.socket(Component::Userd.name())));
    bounded(client.status(request(UserdStatusRequest {}))).await
}

/// consensusd's `Status`, if it answers.
pub async fn consensus_status(dir: &ContractDir) -> Option<ConsensusStatus> {
    consensus(dir).await.ok()
}

/// userd's `Status`, if it answers.
pub async fn userd_status(dir: &ContractDir) -> Option<UserdStatus> {
    userd(dir).await.ok()
}

/// The daemon's `Metrics` text (OpenMetrics, without `# EOF`).
pub async fn metrics(dir: &ContractDir, component: Component) -> Result<String, String> {
    let channel = ipc::channel(&dir.socket(component.name()));
    let reply = match component {
        Component::Execd => bounded(ExecClient::new(channel).metrics(request(MetricsRequest {}))).await,
        Component::Consensusd => bounded(ConsensusClient::new(channel).metrics(request(MetricsRequest {}))).await,
        Component::Userd => bounded(UserdClient::new(channel).metrics(request(MetricsRequest {}))).await,
    };
    reply.map(|r| r.text)
}

/// Whether `component` is ready: execd answers `StateInfo`, consensusd `Status`, userd `Status`
/// with `listening` set and its session with consensusd open (before that, users' inputs would
/// be refused). The error says why not.
pub async fn check_ready(dir: &ContractDir, component: Component) -> Result<(), String> {
    match component {
        Component::Execd => {
            let mut client = ExecClient::new(ipc::channel(&dir.socket(component.name())));
            bounded(client.state_info(request(StateInfoRequest {}))).await.map(drop)
        }
        Component::Consensusd => consensus(dir).await.map(drop),
        Component::Userd => match userd(dir).await? {
            UserdStatus { listening: true, consensus_up: true, .. } => Ok(()),
            UserdStatus { listening: false, .. } => Err("the user port is not bound yet".into()),
            UserdStatus { consensus_up: false, .. } => Err("the session with consensusd is not open yet".into()),
        },
    }
}

/// How long a component may take to become ready before the supervisor says so in the log.
pub const SLOW_START: Duration = Duration::from_secs(10);

/// Probes until `component` is ready, quickly at first and then every [`PROBE_INTERVAL_MAX`].
/// Logs once if that takes longer than [`SLOW_START`]. The caller cancels it (by dropping the
/// future) when the process exits.
pub async fn wait_ready(dir: &ContractDir, component: Component) {
    let mut interval = PROBE_INTERVAL_MIN;
    let started = tokio::time::Instant::now();
    let mut warned = false;
    loop {
        match check_ready(dir, component).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::debug!(component = component.name(), %reason, "not ready yet");
                if !warned && started.elapsed() >= SLOW_START {
                    warned = true;
                    tracing::warn!(component = component.name(), %reason, waited_ms = started.elapsed().as_millis() as u64,
                        "still not ready");
                }
            }
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(PROBE_INTERVAL_MAX);
    }
}
