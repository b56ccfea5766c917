//! The published HotPocket 0.6 client (`hotpocket-js-client`, pinned in `tests/js/package.json`
//! and its lock file) run by Node.js against real nodes: `tests/js/client.js` takes a spec and
//! prints one `RESULT <json>` line per step. `scripts/test` installs the package
//! (`npm ci --prefix tests/js`) before the tests run.

use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The folder of the JS driver.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Kills the driver if a test gives up on it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the driver with `spec` and returns its `RESULT` objects, in order. Panics (naming the
/// fix) when Node.js or the package is missing, and when the driver runs past `timeout`.
pub fn run(spec: &Value, timeout: Duration) -> Vec<Value> {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/hotpocket-js-client").is_dir(),
        "hotpocket-js-client is not installed: run `npm ci --prefix tests/js` (scripts/test does)"
    );
    let child = Command::new("node")
        .arg(dir.join("client.js"))
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (Node.js is needed for the HotPocket client tests): {e}"));
    let mut running = Running(child);
    // Read both pipes as they fill, so that a chatty client never blocks on a full pipe.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = reader(running.0.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = reader(running.0.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    loop {
        match running.0.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("the HotPocket client did not finish within {timeout:?}: {spec}"),
            Err(e) => panic!("cannot wait for the HotPocket client: {e}"),
        }
    }
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let results: Vec<Value> =
        out.lines().filter_map(|l| l.strip_prefix("RESULT ")).filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!results.is_empty(), "the HotPocket client printed no result\nstdout:\n{out}\nstderr:\n{err}");
    results
}
