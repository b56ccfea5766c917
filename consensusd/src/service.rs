//! The local gRPC API on `run/consensusd.sock`: the userd session and status. Handlers check
//! what crosses the process boundary, turn it into node-loop events and await the reply.

use crate::node::Event;
use hp_proto::v1::{self as pb, consensus_server::Consensus};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Messages queued to userd before the session counts as stuck.
const SESSION_QUEUE: usize = 65_536;

pub struct ConsensusService {
    events: mpsc::Sender<Event>,
    next_session: AtomicU64,
}

impl ConsensusService {
    pub fn new(events: mpsc::Sender<Event>) -> Self {
        Self { events, next_session: AtomicU64::new(1) }
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::ConsensusMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Consensus for ConsensusService {
    type UserSessionStream = OutStream;

    async fn user_session(
        &self,
        request: Request<Streaming<pb::UserdMessage>>,
    ) -> Result<Response<Self::UserSessionStream>, Status> {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.events
            .send(Event::SessionOpened { id, tx })
            .await
            .map_err(|_| Status::unavailable("consensus is shutting down"))?;
        let mut inbound = request.into_inner();
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(message) = inbound.next().await {
                match message {
                    Ok(message) => {
                        if events.send(Event::Session { id, message }).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = events.send(Event::SessionClosed { id }).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(&self, _: Request<pb::ConsensusStatusRequest>) -> Result<Response<pb::ConsensusStatus>, Status> {
        let (tx, rx) = oneshot::channel();
        self.events.send(Event::Status(tx)).await.map_err(|_| Status::unavailable("consensus is shutting down"))?;
        let status = rx.await.map_err(|_| Status::unavailable("consensus is shutting down"))?;
        Ok(Response::new(status))
    }
}
