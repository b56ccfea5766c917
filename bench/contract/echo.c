/*
 * hp-bench's echo contract: every user's inputs for the round come back byte for byte.
 * hp-bench sends fixed-size inputs that each start with a sequence number, so the client
 * can cut the round's one output frame back into the inputs it answers (DESIGN.md §4: all
 * inputs of one user in one ledger arrive concatenated and leave as one frame).
 * stdin: "HOTPOCKET 0.1", then "<pubkey>=<read fd>:<write fd>" per user. No state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int copy(int from, int to) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            off += w;
        }
    }
}

int main(void) {
    char line[256];
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *eq = strchr(line, '=');
        int r, w;
        if (eq == NULL || sscanf(eq + 1, "%d:%d", &r, &w) != 2) {
            fprintf(stderr, "echo: bad user line: %s", line);
            return 1;
        }
        if (copy(r, w) != 0) {
            fprintf(stderr, "echo: fd %d -> %d: %s\n", r, w, strerror(errno));
            return 1;
        }
        close(r);
        close(w);
    }
    return 0;
}
