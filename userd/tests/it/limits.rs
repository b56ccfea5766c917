//! docs/user-protocol.md step 5: inputs over `pubmaxsize` or `pubmaxcpm` are refused with an error frame
//! naming the limit; the connection stays open.

use crate::support::*;
use hp_client::Output;
use hp_userd::connection::{ConnSettings, websocket_limit};
use std::time::Duration;

#[tokio::test]
async fn an_input_over_pubmaxsize_is_refused_and_the_connection_kept() {
    let node = Node::start_with(|s| {
        s.pubmaxsize = 1000;
        s.connection = ConnSettings::new(1000, Duration::from_secs(5));
    })
    .await;
    let (_, mut client) = node.user().await;
    client.send(&[7u8; 1001]).await.unwrap();
    let Some(Output::Error(reason)) = recv(&mut client).await else { panic!("expected an error frame") };
    assert!(reason.contains("pubmaxsize") && reason.contains("1001"), "{reason}");
    client.send(&[7u8; 1000]).await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Output::Data(vec![7u8; 1000].into())));
}

#[tokio::test]
async fn a_far_larger_frame_closes_the_connection() {
    let node = Node::start_with(|s| {
        s.pubmaxsize = 1000;
        s.connection = ConnSettings::new(1000, Duration::from_secs(5));
    })
    .await;
    let (key, mut client) = node.user().await;
    let _ = client.send(&vec![1u8; websocket_limit(1000) + 1]).await;
    assert!(!matches!(recv(&mut client).await, Some(Output::Data(_))));
    let user = hp_cfg::PublicKeyHex(key_bytes(&key));
    eventually("the user is gone", || !node.userd().registry().contains(&user)).await;
}

#[tokio::test]
async fn a_fast_sender_is_refused_over_pubmaxcpm_and_the_connection_kept() {
    let node = Node::start_with(|s| s.pubmaxcpm = 3).await;
    let (key, mut client) = node.user().await;
    for i in 0..5u8 {
        client.send(&[i]).await.unwrap();
    }
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        match recv(&mut client).await {
            Some(Output::Data(d)) => data.push(d.to_vec()),
            Some(Output::Error(reason)) => errors.push(reason),
            None => panic!("connection closed"),
        }
    }
    assert_eq!(data, vec![vec![0], vec![1], vec![2]]);
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.contains("pubmaxcpm")), "{errors:?}");
    assert!(node.userd().registry().contains(&hp_cfg::PublicKeyHex(key_bytes(&key))));
    // A reconnect does not refill the bucket: the limit is per user.
    drop(client);
    let mut again = node.user_with(&key).await;
    again.send(b"x").await.unwrap();
    assert!(matches!(recv(&mut again).await, Some(Output::Error(e)) if e.contains("pubmaxcpm")));
}
