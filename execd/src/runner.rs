//! Running the contract once (docs/contract-interface.md): pipes, a clean start, concurrent I/O, the timeout,
//! and killing and reaping everything it started (with the helpers of [`crate::process`]). With
//! [`crate::sandbox`], the only module with `unsafe`: the code that runs in the forked child
//! before `exec`, and nothing else. The sandbox is prepared before the fork and entered in the
//! child with one call, after the fds are in place.
//!
//! One run:
//! 1. Two pipes per user (all `O_CLOEXEC`), one for stdin, stdout and stderr. Each input pipe
//!    is filled before the contract starts when its inputs fit (the pipe is enlarged up to
//!    [`MAX_PREFILL_PIPE`] when that helps); what does not fit is written by a task while the
//!    contract runs. The header goes into stdin the same way, then EOF. Under the HotPocket
//!    ABI ([`Abi::HotPocket`]) the inputs are instead one sealed memory file the contract
//!    reads at offsets, each user has only an output pipe, and two `SOCK_SEQPACKET` sockets
//!    carry the NPL ([`crate::npl`]) and control messages; the contract closing its control
//!    socket ends the run as its exit does (after [`CONTROL_CLOSE_GRACE`]), and each user's
//!    output keeps only whole length-prefixed messages.
//! 2. The child starts a new session (so its own process group), asks for `SIGKILL` when execd
//!    dies, moves the user pipe ends to the fixed fds of [`crate::header`] and marks every
//!    other fd close-on-exec, then enters the sandbox prepared before the fork
//!    ([`crate::sandbox`]; the fds handed to it become its user's). Environment: `PATH` and `TZ`
//!    only. Cwd: `state/`.
//! 3. Outputs are read by one task per user while the contract runs; stdout and stderr go to
//!    the log line by line, tagged with `seq` and `stream`.
//! 4. At the timeout (or on shutdown) the whole process group gets `SIGKILL`. When the main
//!    process has exited, what is left of its group is killed too and reaped; readers get a
//!    short grace to drain, then stop, so a descendant that escaped the group and holds a pipe
//!    cannot hang execd. Both spans count only time that execd ran ([`crate::awake`]): a
//!    stopped node must not see a contract time out that did not.

#![allow(unsafe_code)]

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::awake;
use crate::header::{FIRST_USER_FD, HP_CONTROL_FD, HP_NPL_FD, HP_USER_IN_FD, hp_out_fd};
use crate::npl::{NplHub, RoundNpl};
use crate::process;
use crate::round::UserInput;
use hp_cfg::config::MAX_NPL_MESSAGE;
use hp_daemon::CancellationToken;
use hp_ledger::ExitKind;
use tokio_seqpacket::UnixSeqpacket;

/// The environment the contract gets: nothing of execd's own leaks in, and `TZ` is fixed so that
/// time formatting is the same on every node.
pub const CONTRACT_ENV: [(&str, &str); 2] = [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("TZ", "UTC")];

/// The pipe buffer Linux gives by default.
const DEFAULT_PIPE: usize = 64 * 1024;
/// Input pipes are enlarged up to this so that inputs up to it are in the pipe before the
/// contract starts; larger inputs are streamed. 1 MiB is Linux's default `pipe-max-size`.
pub const MAX_PREFILL_PIPE: usize = 1024 * 1024;
/// Most bytes the contract may write to all users in one round. Past it the round's outputs are
/// all dropped (deterministically: whether a contract exceeds it depends only on what it
/// writes), and the rest is drained so the contract is never blocked.
pub const MAX_ROUND_OUTPUT: u64 = 256 * 1024 * 1024;
/// After the main process exits, readers get this long to see EOF: enough for the kernel to
/// finish killing the group, short enough that an escaped descendant cannot stall a round.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// A longer stdout/stderr line is logged in pieces of this size.
const MAX_LOG_LINE: usize = 4096;
/// Lines logged per stream per round; the rest is drained silently (one warning says so).
const MAX_LOG_LINES: u64 = 2000;

