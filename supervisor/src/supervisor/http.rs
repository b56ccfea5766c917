//! The node's one HTTP listener (`metrics_port`, off by default): `GET /metrics` (every
//! daemon's Prometheus metrics and the supervisor's own, in one OpenMetrics text), `GET /status`
//! (the JSON of `hotpocket status --json`) and `GET /health` (200 while the node closes ledgers
//! with a quorum, 503 with the reasons otherwise). Anything else is 404.
//!
//! It serves operators and scrapers on a trusted network: nothing it shows is secret. What comes
//! from outside is bounded: HTTP/1 only, a small read buffer and header count, a deadline for
//! the request head, a cap on connections at once, and request bodies are never read.

use super::component::{Component, Snapshot, State};
use super::control::{Control, Gathered};
use crate::status::StatusView;
use bytes::Bytes;
use hp_daemon::metrics::prometheus_client::metrics::counter::Counter;
use hp_daemon::metrics::prometheus_client::metrics::family::Family;
use hp_daemon::metrics::prometheus_client::metrics::gauge::Gauge;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The read buffer of one connection, which bounds the request head (hyper's minimum is 8 KiB).
const MAX_BUF: usize = 16 * 1024;
/// Most request headers.
const MAX_HEADERS: usize = 32;
/// A client must have sent its request head by then.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// What the listener needs from the config.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `metrics_ip`: `None` is localhost (IPv4 and IPv6).
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// Validators in the UNL and the quorum, for `/health`'s reasons.
    pub validators: usize,
    pub quorum: usize,
    /// No closed ledger for this long is unhealthy (see [`stale_after`]).
    pub stale_after: Duration,
    /// The URLs users dial, shown in `/status` as `hotpocket status --json` shows them.
    pub endpoints: crate::status::Endpoints,
}

/// How long a healthy node may go without closing a ledger: an idle network closes a heartbeat
/// ledger every `roundtime`, and a height waits for the previous ledger's run (at most
/// `contract_timeout`); twice the round time and 5 s spare on top of that.
pub fn stale_after(roundtime: Duration, contract_timeout: Duration) -> Duration {
    2 * roundtime + contract_timeout + Duration::from_secs(5)
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on the metrics port {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds the metrics port: `ip`, or 127.0.0.1 and (where there is IPv6) ::1.
pub async fn bind(settings: &HttpSettings) -> Result<Vec<TcpListener>, BindError> {
    let bind =
        |addr: SocketAddr| async move { TcpListener::bind(addr).await.map_err(|source| BindError { addr, source }) };
    match settings.ip {
        Some(ip) => Ok(vec![bind(SocketAddr::new(ip, settings.port)).await?]),
        None => {
            let mut listeners = vec![bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), settings.port)).await?];
            match bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), settings.port)).await {
                Ok(l) => listeners.push(l),
                Err(e) => tracing::debug!(error = %e, "no IPv6 localhost for the metrics port"),
            }
            Ok(listeners)
        }
    }
}

struct Shared {
    control: Control,
    settings: HttpSettings,
    slots: Arc<Semaphore>,
}

/// Serves the listeners until `shutdown`.
pub async fn serve(listeners: Vec<TcpListener>, control: Control, settings: HttpSettings, shutdown: CancellationToken) {
    let shared = Arc::new(Shared { control, settings, slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)) });
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept_loop(listener, shared.clone(), shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /status and /health");
    }
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = shared.slots.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { return };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "metrics port accept failed");
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&shared, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_BUF)
                .max_headers(MAX_HEADERS);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "metrics connection ended");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
            drop(permit);
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    }
    match req.uri().path() {
        "/metrics" => match shared.control.gather().await {
            Ok(gathered) => {
                let daemons = shared.control.daemon_metrics(&gathered.snapshots).await;
                reply(StatusCode::OK, hp_daemon::metrics::CONTENT_TYPE, exposition(&gathered.snapshots, &daemons))
            }
            Err(status) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{}\n", status.message())),
        },
        "/status" => match shared.control.gather().await.map(|g| StatusView::try_from(g.node_status())) {
            Ok(Ok(mut view)) => {
                view.endpoints = shared.settings.endpoints.clone();
                reply(StatusCode::OK, "application/json", format!("{}\n", view.to_json()))
            }
            Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            Err(status) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{}\n", status.message())),
        },
        "/health" => {
            let verdict = match shared.control.gather().await {
                Ok(gathered) => health(&gathered, &shared.settings),
                Err(status) => Err(vec![status.message().to_string()]),
            };
            match verdict {
                Ok(text) => reply(StatusCode::OK, TEXT, format!("ok: {text}\n")),
                Err(reasons) => {
                    reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("unhealthy: {}\n", reasons.join("; ")))
                }
            }
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    }
}

