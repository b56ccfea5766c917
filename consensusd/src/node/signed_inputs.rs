//! Inputs their users signed (HotPocket 0.6, `hp_ledger::user_signed`) in the node loop: the
//! replay rules applied when this node proposes and when it judges a proposal, the inputs the
//! rules have given up on dropped from the mempool, and what became of this node's own users'
//! inputs told to userd (in which ledger, or why not).

use super::Node;
use crate::api::ToUserd;
use hp_ledger::user_signed::{Judge, Opened, Rejection, is_final, open_input};
use hp_ledger::{Input, Ledger};
use std::collections::HashMap;
use tracing::warn;

impl Node {
    /// The judge for the ledger at `seq`; a store that cannot be read admits nothing.
    fn judge(&self, seq: u64) -> Judge<impl FnMut(&[u8; 32]) -> Option<u64> + '_> {
        Judge::new(seq, self.members_at(seq).input_window(), move |user| match self.store.user_nonce(user) {
            Ok(nonce) => nonce,
            Err(e) => {
                warn!(error = %e, "cannot read a user's nonce; their signed inputs wait");
                Some(u64::MAX)
            }
        })
    }

    /// What opening `input` gives: from the mempool when it holds exactly this input.
    fn opened(&self, input: &Input) -> Option<Result<Opened, Rejection>> {
        match self.mempool.get(&input.id) {
            Some(known) if known == input => self.mempool.opened(&input.id),
            _ => open_input(input),
        }
    }

    /// The inputs a ledger at `seq` may carry of `candidates`: each user's signed inputs in
    /// nonce order (in the places that user's signed inputs had), and only those the replay
    /// rules admit. Returns the rest with why.
    pub(super) fn admit_signed(&self, seq: u64, mut candidates: Vec<Input>) -> (Vec<Input>, Vec<(Input, Rejection)>) {
        // Reorder each user's signed inputs by nonce among their own slots.
        let mut slots: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
        for (i, input) in candidates.iter().enumerate() {
            if input.user_signed.is_some() {
                slots.entry(input.user).or_default().push(i);
            }
        }
        for positions in slots.values().filter(|p| p.len() > 1) {
            let mut mine: Vec<Input> = positions.iter().map(|&i| candidates[i].clone()).collect();
            mine.sort_by_key(|input| self.opened(input).and_then(Result::ok).map_or(u64::MAX, |o| o.nonce));
            for (&i, input) in positions.iter().zip(mine) {
                candidates[i] = input;
            }
        }
        let mut judge = self.judge(seq);
        let (mut kept, mut rejected) = (Vec::with_capacity(candidates.len()), Vec::new());
        for input in candidates {
            match self.opened(&input) {
                None => kept.push(input),
                Some(opened) => match judge.admit(&input.user, opened) {
                    Ok(()) => kept.push(input),
                    Err(why) => rejected.push((input, why)),
                },
            }
        }
        (kept, rejected)
    }

    /// Whether every signed input of a proposed ledger is admitted, in the ledger's order.
    pub(super) fn signed_inputs_valid(&self, ledger: &Ledger) -> Result<(), Rejection> {
        let mut judge = self.judge(ledger.seq);
        for input in &ledger.inputs {
            if let Some(opened) = self.opened(input) {
                judge.admit(&input.user, opened)?;
            }
        }
        Ok(())
    }

    /// Drops what the rules gave up on for good, and tells userd for this node's own inputs.
    pub(super) fn give_up_on(&mut self, rejected: Vec<(Input, Rejection)>) {
        for (input, why) in rejected {
            if is_final(&why) {
                self.mempool.remove(&input.id);
                self.report_signed(std::iter::once(&input), Err(why.to_string()));
            }
        }
    }

    /// After ledger `ledger` is stored: its own users' signed inputs are in it, and pending
    /// ones past their window or below their user's nonce now never will be.
    pub(super) fn after_signed_stored(&mut self, ledger: &Ledger) {
        self.report_signed(ledger.inputs.iter(), Ok((ledger.seq, ledger.hash())));
        let next = ledger.seq + 1;
        let mut gone = Vec::new();
        for (id, opened) in self.mempool.user_signed() {
            let why = match opened {
                Err(why) => Some(why.clone()),
                Ok(o) if o.max_ledger_seq < next => Some(Rejection::MaxLedgerExpired),
                Ok(_) => None,
            };
            if let Some(why) = why {
                gone.push((*id, why));
            }
        }
        // Below the user's nonce: only the users with signed inputs in this ledger have a new
        // one, so only their pending inputs are checked against the store.
        let moved: std::collections::HashSet<[u8; 32]> =
            ledger.inputs.iter().filter(|i| i.user_signed.is_some()).map(|i| i.user).collect();
        let pending: Vec<Input> = self
            .mempool
            .user_signed()
            .filter(|(id, _)| !gone.iter().any(|(g, _)| g == *id))
            .filter_map(|(id, _)| self.mempool.get(id))
            .filter(|input| moved.contains(&input.user))
            .cloned()
            .collect();
        for input in pending {
            // The store keeps the nonces it read or wrote: asking again per input costs no query.
            let stored = self.store.user_nonce(&input.user).ok().flatten();
            if let (Some(Ok(opened)), Some(stored)) = (self.mempool.opened(&input.id), stored)
                && opened.nonce <= stored
            {
                let why = if opened.nonce == stored { Rejection::AlreadySubmitted } else { Rejection::NonceExpired };
                gone.push((input.id, why));
            }
        }
        for (id, why) in gone {
            if let Some(input) = self.mempool.get(&id).cloned() {
                self.mempool.remove(&id);
                self.report_signed(std::iter::once(&input), Err(why.to_string()));
            }
        }
    }

    /// Tells userd, in one message, what became of those of `inputs` that are signed inputs
    /// this node accepted from its users.
    fn report_signed<'a>(&mut self, inputs: impl Iterator<Item = &'a Input>, fate: Result<(u64, [u8; 32]), String>) {
        let me = self.me_bytes();
        let input_hashes: Vec<[u8; 32]> = inputs
            .filter(|input| input.id.origin == me)
            .filter_map(|input| input.user_signed.as_ref().map(|signed| signed.input_hash()))
            .collect();
        if !input_hashes.is_empty() {
            self.send_to_session(ToUserd::InputStatus { input_hashes, fate });
        }
    }
}
