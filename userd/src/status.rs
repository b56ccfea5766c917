//! The `Userd` gRPC service on `run/userd.sock` (userd.proto): readiness and counts for the
//! supervisor, and its metrics.

use crate::metrics::UserdMetrics;
use crate::registry::Registry;
use crate::session::SessionHandle;
use hp_proto::v1::userd_server::Userd;
use hp_proto::v1::{MetricsReply, MetricsRequest, UserdStatus, UserdStatusRequest};
use tonic::{Request, Response, Status};

/// Answers `Userd.Status` from the shared state; it holds no state of its own.
#[derive(Debug, Clone)]
pub struct StatusService {
    pub registry: Registry,
    pub session: SessionHandle,
    /// The user port is bound, or none is configured.
    pub listening: bool,
    pub metrics: UserdMetrics,
}

impl StatusService {
    pub fn snapshot(&self) -> UserdStatus {
        UserdStatus {
            users: u32::try_from(self.registry.len()).unwrap_or(u32::MAX),
            listening: self.listening,
            consensus_up: self.session.is_up(),
        }
    }
}

#[tonic::async_trait]
impl Userd for StatusService {
    async fn status(&self, _request: Request<UserdStatusRequest>) -> Result<Response<UserdStatus>, Status> {
        Ok(Response::new(self.snapshot()))
    }

    async fn metrics(&self, _request: Request<MetricsRequest>) -> Result<Response<MetricsReply>, Status> {
        self.metrics.users_connected.set(i64::try_from(self.registry.len()).unwrap_or(i64::MAX));
        hp_daemon::metrics::reply(&self.metrics.registry)
    }
}
