//! The checks themselves are tested: a real run's stores and client records pass, and each kind
//! of fault, planted into a copy of them, is reported.

use hp_ledger::{Input, InputId, Ledger, LedgerBody};
use hp_tests::harness::check::{Report, check};
use hp_tests::harness::load::LoadOptions;
use hp_tests::harness::scenario::Collected;
use hp_tests::harness::{Scenario, ScenarioOptions};
use std::time::Duration;

fn expect(report: Report, needle: &str) {
    assert!(
        report.problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got:\n{}",
        report.describe(10)
    );
}

/// A ledger of `view` with inputs, as (index in records, its body).
fn ledger_with_inputs(c: &Collected, node: usize) -> (usize, LedgerBody) {
    let records = &c.views[node].records;
    let i = records.iter().rposition(|r| r.ledger.inputs.len() >= 2).expect("a ledger with two inputs");
    (i, (*records[i].ledger).clone())
}

#[test]
fn the_checker_passes_a_clean_run_and_reports_each_planted_fault() {
    let options = ScenarioOptions {
        nodes: 3,
        load: LoadOptions { clients: 3, interval: Duration::from_millis(20), ..LoadOptions::default() },
        ..Default::default()
    };
    let mut s = Scenario::start("checker self-test", options);
    s.run_load();
    let c = s.collect();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let clean = check(&c.views, &c.record, &c.options);
    assert!(clean.ok(), "a clean run failed the checks:\n{}", clean.describe(20));
    assert!(clean.stats.executed > 50, "{}", clean.stats);

    // A client got one output twice.
    let mut record = c.record.clone();
    let out = record.clients[0].conns[0].outputs[0].clone();
    record.clients[0].conns[0].outputs.push(out);
    expect(check(&c.views, &record, &c.options), "twice");

    // An executed input's output never came to an open connection.
    let mut record = c.record.clone();
    record.clients[1].conns[0].outputs.remove(0);
    expect(check(&c.views, &record, &c.options), "got no output");

    // An output that is not the agreed one (the count is off by one).
    let mut record = c.record.clone();
    let out = record.clients[2].conns[0].outputs.last_mut().unwrap();
    let last = out.len() - 1;
    out[last] = if out[last] == b'9' { b'0' } else { out[last] + 1 };
    expect(check(&c.views, &record, &c.options), "the agreed output is");

    // An input sent on an open connection, neither executed nor refused.
    let mut record = c.record.clone();
    record.clients[0].conns[0].sent.push(999_999);
    expect(check(&c.views, &record, &c.options), "never executed");

    // A node whose ledger differs at one sequence: a fork.
    let mut views = clean_copy(&c);
    let (i, mut body) = ledger_with_inputs(&c, 1);
    body.time_ms += 1;
    views[1].records[i].ledger = Ledger::new(body);
    expect(check(&views, &c.record, &c.options), "fork at ledger");

    // One input instance in two ledgers, and a token executed twice.
    let mut views = clean_copy(&c);
    for view in &mut views {
        let (i, mut body) = ledger_with_inputs(&c, 0);
        let dup: Input = view.records[1].ledger.inputs.first().cloned().unwrap_or_else(|| body.inputs[0].clone());
        body.inputs.push(dup);
        view.records[i].ledger = Ledger::new(body);
    }
    let report = check(&views, &c.record, &c.options);
    expect(report, "executed twice");

    // An input no client sent.
    let mut views = clean_copy(&c);
    for view in &mut views {
        let (i, mut body) = ledger_with_inputs(&c, 0);
        let mut forged = body.inputs[0].clone();
        forged.id = InputId { origin: forged.id.origin, nonce: u64::MAX };
        forged.data = bytes::Bytes::from_static(b"c0-424242;");
        body.inputs.push(forged);
        view.records[i].ledger = Ledger::new(body);
    }
    expect(check(&views, &c.record, &c.options), "was never sent");

    // An accepted input that no ledger carries.
    let mut views = clean_copy(&c);
    let mut lost: Input = c.views[0].records.iter().find_map(|r| r.ledger.inputs.first().cloned()).unwrap();
    lost.id.nonce = u64::MAX - 1;
    views[0].pending.push(lost);
    expect(check(&views, &c.record, &c.options), "no ledger carries");

    // A certified outputs hash that is not the contract's.
    let mut views = clean_copy(&c);
    for view in &mut views {
        if let Some(r) = view.records.iter_mut().rev().find(|r| r.result.is_some() && !r.ledger.inputs.is_empty()) {
            r.result.as_mut().unwrap().outputs_hash = [7; 32];
        }
    }
    expect(check(&views, &c.record, &c.options), "is not the hash of the contract's outputs");

    // A node whose state on disk is no certified state.
    let mut views = clean_copy(&c);
    views[1].disk_state = Some([9; 32]);
    expect(check(&views, &c.record, &c.options), "state/ on disk");

    // A node that logged a panic.
    let mut views = clean_copy(&c);
    views[2].log.push_str("\nthread 'main' panicked at src/x.rs:1:1\n");
    expect(check(&views, &c.record, &c.options), "panicked at");
}

fn clean_copy(c: &Collected) -> Vec<hp_tests::harness::check::NodeView> {
    c.views
        .iter()
        .map(|v| hp_tests::harness::check::NodeView {
            index: v.index,
            records: v.records.clone(),
            pending: v.pending.clone(),
            verify: v.verify.clone(),
            log: v.log.clone(),
            status: v.status.clone(),
            disk_state: v.disk_state,
        })
        .collect()
}