/// After the contract closed its control socket, how long it has to exit by itself before its
/// process group is killed.
pub const CONTROL_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Control messages read from one run; more are read and dropped (a contract cannot fill the
/// log or consensusd's queue).
const MAX_CONTROL_MESSAGES: usize = 64;

/// How the contract gets its inputs and hands back its outputs.
pub enum Abi {
    /// `text`/`json`: user `i` reads its inputs from fd `3 + 2i` and writes to `4 + 2i`.
    Pipes,
    /// `hotpocket`: fd 3 the inputs file, 4 the NPL socket, 5 the control socket, `6 + i`
    /// user `i`'s output ([`crate::header`]).
    HotPocket(HotPocketRun),
}

/// What a HotPocket-ABI run is connected to.
#[derive(Default)]
pub struct HotPocketRun {
    /// The round's NPL; `None` (a read-only run): what the contract writes there is dropped
    /// and nothing arrives.
    pub npl: Option<RoundNpl>,
    /// Where `peer_changeset`s go; `None` (a read-only run): they are ignored.
    pub control: Option<Arc<NplHub>>,
}

/// How to start the contract.
#[derive(Debug, Clone)]
pub struct Contract {
    /// Absolute path of the binary.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Variables the agreed config (`patch.cfg`'s `environment`) sets, over [`CONTRACT_ENV`].
    pub env: Vec<(String, String)>,
    /// The agreed config's resource limits, applied in the sandbox with the node's own.
    pub limits: crate::sandbox::limits::AgreedLimits,
    /// The most bytes of output one user keeps per round (`round_limits.user_output_bytes`; 0
    /// is no limit). Past it the rest of that user's output is dropped: in the HotPocket ABI
    /// from the first message that does not fit whole.
    pub max_user_output: u64,
    /// Absolute path of `state/`.
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// The sandbox every run gets ([`crate::sandbox`]); `cwd` is the folder it may write.
    /// `None` only with `sandbox: false` (and in tests that run without one).
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Users in pubkey order that wrote something, with all they wrote.
    pub outputs: Vec<([u8; 32], Vec<u8>)>,
    pub exit: ExitKind,
    /// Why the run counts as [`ExitKind::SpawnError`], when it does (for the logs).
    pub spawn_error: Option<String>,
    /// From spawn to the main process's exit.
    pub run_time: Duration,
    /// The contract's process group (its pid), `None` if it never started.
    pub pgid: Option<i32>,
    /// The contract wrote more than [`MAX_ROUND_OUTPUT`]; its outputs were dropped.
    pub outputs_dropped: bool,
}

/// Why a run could not take place or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up pipes for {users} users (is RLIMIT_NOFILE high enough?): {source}")]
    Pipes { users: usize, source: std::io::Error },
    #[error("execd is shutting down; the contract was killed")]
    Cancelled,
    #[error("cannot prepare the contract's sandbox: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

/// A pipe end being filled: the parent's write end and what is left to write.
struct Feed {
    fd: OwnedFd,
    rest: Vec<Bytes>,
}

/// Runs the contract once. `users` must be in pubkey order; user `i` gets fds `3+2i`/`4+2i`.
/// `on_spawn` is told the contract's pid (= its process group and session) once it started.
pub async fn run(
    contract: &Contract,
    seq: u64,
    header: Vec<u8>,
    users: &[UserInput],
    abi: Abi,
    cancel: &CancellationToken,
    on_spawn: &mut (dyn FnMut(i32) + Send),
) -> Result<RunOutcome, RunError> {
    let pipes_err = |source| RunError::Pipes { users: users.len(), source };
    // 1. Pipes (or the HotPocket ABI's file and sockets), filled as far as they take. Each
    // child end is listed with the fd the contract sees it as.
    let mut child_ends: Vec<(OwnedFd, RawFd)> = Vec::with_capacity(users.len() * 2 + 3);
    let mut feeds: Vec<Feed> = Vec::new();
    let mut out_ends: Vec<OwnedFd> = Vec::with_capacity(users.len());
    let mut sockets = None;
    let hotpocket = match abi {
        Abi::Pipes => {
            for (i, user) in users.iter().enumerate() {
                let (in_r, in_w) = cloexec_pipe().map_err(pipes_err)?;
                let (out_r, out_w) = cloexec_pipe().map_err(pipes_err)?;
                child_ends.push((in_r, FIRST_USER_FD + 2 * i as RawFd));
                child_ends.push((out_w, FIRST_USER_FD + 2 * i as RawFd + 1));
                out_ends.push(out_r);
                if let Some(feed) = prefill(in_w, &user.inputs).map_err(pipes_err)? {
                    feeds.push(feed);
                }
            }
            None
        }
        Abi::HotPocket(io) => {
            child_ends.push((inputs_file(users).map_err(pipes_err)?, HP_USER_IN_FD));
            let (npl_ours, npl_theirs) = packet_pair().map_err(pipes_err)?;
            let (control_ours, control_theirs) = packet_pair().map_err(pipes_err)?;
            child_ends.push((npl_theirs, HP_NPL_FD));
            child_ends.push((control_theirs, HP_CONTROL_FD));
            for i in 0..users.len() {
                let (out_r, out_w) = cloexec_pipe().map_err(pipes_err)?;
                child_ends.push((out_w, hp_out_fd(i)));
                out_ends.push(out_r);
            }
            sockets = Some((npl_ours, control_ours));
            Some(io)
        }
    };
    let length_prefixed = hotpocket.is_some();
    let (stdin_r, stdin_w) = cloexec_pipe().map_err(pipes_err)?;
    if let Some(feed) = prefill(stdin_w, &[Bytes::from(header)]).map_err(pipes_err)? {
        feeds.push(feed);
    }
    let (stdout_r, stdout_w) = cloexec_pipe().map_err(pipes_err)?;
    let (stderr_r, stderr_w) = cloexec_pipe().map_err(pipes_err)?;

    if let Err(why) = check_executable(&contract.program) {
        return Ok(RunOutcome {
            outputs: Vec::new(),
            exit: ExitKind::SpawnError,
            spawn_error: Some(why),
            run_time: Duration::ZERO,
            pgid: None,
            outputs_dropped: false,
        });
    }

    // 2. Spawn, in the sandbox.
    let moves: Vec<(RawFd, RawFd)> = child_ends.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)).collect();
    let first_free = moves.iter().map(|(_, to)| to + 1).max().unwrap_or(FIRST_USER_FD);
    let handed = [&stdin_r, &stdout_w, &stderr_w]
        .into_iter()
        .chain(child_ends.iter().map(|(fd, _)| fd))
        .map(std::os::fd::AsFd::as_fd);
    let sandbox =
        contract.sandbox.as_ref().map(|s| s.prepare(&contract.cwd, contract.limits, first_free, handed)).transpose()?;
    // Filled in the child; allocated here because the child must not allocate.
    let mut parked: Vec<RawFd> = vec![-1; moves.len()];
    let parent = nix::unistd::getpid().as_raw();
    let mut cmd = tokio::process::Command::new(&contract.program);
    cmd.args(&contract.args)
        .current_dir(&contract.cwd)
        .env_clear()
        .envs(CONTRACT_ENV)
        .envs(contract.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdin_r))
        .stdout(Stdio::from(stdout_w))
        .stderr(Stdio::from(stderr_w))
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls on plain integers it owns (see `child_setup`) and on values prepared before
    // the fork (`Prepared::enter`); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            child_setup(&moves, &mut parked, parent)?;
            sandbox.as_ref().map_or(Ok(()), crate::sandbox::Prepared::enter)
        });
    }
    let started = Instant::now();
    let spawned = cmd.spawn();
    // The contract's pipe ends must be closed here, or it would never see EOF on them.
    drop(cmd);
    drop(child_ends);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return Ok(RunOutcome {
                outputs: Vec::new(),
                exit: ExitKind::SpawnError,
                spawn_error: Some(e.to_string()),
                run_time: started.elapsed(),
                pgid: None,
                outputs_dropped: false,
            });
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    on_spawn(pgid);

    // 3. Concurrent I/O.
    let stop_reading = CancellationToken::new();
    let control_closed = CancellationToken::new();
    let mut packet_tasks = Vec::new();
    if let (Some(io), Some((npl, control))) = (hotpocket, sockets) {
        packet_tasks.extend(npl_tasks(npl, io.npl, seq, stop_reading.clone()));
        packet_tasks.push(tokio::spawn(control_task(
            control,
            io.control,
            seq,
            control_closed.clone(),
            stop_reading.clone(),
        )));
    }
    let mut writers = Vec::with_capacity(feeds.len());
    for feed in feeds {
        writers.push(tokio::spawn(stream_rest(feed)));
    }
    let budget = Arc::new(AtomicU64::new(0));
    let overflow = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::with_capacity(out_ends.len());
    for fd in out_ends {
        readers.push(tokio::spawn(read_output(fd, budget.clone(), overflow.clone(), stop_reading.clone())));
    }
    let mut loggers = Vec::with_capacity(2);
    for (fd, stream) in [(stdout_r, "stdout"), (stderr_r, "stderr")] {
        loggers.push(tokio::spawn(log_lines(fd, seq, stream, stop_reading.clone())));
    }

    // 4. Wait, time out, kill, reap.
    enum Ended {
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Cancelled,
        /// The contract closed its control channel and did not exit within the grace.
        Lingered,
    }
    // Biased: a contract that has exited did not time out, even if this process was stopped
    // meanwhile and the timer is overdue too when it resumes.
    // A contract that closed its control channel said it is done: it has a moment to exit by
    // itself, then its group is killed (a deterministic contract does the same on every node).
    let lingered = async {
        control_closed.cancelled().await;
        awake::sleep(CONTROL_CLOSE_GRACE).await;
    };
    let ended = tokio::select! {
        biased;
        status = child.wait() => Ended::Exited(status),
        () = cancel.cancelled() => Ended::Cancelled,
        () = awake::sleep(contract.timeout) => Ended::TimedOut,
        () = lingered => Ended::Lingered,
    };
    let (status, timed_out, cancelled) = match ended {
        Ended::Exited(status) => (status, false, false),
        Ended::Lingered => {
            tracing::info!(seq, "the contract closed its control channel but did not exit; ending it");
            process::kill_group(pgid);
            (child.wait().await, false, false)
        }
        Ended::TimedOut => {
            process::kill_group(pgid);
            (child.wait().await, true, false)
        }
        Ended::Cancelled => {
            process::kill_group(pgid);
            (child.wait().await, false, true)
        }
    };
    let run_time = started.elapsed();
    // Whatever the main process left behind in its group dies with it.
    process::kill_group(pgid);
    process::reap_group(pgid, DRAIN_GRACE).await;
    for writer in &writers {
        writer.abort();
    }
    let drained = async {
        let mut outputs = Vec::with_capacity(readers.len());
        for reader in &mut readers {
            outputs.push(reader.await.unwrap_or_default());
        }
        outputs
    };
    let drained = tokio::select! {
        biased;
        outputs = drained => Some(outputs),
        () = awake::sleep(DRAIN_GRACE) => None,
    };
    let outputs = match drained {
        Some(outputs) => outputs,
        None => {
            tracing::warn!(
                seq,
                "a descendant of the contract outside its process group still holds an output pipe; stopped reading"
            );
            stop_reading.cancel();
            let mut outputs = Vec::with_capacity(readers.len());
            for reader in readers {
                outputs.push(reader.await.unwrap_or_default());
            }
            outputs
        }
    };
    stop_reading.cancel();
    for logger in loggers {
        let _ = logger.await;
    }
    for task in packet_tasks {
        task.abort();
        let _ = task.await;
    }
    if cancelled {
        return Err(RunError::Cancelled);
    }
    let (exit, spawn_error) = match (timed_out, status) {
        (true, _) => (ExitKind::TimedOut, None),
        (_, Ok(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => (ExitKind::Code(code), None),
            (None, Some(signal)) => (ExitKind::Signal(signal), None),
            (None, None) => (ExitKind::SpawnError, Some(format!("unknown exit status {status:?}"))),
        },
        (_, Err(e)) => (ExitKind::SpawnError, Some(format!("cannot wait for the contract: {e}"))),
    };
    let outputs_dropped = overflow.load(Ordering::Relaxed);
    let outputs = if outputs_dropped {
        tracing::warn!(
            seq,
            limit = MAX_ROUND_OUTPUT,
            "the contract wrote more than the round's output limit; outputs dropped"
        );
        Vec::new()
    } else {
        users
            .iter()
            .zip(outputs)
            .map(|(u, mut out)| {
                let cap = usize::try_from(contract.max_user_output).unwrap_or(usize::MAX);
                if cap > 0 && out.len() > cap {
                    let kept = if length_prefixed { hp_ledger::outputs::complete_frames_len(&out[..cap]) } else { cap };
                    tracing::warn!(seq, user = %hex::encode(u.pubkey), limit = cap, dropped = out.len() - kept, "the contract wrote more to a user than user_output_bytes; the rest is dropped");
                    out.truncate(kept);
                }
                if length_prefixed {
                    let whole = hp_ledger::outputs::complete_frames_len(&out);
                    if whole < out.len() {
                        tracing::warn!(seq, user = %hex::encode(u.pubkey), dropped = out.len() - whole, "the contract's output ends in an incomplete message; that message is dropped");
                        out.truncate(whole);
                    }
                }
                (u.pubkey, out)
            })
            .filter(|(_, out)| !out.is_empty())
            .collect()
    };
    Ok(RunOutcome { outputs, exit, spawn_error, run_time, pgid: Some(pgid), outputs_dropped })
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// The HotPocket ABI's inputs file: every user's inputs one after the other (users in the
/// given order, each user's in ledger order), in a memory file sealed against any change, so
/// the contract can only read it.
fn inputs_file(users: &[UserInput]) -> std::io::Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create("hotpocket-inputs", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&mut file);
        for input in users.iter().flat_map(|u| &u.inputs) {
            w.write_all(input)?;
        }
        w.flush()?;
    }
    // The contract may read it from the start as well as at offsets.
    std::io::Seek::rewind(&mut file)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    fcntl(&file, FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(seals)))?;
    Ok(OwnedFd::from(file))
}

