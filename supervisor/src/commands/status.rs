//! `hotpocket status <dir> [--json]`: asks the supervisor on `run/supervisor.sock`.

use super::CommandError;
use crate::cli::StatusArgs;
use crate::status::StatusView;
use hp_cfg::ContractDir;
use hp_daemon::ipc;
use hp_proto::v1::NodeStatusRequest;
use hp_proto::v1::supervisor_client::SupervisorClient;
use std::path::Path;
use std::time::Duration;

/// How long `status` and `restart` wait for the supervisor to answer at all. A live supervisor
/// answers at once; this bounds the wait on a dead socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A client of the node's supervisor, or [`CommandError::NotRunning`] when nobody listens.
pub async fn connect(dir: &Path) -> Result<SupervisorClient<tonic::transport::Channel>, CommandError> {
    let socket = ContractDir::new(dir).socket("supervisor");
    let not_running = || CommandError::NotRunning { dir: dir.to_path_buf() };
    if !socket.exists() {
        return Err(not_running());
    }
    // A stale socket file refuses the connection: nobody is there.
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(&socket)).await {
        Ok(Ok(_probe)) => Ok(SupervisorClient::new(ipc::channel(&socket))),
        _ => Err(not_running()),
    }
}

/// Maps a failed call: a supervisor that went away is "not running", anything else is shown.
pub fn call_error(dir: &Path, status: tonic::Status) -> CommandError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled => CommandError::NotRunning { dir: dir.to_path_buf() },
        _ => CommandError::Control(status.message().to_string()),
    }
}

pub async fn run(args: &StatusArgs) -> Result<(), CommandError> {
    let mut client = connect(&args.dir).await?;
    let mut request = tonic::Request::new(NodeStatusRequest {});
    request.set_timeout(ipc::CALL_TIMEOUT);
    let reply = client.status(request).await.map_err(|s| call_error(&args.dir, s))?.into_inner();
    let mut view = StatusView::try_from(reply).map_err(|e| CommandError::Control(e.to_string()))?;
    // The ports come from the config; a config this user cannot read leaves them null.
    if let Ok(cfg) = hp_cfg::Config::load(&ContractDir::new(&args.dir).config_file()) {
        view.endpoints = crate::status::Endpoints::of(&cfg);
    }
    if args.json {
        println!("{}", view.to_json());
    } else {
        print!("{}", view.to_text());
    }
    Ok(())
}
