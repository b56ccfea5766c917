//! The helo parser against arbitrary input: it never panics and accepts only valid helos.

use ed25519_dalek::{Signer, SigningKey};
use hp_userd::handshake::{Challenge, verify_helo};
use proptest::prelude::*;

fn valid_helo(seed: [u8; 32], challenge: &Challenge) -> (String, String) {
    let key = SigningKey::from_bytes(&seed);
    let sig = hex::encode(key.sign(challenge.as_str().as_bytes()).to_bytes());
    let text = format!(
        r#"{{"type":"helo","challenge":"{}","pubkey":"{}","sig":"{sig}","timestamp":1}}"#,
        challenge.as_str(),
        hex::encode(key.verifying_key().to_bytes())
    );
    (text, sig)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_never_accepted(bytes in proptest::collection::vec(any::<u8>(), 0..600), c in any::<[u8; 16]>()) {
        prop_assert!(verify_helo(&bytes, &Challenge::from_bytes(c)).is_err());
    }

    #[test]
    fn arbitrary_helo_shaped_json_is_never_accepted(
        challenge in "[0-9a-fA-F]{30,34}",
        pubkey in "[0-9a-fA-Fx;]{62,66}",
        sig in "[0-9a-fA-F ]{126,130}",
        kind in "helo|hel|HELO",
        c in any::<[u8; 16]>(),
    ) {
        let text = format!(r#"{{"type":"{kind}","challenge":"{challenge}","pubkey":"{pubkey}","sig":"{sig}","timestamp":1}}"#);
        prop_assert!(verify_helo(text.as_bytes(), &Challenge::from_bytes(c)).is_err());
    }

    #[test]
    fn a_valid_helo_survives_only_case_changes(
        seed in any::<[u8; 32]>(),
        c in any::<[u8; 16]>(),
        at in 0usize..128,
        replacement in any::<char>(),
    ) {
        let challenge = Challenge::from_bytes(c);
        let (text, sig) = valid_helo(seed, &challenge);
        prop_assert!(verify_helo(text.as_bytes(), &challenge).is_ok());
        let original = sig.as_bytes()[at] as char;
        let mut mutated_sig = sig.clone();
        mutated_sig.replace_range(at..at + 1, &replacement.to_string());
        let mutated = text.replace(&sig, &mutated_sig);
        let result = verify_helo(mutated.as_bytes(), &challenge);
        if replacement.to_ascii_lowercase() == original {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err());
        }
    }
}
