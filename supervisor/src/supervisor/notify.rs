//! systemd's notify protocol (`Type=notify`): READY=1 once every daemon runs, STATUS= lines when
//! something changes, WATCHDOG=1 pings from the supervisor loop, STOPPING=1 on shutdown.
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

/// Sends the notifications and remembers what was sent, so each is sent once per change.
#[derive(Debug, Default)]
pub struct Notifier {
    ready_sent: bool,
    last_status: String,
}

impl Notifier {
    /// The interval at which to ping the watchdog: half of systemd's `WatchdogSec`, so one late
    /// ping does not get the node killed. `None` when the watchdog is off.
    pub fn watchdog_interval() -> Option<Duration> {
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            Some(Duration::from_micros(usec / 2))
        } else {
            None
        }
    }

    fn send(states: &[NotifyState]) {
        // The env stays set (unset_env = false) because later notifications need it; the
        // daemons never see it since their environment is allow-listed.
        if let Err(error) = sd_notify::notify(false, states) {
            tracing::warn!(%error, "cannot notify systemd");
        }
    }

    /// Reports the node's state line; sends READY=1 with it the first time `all_running`.
    pub fn update(&mut self, status: &str, all_running: bool) {
        let ready_now = all_running && !self.ready_sent;
        if status == self.last_status && !ready_now {
            return;
        }
        self.last_status = status.to_string();
        if ready_now {
            self.ready_sent = true;
            tracing::info!(status, "node ready");
            Self::send(&[NotifyState::Ready, NotifyState::Status(status)]);
        } else {
            Self::send(&[NotifyState::Status(status)]);
        }
    }

    /// Tells systemd the supervisor loop is alive.
    pub fn watchdog(&self) {
        Self::send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&mut self) {
        self.last_status = "stopping".into();
        Self::send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}
