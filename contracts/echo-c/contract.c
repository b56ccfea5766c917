/*
 * Hot Pocket example contract in C: each user's input comes back upper-cased, followed by a
 * running count kept in the contract's state, e.g. "HELLO (input #3)".
 *
 * The contract interface (DESIGN.md §4, README "Writing a contract"):
 *   - stdin carries the header, then EOF:
 *         HOTPOCKET 0.1
 *         <user pubkey hex>=<read fd>:<write fd>
 *         ...
 *     one line per user, sorted by public key.
 *   - <read fd> holds the user's inputs for this ledger, concatenated; it ends in EOF.
 *   - everything written to <write fd> is the user's output for the round (one frame).
 *   - the working directory is the node's state/ folder; files written there are the
 *     contract's state, hashed and agreed on by every node after each round.
 *   - stdout and stderr go to the node's log, never to users.
 *
 * The contract must be deterministic: every node runs it on the same inputs and state and
 * must produce the same outputs and state. So no clocks, no randomness, no reading of
 * anything outside state/ and the fds it was given.
 *
 * Build: cc -O2 -Wall -o echo-c contract.c
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The state: one text file in state/ holding the number of inputs answered so far. */
#define COUNT_FILE "inputs.count"
#define COUNT_TMP "inputs.count.tmp"

/* A user line is a 64-hex key, '=', two fds and ':' — 128 bytes is plenty. */
#define MAX_LINE 256

static unsigned long long read_count(void) {
    FILE *f = fopen(COUNT_FILE, "r");
    unsigned long long n = 0;
    if (f == NULL) return 0; /* first round: no state yet */
    if (fscanf(f, "%llu", &n) != 1) n = 0;
    fclose(f);
    return n;
}

/* Written to a temporary file and renamed, so the state file is never half written. */
static int write_count(unsigned long long n) {
    FILE *f = fopen(COUNT_TMP, "w");
    if (f == NULL) return -1;
    fprintf(f, "%llu\n", n);
    if (fclose(f) != 0) return -1;
    return rename(COUNT_TMP, COUNT_FILE);
}

/* Reads all of fd into a growing buffer; returns its length, or -1 on error. */
static ssize_t read_all(int fd, char **out) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) return -1;
    for (;;) {
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) { free(buf); return -1; }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            free(buf);
            return -1;
        }
        len += (size_t)n;
    }
    *out = buf;
    return (ssize_t)len;
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(void) {
    char line[MAX_LINE];
    if (fgets(line, sizeof line, stdin) == NULL) return 0; /* no header: nothing to do */
    if (strncmp(line, "HOTPOCKET 0.1", 13) != 0) {
        fprintf(stderr, "echo-c: unexpected header: %s", line);
        return 1;
    }
    unsigned long long count = read_count();
    unsigned long long before = count;
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *eq = strchr(line, '=');
        int rfd, wfd;
        if (eq == NULL || sscanf(eq + 1, "%d:%d", &rfd, &wfd) != 2) {
            fprintf(stderr, "echo-c: bad user line: %s", line);
            return 1;
        }
        char *input = NULL;
        ssize_t len = read_all(rfd, &input);
        close(rfd);
        if (len < 0) {
            fprintf(stderr, "echo-c: cannot read fd %d: %s\n", rfd, strerror(errno));
            return 1;
        }
        /* A user who is only connected has no input this round: no output either. */
        if (len > 0) {
            char suffix[64];
            count++;
            for (ssize_t i = 0; i < len; i++) input[i] = (char)toupper((unsigned char)input[i]);
            int slen = snprintf(suffix, sizeof suffix, " (input #%llu)", count);
            if (write_all(wfd, input, (size_t)len) != 0 || write_all(wfd, suffix, (size_t)slen) != 0) {
                fprintf(stderr, "echo-c: cannot write fd %d: %s\n", wfd, strerror(errno));
            }
        }
        free(input);
        close(wfd);
    }
    if (count != before && write_count(count) != 0) {
        fprintf(stderr, "echo-c: cannot write %s: %s\n", COUNT_FILE, strerror(errno));
        return 1;
    }
    return 0;
}
