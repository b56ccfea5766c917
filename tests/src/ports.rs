//! Ports that cannot collide between tests, even when test binaries run in parallel: each
//! candidate is held by a bound listener only until it is handed out, and every port handed out
//! in this process is remembered so it is never handed out twice.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1 (and, as far as can be checked, on ::1).
pub fn free_port() -> u16 {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(addr) = listener.local_addr() else { continue };
        let port = addr.port();
        if handed.contains(&port) || TcpListener::bind(("::1", port)).is_err() && ipv6_available() {
            continue;
        }
        handed.insert(port);
        return port;
    }
    panic!("no free port found");
}

fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}