/// A connected `SOCK_SEQPACKET` pair: execd's end, registered with the runtime, and the
/// contract's, blocking (its readers expect blocking reads).
fn packet_pair() -> std::io::Result<(UnixSeqpacket, OwnedFd)> {
    let (ours, theirs) = UnixSeqpacket::pair()?;
    // SAFETY: `into_raw_fd` hands over the only owner of a valid descriptor.
    let theirs = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(theirs.into_raw_fd()) };
    let flags = OFlag::from_bits_truncate(fcntl(&theirs, FcntlArg::F_GETFL)?);
    fcntl(&theirs, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok((ours, theirs))
}

/// The NPL socket's two directions: what the contract writes goes to the round's NPL (or
/// nowhere, read-only); what arrives for the round is written to it as two packets, the
/// sender's key and the data, in the order it arrived.
fn npl_tasks(
    socket: UnixSeqpacket,
    npl: Option<RoundNpl>,
    seq: u64,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let socket = Arc::new(socket);
    let mut npl = npl;
    let incoming = npl.as_mut().and_then(RoundNpl::take_incoming);
    let mut tasks = Vec::with_capacity(2);
    if let Some(mut incoming) = incoming {
        let (socket, stop) = (socket.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let (sender, data) = tokio::select! {
                    m = incoming.recv() => match m { Some(m) => m, None => return },
                    () = stop.cancelled() => return,
                };
                let sent = async {
                    socket.send(sender.as_bytes()).await?;
                    socket.send(&data).await
                };
                let ok = tokio::select! {
                    r = sent => r.is_ok(),
                    () = stop.cancelled() => return,
                };
                if !ok {
                    return; // the contract closed its end
                }
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_NPL_MESSAGE + 1];
        let mut warned = false;
        loop {
            let n = tokio::select! {
                r = socket.recv(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                () = stop.cancelled() => break,
            };
            let Some(npl) = npl.as_mut() else { continue };
            let sent = n <= MAX_NPL_MESSAGE && npl.send(Bytes::copy_from_slice(&buf[..n]));
            if !sent && !warned {
                warned = true;
                tracing::warn!(
                    seq,
                    limit = MAX_NPL_MESSAGE,
                    "an NPL message over the size or the round's limits was dropped (more may follow)"
                );
            }
        }
        // The round's NPL ends with the run, not when the contract stops writing.
        stop.cancelled().await;
        drop(npl);
    }));
    tasks
}

