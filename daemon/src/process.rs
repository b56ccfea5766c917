//! How a daemon relates to the supervisor that started it.

/// When started by the supervisor (`HP_SUPERVISED=1`), asks the kernel to send SIGTERM when the
/// supervisor dies, so no daemon lives on as an orphan; exits at once if it already died.
pub fn die_with_parent() {
    if std::env::var_os("HP_SUPERVISED").is_none_or(|v| v != "1") {
        return;
    }
    let parent = nix::unistd::getppid();
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).is_err() {
        tracing::warn!("cannot ask to die with the supervisor");
    }
    // The parent may have died before the request above took effect.
    if nix::unistd::getppid() != parent || parent.as_raw() == 1 {
        std::process::exit(0);
    }
}
