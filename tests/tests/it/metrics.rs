//! The HTTP listener of issue 21 on a running cluster: `/metrics` shows a rising height and
//! exactly the metrics the README's table documents, `/status` the status JSON, `/health` 200
//! while the network closes ledgers and 503 with a reason when it cannot, 404 for anything else.

use hp_tests::ports::free_port;
use hp_tests::user::send_one;
use hp_tests::wait::poll_until;
use hp_tests::{Cluster, ClusterOptions, OrPanic};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);
const README: &str = include_str!("../../../README.md");

/// One HTTP/1.1 request on a fresh connection: (status code, body), or `None` when the port does
/// not answer within a few seconds.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.take(4 << 20).read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The metric names the README's table lists.
fn documented() -> BTreeSet<String> {
    README
        .lines()
        .filter(|line| line.starts_with("| `hotpocket_"))
        .filter_map(|line| line.split('`').nth(1).map(str::to_string))
        .collect()
}

/// The names a scrape shows, as the README writes them: counters with `_total`, histograms by
/// their family name.
fn scraped(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let (name, kind) = (words.next()?, words.next()?);
            Some(if kind == "counter" { format!("{name}_total") } else { name.to_string() })
        })
        .collect()
}

/// The value of an unlabelled sample.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_on_a_running_cluster() {
    let ports: Vec<u16> = (0..3).map(|_| free_port().or_panic()).collect();
    let edit_ports = ports.clone();
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 3,
        edit: Some(Box::new(move |i, cfg| cfg.metrics_port = Some(edit_ports[i]))),
        ..Default::default()
    })
    .or_panic();
    let port = ports[0];

    // The height rises between scrapes.
    let first = poll_until(LONG, || {
        let (code, body) = http(port, "GET", "/metrics")?;
        (code == 200).then_some(())?;
        sample(&body, "hotpocket_ledger_height").filter(|h| *h >= 1.0).map(|h| (h, body))
    });
    let (height, body) = first.unwrap_or_else(|| panic!("no height on /metrics\n{}", cluster.logs()));
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
    let higher = poll_until(LONG, || {
        let (_, body) = http(port, "GET", "/metrics")?;
        sample(&body, "hotpocket_ledger_height").filter(|h| *h > height)
    });
    assert!(higher.is_some(), "the height stayed at {height}\n{}", cluster.logs());

    // Exactly the documented names are there, from every daemon and the supervisor.
    let documented = documented();
    assert!(documented.len() >= 20, "the README's metrics table has only {documented:?}");
    let names = scraped(&body);
    let undocumented: Vec<_> = names.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&names).collect();
    assert!(undocumented.is_empty(), "in the scrape but not in the README's table: {undocumented:?}");
    assert!(missing.is_empty(), "in the README's table but not in the scrape: {missing:?}\n{body}");
    // Both peers are linked soon; the gauge follows the links once a tick, so a ledger may
    // close before it shows the second one (seen under the whole suite's load).
    let linked = poll_until(LONG, || {
        let (_, body) = http(port, "GET", "/metrics")?;
        (sample(&body, "hotpocket_peers_connected") == Some(2.0)).then_some(())
    });
    assert!(linked.is_some(), "hotpocket_peers_connected never reached 2\n{body}");
    assert!(body.contains("hotpocket_daemon_up{daemon=\"execd\"} 1"), "{body}");

    // A user's input is counted where it is accepted, and its ledger's run in execd.
    let url = cluster.nodes[0].url();
    assert_eq!(send_one(&url, b"count me", LONG), b"COUNT ME");
    let counted = poll_until(LONG, || {
        let (_, body) = http(port, "GET", "/metrics")?;
        let accepted = sample(&body, "hotpocket_inputs_accepted_total")?;
        let bytes = sample(&body, "hotpocket_input_bytes_accepted_total")?;
        (accepted >= 1.0 && bytes >= 8.0 && body.contains("hotpocket_contract_runs_total{result=\"ok\"}")).then_some(())
    });
    assert!(counted.is_some(), "the input was not counted: {:?}", http(port, "GET", "/metrics"));

    // /status is the JSON of `hotpocket status --json`; /health is 200 while ledgers close.
    let (code, status) = http(port, "GET", "/status").unwrap_or_default();
    assert_eq!(code, 200, "{status}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
    assert!(status["lcl_seq"].as_u64().is_some_and(|s| s >= 1), "{status}");
    assert_eq!(status["components"]["consensusd"]["state"], "running", "{status}");
    let healthy = poll_until(LONG, || http(port, "GET", "/health").filter(|(code, _)| *code == 200));
    assert!(healthy.is_some(), "never healthy: {:?}", http(port, "GET", "/health"));

    // Only GET of the three paths.
    assert_eq!(http(port, "GET", "/nothing").map(|r| r.0), Some(404));
    assert_eq!(http(port, "POST", "/metrics").map(|r| r.0), Some(404));

    // With two of three nodes gone no quorum is left (q = 3): 503, saying why.
    cluster.node(1).kill();
    cluster.node(2).kill();
    let unhealthy = poll_until(LONG, || http(port, "GET", "/health").filter(|(code, _)| *code == 503));
    let (_, reason) = unhealthy.unwrap_or_else(|| panic!("still healthy: {:?}", http(port, "GET", "/health")));
    assert!(reason.contains("peers connected"), "{reason}");
}

/// `scripts/grafana-dashboard.json` asks only for documented metrics, and shows every one.
#[test]
fn the_grafana_dashboard_uses_the_documented_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../scripts/grafana-dashboard.json")).expect("the dashboard is JSON");
    let documented = documented();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for (start, _) in expr.match_indices("hotpocket_") {
                let name: String =
                    expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| documented.contains(*f)))
                    .map_or(name.clone(), str::to_string);
                assert!(
                    documented.contains(&family),
                    "the dashboard asks for `{name}`, which the README does not list"
                );
                used.insert(family);
            }
        }
    }
    let unused: Vec<_> = documented.difference(&used).collect();
    assert!(unused.is_empty(), "the dashboard shows none of {unused:?}");
}