/// A control message of the HotPocket ABI.
#[derive(serde::Deserialize)]
struct ControlMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// Reads the control socket: `peer_changeset`s go to `hub` (none for a read-only run); any
/// other message is logged and ignored; the contract closing its end sets `closed`.
async fn control_task(
    socket: UnixSeqpacket,
    hub: Option<Arc<NplHub>>,
    seq: u64,
    closed: CancellationToken,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_NPL_MESSAGE + 1];
    let mut seen = 0usize;
    loop {
        let n = tokio::select! {
            r = socket.recv(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            () = stop.cancelled() => return,
        };
        seen += 1;
        if seen > MAX_CONTROL_MESSAGES {
            continue;
        }
        match serde_json::from_slice::<ControlMessage>(&buf[..n.min(MAX_NPL_MESSAGE)]) {
            Ok(m) if m.kind == "peer_changeset" => match &hub {
                Some(hub) => hub.peer_changeset(m.add, m.remove),
                None => tracing::info!(seq, "peer_changeset from a read-only run ignored"),
            },
            Ok(m) => tracing::info!(seq, kind = %m.kind, "unknown control message ignored"),
            Err(e) => tracing::info!(seq, error = %e, "unreadable control message ignored"),
        }
    }
    closed.cancel();
}

/// Writes as much of `chunks` into the pipe as it takes without blocking, enlarging the pipe
/// when that lets everything in. Returns `None` (and closes the pipe) when all was written.
fn prefill(fd: OwnedFd, chunks: &[Bytes]) -> std::io::Result<Option<Feed>> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    if total > DEFAULT_PIPE {
        // Best effort: the limits of pipe memory may refuse; then the rest is streamed.
        let _ = fcntl(&fd, FcntlArg::F_SETPIPE_SZ(total.min(MAX_PREFILL_PIPE) as i32));
    }
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    for (i, chunk) in chunks.iter().enumerate() {
        let mut off = 0;
        while off < chunk.len() {
            match nix::unistd::write(&fd, &chunk[off..]) {
                Ok(n) => off += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut rest = Vec::with_capacity(chunks.len() - i);
                    rest.push(chunk.slice(off..));
                    rest.extend(chunks[i + 1..].iter().cloned());
                    return Ok(Some(Feed { fd, rest }));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(None)
}

/// Streams what did not fit into the pipe while the contract runs; stops quietly when the
/// contract closed its end.
async fn stream_rest(feed: Feed) {
    let Ok(mut tx) = pipe::Sender::from_owned_fd(feed.fd) else { return };
    for chunk in feed.rest {
        if tx.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Reads one user's output until EOF (or until told to stop), within the round's budget. The
/// buffer grows with what arrives: a thousand quiet users cost next to nothing.
async fn read_output(
    fd: OwnedFd,
    budget: Arc<AtomicU64>,
    overflow: Arc<AtomicBool>,
    stop: CancellationToken,
) -> Vec<u8> {
    let Ok(mut rx) = pipe::Receiver::from_owned_fd(fd) else { return Vec::new() };
    let mut out = Vec::new();
    let mut scratch = [0u8; 8192];
    loop {
        let dropping = overflow.load(Ordering::Relaxed);
        if !dropping && out.capacity() - out.len() < 4096 {
            out.reserve(out.len().max(16 * 1024));
        }
        let read = async { if dropping { rx.read(&mut scratch).await } else { rx.read_buf(&mut out).await } };
        let n = tokio::select! {
            r = read => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            () = stop.cancelled() => break,
        };
        let used = budget.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if used > MAX_ROUND_OUTPUT && !dropping {
            overflow.store(true, Ordering::Relaxed);
        }
        if overflow.load(Ordering::Relaxed) {
            out = Vec::new();
        }
    }
    out
}

/// Logs the contract's stdout or stderr line by line, never to users.
async fn log_lines(fd: OwnedFd, seq: u64, stream: &'static str, stop: CancellationToken) {
    let Ok(mut rx) = pipe::Receiver::from_owned_fd(fd) else { return };
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut lines = 0u64;
    let emit = |line: &[u8], lines: &mut u64| {
        *lines += 1;
        if *lines <= MAX_LOG_LINES {
            tracing::info!(target: "contract", seq, stream, "{}", String::from_utf8_lossy(line));
        } else if *lines == MAX_LOG_LINES + 1 {
            tracing::warn!(target: "contract", seq, stream, "more output than {MAX_LOG_LINES} lines this round; the rest is not logged");
        }
    };
    loop {
        let n = tokio::select! {
            r = rx.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
            () = stop.cancelled() => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            emit(&pending[start..start + pos], &mut lines);
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LOG_LINE {
            emit(&pending[..MAX_LOG_LINE], &mut lines);
            pending.drain(..MAX_LOG_LINE);
        }
    }
    if !pending.is_empty() {
        emit(&pending, &mut lines);
    }
}

/// Refuses before forking what `exec` would refuse, so the error is reported as such.
pub(crate) fn check_executable(program: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(program) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{} is not an executable file", program.display())),
        Err(e) => Err(format!("{}: {e}", program.display())),
    }
}

/// Runs in the forked child before `exec`: new session, death signal, fds in place.
///
/// `moves` lists (current fd, fd the contract must see it as). Each end is first parked on a
/// fresh close-on-exec fd above all targets (`F_DUPFD_CLOEXEC` takes only free numbers, so no
/// descriptor is overwritten and no move clobbers a later source), then moved to its target.
fn child_setup(moves: &[(RawFd, RawFd)], parked: &mut [RawFd], parent: libc::pid_t) -> std::io::Result<()> {
    let check = |r: libc::c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) };
    let first_unlisted = moves.iter().map(|(_, to)| *to + 1).fold(FIRST_USER_FD, RawFd::max);
    // SAFETY: plain system calls on integers; all are async-signal-safe and valid in the child
    // between fork and exec. Every fd named is one this child holds (inherited or made here).
    unsafe {
        check(libc::setsid())?;
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0))?;
        if libc::getppid() != parent {
            // execd died between fork and prctl: the death signal would never come.
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        for ((from, _), slot) in moves.iter().zip(parked.iter_mut()) {
            *slot = check(libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, first_unlisted))?;
        }
        for ((_, to), from) in moves.iter().zip(parked.iter()) {
            // dup2 leaves the target without close-on-exec: it stays open in the contract.
            check(libc::dup2(*from, *to))?;
        }
        // Defence in depth: everything above the listed fds closes at exec, whatever its flags.
        // (Older kernels lack this call; all those fds are close-on-exec already.)
        let _ = libc::close_range(
            first_unlisted as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        );
    }
    Ok(())
}
