//! A short benchmark of a one-node cluster: the whole path works and the report adds up.

use clap::Parser;
use hp_bench::Options;

#[test]
fn a_short_run_answers_every_input_and_reports_it() {
    let bin_dir = hp_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let pictures = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plot = pictures.path().join("run.svg");
    let options = Options::try_parse_from([
        "hp-bench",
        "--nodes",
        "1",
        "--clients",
        "2",
        "--window",
        "4",
        "--seconds",
        "1",
        "--size",
        "64",
        "--roundtime",
        "200",
        "--bin-dir",
        &bin_dir.to_string_lossy(),
        "--plot",
        &plot.to_string_lossy(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let report = runtime.block_on(hp_bench::run(&options, |_| {})).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.errors, 0, "{}", report.to_table());
    assert!(report.inputs > 0, "{}", report.to_table());
    assert!(report.ledgers > 0, "{}", report.to_table());
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.p99);
    assert!(report.peak_rss_mib > 0.0, "memory was sampled: {}", report.to_table());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["nodes"], 1);
    assert_eq!(json["inputs"], report.inputs);
    // --plot drew the run, titled with what ran.
    let svg = std::fs::read_to_string(&plot).unwrap_or_else(|e| panic!("{}: {e}", plot.display()));
    for text in ["hp-bench: 1 node, 2 users × window 4, 64-byte inputs", "latency from send to output", "<polyline"] {
        assert!(svg.contains(text), "no `{text}` in the picture");
    }
}

/// The same over HotPocket 0.6: every user signs its inputs and checks each output's proof
/// against the UNL; an output that failed its check would be an error.
#[test]
fn a_short_hotpocket_run_answers_every_input_with_verified_outputs() {
    let bin_dir = hp_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let bin_dir = bin_dir.to_string_lossy();
    let args = ["hp-bench", "--nodes", "3", "--clients", "2", "--window", "4", "--seconds", "1", "--size", "64"];
    let options = Options::try_parse_from(args.into_iter().chain(["--protocol", "hotpocket", "--bin-dir", &bin_dir]))
        .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let report = runtime.block_on(hp_bench::run(&options, |_| {})).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.errors, 0, "{}", report.to_table());
    assert!(report.inputs > 0, "{}", report.to_table());
}

/// `--protocol both`: one cluster measured with seed users, then with HotPocket users, and the
/// two compared.
#[test]
fn both_protocols_run_in_turn_on_one_cluster_and_are_compared() {
    let bin_dir = hp_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let bin_dir = bin_dir.to_string_lossy();
    let args = ["hp-bench", "--nodes", "1", "--clients", "2", "--window", "4", "--seconds", "1", "--size", "64"];
    let options = Options::try_parse_from(args.into_iter().chain([
        "--protocol",
        "both",
        "--rounds",
        "2",
        "--roundtime",
        "200",
        "--bin-dir",
        &bin_dir,
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let comparison = runtime.block_on(hp_bench::compare(&options, |_| {})).unwrap_or_else(|e| panic!("{e}"));
    let table = comparison.to_table();
    assert_eq!(comparison.rounds.len(), 2, "{table}");
    for round in &comparison.rounds {
        assert_eq!((round.seed.protocol.as_str(), round.hotpocket.protocol.as_str()), ("seed", "hotpocket"));
        for load in [&round.seed, &round.hotpocket] {
            assert_eq!(load.errors, 0, "{table}");
            assert!(load.inputs > 0 && load.ledgers > 0, "{table}");
        }
        let ratio = round.hotpocket.inputs_per_sec / round.seed.inputs_per_sec;
        assert!((round.ratio - ratio).abs() < 0.001, "{table}");
    }
    assert!(comparison.ratio_min <= comparison.ratio_median && comparison.ratio_median <= comparison.ratio_max);
    // A picture is of one load; with both it is refused before anything starts.
    let with_plot = Options::try_parse_from(["hp-bench", "--protocol", "both", "--plot", "x.svg"])
        .unwrap_or_else(|e| panic!("{e}"));
    let err = runtime.block_on(hp_bench::compare(&with_plot, |_| {})).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("--plot draws one load; give it with --protocol seed or hotpocket"));
}

#[test]
fn down_nodes_that_leave_no_quorum_are_refused_before_anything_starts() {
    let options =
        Options::try_parse_from(["hp-bench", "--nodes", "3", "--down", "1"]).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let err = runtime.block_on(hp_bench::run(&options, |_| {})).err().map(|e| e.to_string());
    // 0.8 of 3 is a quorum of 3: no node may be down.
    assert_eq!(err.as_deref(), Some("--down 1 of 3 nodes leaves 2 running, fewer than the quorum of 3"));
}
