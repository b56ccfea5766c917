//! `hotpocket restart <dir> <userd|consensusd|execd>` through the supervisor.

use super::CommandError;
use super::status::{call_error, connect};
use crate::cli::RestartArgs;
use hp_daemon::ipc;
use hp_proto::v1::RestartRequest;

pub async fn run(args: &RestartArgs) -> Result<(), CommandError> {
    let mut client = connect(&args.dir).await?;
    let mut request = tonic::Request::new(RestartRequest { component: args.component.name().to_string() });
    request.set_timeout(ipc::CALL_TIMEOUT);
    client.restart(request).await.map_err(|s| call_error(&args.dir, s))?;
    println!("{} restarted", args.component);
    Ok(())
}