/// The supervisor's own metrics (per-daemon restarts and whether each runs), then each
/// daemon's, then the closing `# EOF`.
pub fn exposition(snapshots: &[Snapshot], daemons: &[String]) -> String {
    let mut registry = hp_daemon::metrics::registry();
    let restarts = Family::<[(&'static str, &'static str); 1], Counter>::default();
    let up = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    registry.register("daemon_restarts", "Times the supervisor restarted the daemon", restarts.clone());
    registry.register("daemon_up", "1 while the daemon runs and answered its readiness probe", up.clone());
    for s in snapshots {
        let label = [("daemon", s.component.name())];
        restarts.get_or_create(&label).inc_by(u64::from(s.restarts));
        up.get_or_create(&label).set(i64::from(s.state == State::Running));
    }
    let mut text = hp_daemon::metrics::encode(&registry).unwrap_or_default();
    for daemon in daemons {
        text.push_str(daemon);
    }
    text.push_str(hp_daemon::metrics::EOF);
    text
}

/// `Ok` with a summary while the node closes ledgers with a quorum; else every reason why not.
pub fn health(g: &Gathered, settings: &HttpSettings) -> Result<String, Vec<String>> {
    let mut reasons = Vec::new();
    for s in &g.snapshots {
        if s.state != State::Running {
            reasons.push(format!("{} is {}", s.component.name(), s.state.as_str()));
        }
    }
    let Some(c) = &g.consensus else {
        if g.snapshots.iter().any(|s| s.component == Component::Consensusd && s.state == State::Running) {
            reasons.push("consensusd does not answer".into());
        }
        return Err(reasons);
    };
    let needed_peers = settings.quorum.saturating_sub(1);
    let peers = c.peers as usize;
    let since_close = Duration::from_millis(c.since_close_ms);
    if !c.in_sync {
        reasons.push(format!("catching up: peers are past ledger {}", c.lcl_seq));
    }
    if since_close > settings.stale_after {
        reasons.push(format!(
            "no ledger closed for {:.1} s (at most {:.1} s is healthy)",
            since_close.as_secs_f64(),
            settings.stale_after.as_secs_f64()
        ));
    }
    if peers < needed_peers {
        reasons.push(format!(
            "{peers} of {} peers connected; a quorum of {} needs {needed_peers}",
            settings.validators.saturating_sub(1),
            settings.quorum
        ));
    }
    if reasons.is_empty() {
        Ok(format!(
            "ledger {} closed {:.1} s ago, {peers} of {} peers connected",
            c.lcl_seq,
            since_close.as_secs_f64(),
            settings.validators.saturating_sub(1)
        ))
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hp_proto::v1::ConsensusStatus;

    fn settings() -> HttpSettings {
        HttpSettings {
            ip: None,
            port: 1,
            validators: 3,
            quorum: 3,
            stale_after: Duration::from_secs(10),
            endpoints: Default::default(),
        }
    }

    fn gathered(state: State, peers: u32, since_close_ms: u64) -> Gathered {
        let snapshots = Component::START_ORDER
            .iter()
            .map(|&component| Snapshot { component, pid: 1, state, restarts: 2 })
            .collect();
        let consensus =
            Some(ConsensusStatus { lcl_seq: 5, peers, in_sync: true, since_close_ms, ..Default::default() });
        Gathered { snapshots, consensus, userd: None }
    }

    #[test]
    fn a_node_closing_ledgers_with_its_peers_is_healthy() {
        let ok = health(&gathered(State::Running, 2, 300), &settings()).unwrap();
        assert!(ok.contains("ledger 5"), "{ok}");
    }

    #[test]
    fn every_reason_is_named() {
        let reasons = health(&gathered(State::Running, 1, 20_000), &settings()).unwrap_err();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("no ledger closed"), "{reasons:?}");
        assert!(reasons[1].contains("1 of 2 peers"), "{reasons:?}");
        let mut down = gathered(State::Restarting, 2, 0);
        down.consensus = None;
        let reasons = health(&down, &settings()).unwrap_err();
        assert!(reasons.iter().any(|r| r == "consensusd is restarting"), "{reasons:?}");
    }

    #[test]
    fn the_exposition_has_restarts_the_daemons_and_one_eof() {
        let text = exposition(
            &gathered(State::Running, 2, 0).snapshots,
            &["# TYPE hotpocket_x gauge\nhotpocket_x 1\n".into()],
        );
        assert!(text.contains("hotpocket_daemon_restarts_total{daemon=\"consensusd\"} 2"), "{text}");
        assert!(text.contains("hotpocket_daemon_up{daemon=\"execd\"} 1"), "{text}");
        assert!(text.contains("hotpocket_x 1\n# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
