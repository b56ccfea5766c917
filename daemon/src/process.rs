//! How a daemon relates to the process that started it, and the descriptors it starts with.

/// When started by the supervisor (`HP_SUPERVISED=1`), asks the kernel to send SIGTERM when the
/// supervisor dies, so no daemon lives on as an orphan; exits at once if it already died.
pub fn die_with_parent() {
    if std::env::var_os("HP_SUPERVISED").is_none_or(|v| v != "1") {
        return;
    }
    if !sigterm_when_parent_dies() {
        std::process::exit(0);
    }
}

/// Asks the kernel to send this process SIGTERM when the thread that started it exits
/// (`PR_SET_PDEATHSIG`). Returns false if the parent is already gone: it may have died before
/// the request took effect, and then no signal will ever come.
pub fn sigterm_when_parent_dies() -> bool {
    let parent = nix::unistd::getppid();
    if let Err(error) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        tracing::warn!(%error, "cannot ask to be stopped with the parent process");
    }
    nix::unistd::getppid() == parent && parent.as_raw() != 1
}

/// Makes sure fds 0, 1 and 2 are open (on /dev/null if not), so that nothing this process
/// opens (a socket, a pipe to the contract) ever gets one of those numbers.
pub fn ensure_std_fds() -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    loop {
        let file = std::fs::File::open("/dev/null")?;
        if file.as_raw_fd() > 2 {
            return Ok(());
        }
        // It filled a gap among 0..=2: keep it open for the life of the process.
        let _ = file.into_raw_fd();
    }
}
