//! Hostile users: a flood on the user port from one address, while the fault load runs from
//! another. The node must keep its port open to everyone else (issue 16 point 6): connections
//! that have not signed in have a pool of their own with a share per address, and signed-in
//! users a share per address of theirs.

use hp_cfg::Config;
use hp_tests::harness::{Scenario, ScenarioOptions};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
const NEWCOMER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Per node: sockets that never say a word, and users that sign in with fresh keys.
const HALF_OPEN: usize = 120;
const SIGN_INS: usize = 24;
const PER_IP: u64 = 6;

/// Before the pools were split, `max_connections` (64 here) counted every socket, so the 120
/// half-open sockets from one address took all of it and a user from another address was
/// turned away; now the flooder holds `max_unauth_per_ip` pending and `max_connections_per_ip`
/// signed-in slots and nothing more, the newcomer is served on every node, and the load never
/// notices.
#[test]
fn a_user_port_flood_from_one_address_keeps_no_other_user_out() {
    let options = ScenarioOptions {
        nodes: 3,
        edit: Some(Box::new(|_: usize, cfg: &mut Config| {
            cfg.max_connections = 64;
            cfg.max_connections_per_ip = PER_IP;
            cfg.max_unauth_connections = 64;
            cfg.max_unauth_per_ip = 8;
        })),
        ..Default::default()
    };
    let mut s = Scenario::start("user port flood from one address", options);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let urls: Vec<String> = s.cluster.nodes.iter().map(|n| n.url()).collect();
    let mut held = Vec::new();
    let mut signed_in = Vec::new();
    for url in &urls {
        for _ in 0..HALF_OPEN {
            // The node may close a socket at once; a failed connect is the node refusing too.
            let connect =
                async { tokio::time::timeout(Duration::from_secs(5), hp_client::connect_tcp_from(url, FLOODER)).await };
            if let Ok(Ok(socket)) = rt.block_on(connect) {
                held.push(socket);
            }
        }
        let mut accepted = 0;
        for _ in 0..SIGN_INS {
            let key = hp_client::generate_key();
            let connect = async {
                tokio::time::timeout(Duration::from_secs(10), hp_client::Client::connect_from(url, FLOODER, &key)).await
            };
            match rt.block_on(connect) {
                Ok(Ok(client)) => {
                    accepted += 1;
                    signed_in.push(client);
                }
                Ok(Err(hp_client::ClientError::Refused(reason))) => {
                    assert!(reason.contains("max_connections_per_ip") || reason.contains("max_unauth"), "{reason}")
                }
                // Closed before the upgrade: the flooder's pending share is full.
                Ok(Err(_)) => {}
                Err(_) => panic!("a sign-in from the flooder hung on {url}"),
            }
        }
        assert!(accepted as u64 <= PER_IP, "{url}: the flooder signed in {accepted} users past its share");
    }
    let mut newcomers = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let input = format!("newcomer-{i};").into_bytes();
        let output = hp_tests::user::send_one_from(url, NEWCOMER, &input, Duration::from_secs(30));
        assert!(output.starts_with(&input), "node {}: the newcomer got {:?}", i + 1, String::from_utf8_lossy(&output));
        newcomers.push(input);
    }
    s.run_load();
    s.expect_progress(40, Duration::from_secs(60));
    s.check_options().outside_inputs = newcomers;
    drop((held, signed_in));
    s.finish();
}
