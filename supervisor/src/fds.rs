//! Keeping descriptors that our own parent leaked to us out of the daemons (STYLE.md, "clean
//! process starts"). Everything the supervisor opens itself is already close-on-exec; a shell,
//! a test harness or a service manager may still hand us extra descriptors without the flag,
//! and those would pass through every `exec`. This marks them close-on-exec once, at start.

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use std::os::fd::{BorrowedFd, RawFd};

/// Marks every descriptor above stderr close-on-exec. Call it first thing in `main`, while the
/// process has a single thread and has opened nothing of its own.
#[allow(unsafe_code)]
pub fn mark_inherited_cloexec() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    // The listing's own descriptor is among the entries; it is close-on-exec already and stays
    // open while we iterate, so touching it is harmless.
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else { continue };
        if fd <= 2 {
            continue;
        }
        // SAFETY: `fd` is listed in /proc/self/fd, so it is open; nothing else runs in this
        // process yet (single thread, called before the runtime starts), so it stays open for
        // the duration of this one fcntl call, the only use of the borrow.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}
