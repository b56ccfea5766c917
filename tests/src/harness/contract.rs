//! The fault tests' contract, in C, compiled once with `cc`: it makes every input attributable
//! and every output recomputable from the chain alone.
//!
//! Per run it reads the header (docs/contract-interface.md, text format), then for each listed user in header
//! order (sorted by public key) everything in the user's pipe. A user who sent something gets
//! back exactly those bytes followed by `#<count>`, where `<count>` is the number of `;` the
//! contract has read since genesis, all users and ledgers together, after this user's inputs.
//! The count lives in `state/count`, so a round run twice or a state copied wrong shows up as a
//! wrong count in some user's output and as a state hash that differs between nodes.
//!
//! While the file `diverge` exists in a node's directory, that node's runs write one byte more
//! to each user ([`DIVERGE_FILE`]): a contract that is not deterministic on one node, for the
//! tests of what a node does when its result differs from the network's.
//!
//! [`expected_outputs`] is the same function in Rust, which lets the checker recompute every
//! ledger's outputs, their hash (compared with the chain's result certificates) and every frame
//! a client should have received.

use crate::OrPanic;
use crate::bins::bin_dir;
use hp_ledger::{ExitKind, Ledger, Outcome};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Created in a node's directory, it makes that node's runs differ from the others' (module docs).
pub const DIVERGE_FILE: &str = "diverge";

/// The C source. Reads each user's pipe to EOF before writing to it: inputs larger than the pipe
/// buffer are streamed by execd while the contract runs (docs/contract-interface.md).
pub const SOURCE: &str = r##"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

static char *read_all(int fd, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) exit(3);
    for (;;) {
        if (n == cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) exit(3); }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) { if (errno == EINTR) continue; exit(4); }
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) { if (errno == EINTR) continue; exit(5); }
        p += w; len -= (size_t)w;
    }
}

int main(void) {
    char line[1024];
    if (!fgets(line, sizeof line, stdin)) return 2;
    unsigned long long count = 0;
    FILE *f = fopen("count", "r");
    if (f) { if (fscanf(f, "%llu", &count) != 1) count = 0; fclose(f); }
    while (fgets(line, sizeof line, stdin)) {
        char *eq = strchr(line, '=');
        int rfd, wfd;
        if (!eq || sscanf(eq + 1, "%d:%d", &rfd, &wfd) != 2) continue;
        size_t len;
        char *data = read_all(rfd, &len);
        close(rfd);
        if (len > 0) {
            for (size_t i = 0; i < len; i++) if (data[i] == ';') count++;
            char tail[32];
            int t = snprintf(tail, sizeof tail, "#%llu", count);
            write_all(wfd, data, len);
            write_all(wfd, tail, (size_t)t);
            /* The test's switch for a non-deterministic run on one node. */
            if (access("../diverge", F_OK) == 0) write_all(wfd, "!", 1);
        }
        free(data);
        close(wfd);
    }
    f = fopen("count.tmp", "w");
    if (!f) return 6;
    fprintf(f, "%llu", count);
    if (fclose(f) != 0) return 7;
    if (rename("count.tmp", "count") != 0) return 8;
    return 0;
}
"##;

/// The compiled contract, built once per source version into the build folder
/// (`target/<profile>/hp-test-contracts/`), shared by every test process.
pub fn path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let digest = hex::encode(&Sha256::digest(SOURCE.as_bytes())[..8]);
        let dir = bin_dir().or_panic().join("hp-test-contracts");
        let out = dir.join(format!("fault-contract-{digest}"));
        if out.exists() {
            return out;
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let src = dir.join(format!("fault-contract-{digest}-{}.c", std::process::id()));
        std::fs::write(&src, SOURCE).unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
        let tmp = dir.join(format!("fault-contract-{digest}-{}.tmp", std::process::id()));
        hp_localnet::contract::compile_c(&src, &tmp).or_panic();
        let _ = std::fs::remove_file(&src);
        // Rename is atomic: concurrent test processes each build and one copy wins.
        std::fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
        out
    })
    .clone()
}

/// Running state of the contract as recomputed from the chain.
#[derive(Default, Debug, Clone)]
pub struct Model {
    /// `;` read since genesis.
    pub count: u64,
}

impl Model {
    /// The outcome of running `ledger` (after every ledger before it): for each user with
    /// inputs, in public-key order, their concatenated inputs followed by `#<count>`.
    pub fn run(&mut self, ledger: &Ledger) -> Outcome {
        let mut outputs = Vec::new();
        for user in ledger.contract_users() {
            let data: Vec<u8> =
                ledger.inputs.iter().filter(|i| i.user == user).flat_map(|i| i.data.iter().copied()).collect();
            if data.is_empty() {
                continue;
            }
            self.count += data.iter().filter(|b| **b == b';').count() as u64;
            let mut out = data;
            out.extend_from_slice(format!("#{}", self.count).as_bytes());
            outputs.push((user, bytes::Bytes::from(out)));
        }
        Outcome { exit: ExitKind::Code(0), outputs }
    }
}

/// Every ledger's expected outcome, in chain order (index = seq - 1).
pub fn expected_outputs(ledgers: &[Ledger]) -> Vec<Outcome> {
    let mut model = Model::default();
    ledgers.iter().filter(|l| l.seq > 0).map(|l| model.run(l)).collect()
}
