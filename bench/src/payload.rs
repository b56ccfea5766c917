//! Inputs that carry their identity. All inputs of one user in one ledger reach the contract
//! concatenated and its output comes back as one frame (docs/contract-interface.md), so every input is a
//! fixed-size record — sequence number (u64 LE), user (u32 LE), then filler derived from both —
//! and the echo contract's output is cut back into records of that size.

/// The bytes before the filler: sequence number and user.
pub const HEADER_BYTES: usize = 12;

/// The input number `seq` of user `client`, `size` bytes long (`size` ≥ [`HEADER_BYTES`]).
pub fn make(client: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut input = Vec::with_capacity(size.max(HEADER_BYTES));
    input.extend_from_slice(&seq.to_le_bytes());
    input.extend_from_slice(&client.to_le_bytes());
    let salt = (seq as u8).wrapping_mul(31) ^ (client as u8);
    input.extend((HEADER_BYTES..size).map(|i| salt.wrapping_add(i as u8)));
    input
}

/// Cuts one output frame of user `client` into the sequence numbers of the inputs it answers,
/// checking that every record is exactly the input that was sent.
pub fn split(output: &[u8], client: u32, size: usize) -> Result<Vec<u64>, String> {
    if size < HEADER_BYTES || output.is_empty() || !output.len().is_multiple_of(size) {
        return Err(format!("an output of {} bytes is not a whole number of {size}-byte inputs", output.len()));
    }
    output
        .chunks_exact(size)
        .map(|record| {
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&record[..8]);
            let seq = u64::from_le_bytes(seq);
            if record == make(client, seq, size).as_slice() {
                Ok(seq)
            } else {
                Err(format!("an output record is not the input user {client} sent as number {seq}"))
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_inputs_split_back_into_their_numbers() {
        let mut round = make(7, 41, 100);
        round.extend(make(7, 42, 100));
        assert_eq!(make(7, 41, 100).len(), 100);
        assert_eq!(split(&round, 7, 100).unwrap(), vec![41, 42]);
    }

    #[test]
    fn wrong_sizes_users_and_bytes_are_caught() {
        let input = make(1, 5, 32);
        assert!(split(&input[..31], 1, 32).is_err());
        assert!(split(&input, 2, 32).is_err(), "another user's input");
        let mut changed = input.clone();
        changed[20] ^= 1;
        assert!(split(&changed, 1, 32).is_err());
        assert!(split(&[], 1, 32).is_err());
    }
}
