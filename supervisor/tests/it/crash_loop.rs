//! A daemon that keeps dying is restarted with growing delays: the loop slows down and never
//! spins, and the other daemons are not disturbed.

use crate::kit::{TestDir, bin_dir_with, wait_for};
use std::time::{Duration, Instant};

#[test]
fn a_crash_loop_backs_off() {
    let t = TestDir::new();
    let bins = bin_dir_with(t.tmp.path(), &[("userd", "echo 'hp-userd: broken on purpose' >&2; exit 1")]);
    let mut node = t.run_with(bins, |_| {});
    let started = Instant::now();
    // Delays 0.1 + 0.2 + 0.4 + 0.8 s: the 4th restart comes about 1.5 s after start.
    let looping = wait_for(Duration::from_secs(10), || {
        node.status().filter(|s| s["components"]["userd"]["restarts"].as_u64() >= Some(4))
    });
    assert!(looping.is_some(), "userd was not restarted: {:?}\n{}", node.status(), node.log_text());
    // Watch it for three more seconds: at most a few more restarts (the next delays are 1.6 s,
    // 3.2 s), never hundreds.
    let deadline = started + Duration::from_secs(5);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = node.status().expect("the supervisor keeps answering during a crash loop");
    let restarts = s["components"]["userd"]["restarts"].as_u64().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!((4..=7).contains(&restarts), "{restarts} restarts in {elapsed:.1} s: {s}");
    assert!(["restarting", "starting"].contains(&s["components"]["userd"]["state"].as_str().unwrap()), "{s}");
    // The others run on, undisturbed.
    for other in ["consensusd", "execd"] {
        assert_eq!(s["components"][other]["restarts"], 0, "{other}: {s}");
    }
    let log = node.log_text();
    assert!(log.contains("crash loop"), "the crash loop is logged as such:\n{log}");
}
