/* A contract for the HotPocket ABI tests (stdinfmt "hotpocket"): fd 3 is the inputs file, 4 the
 * NPL socket, 5 the control socket, 6 the first user's output. argv[1] picks the behaviour. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"

/* One message as the contract library writes it: 4-byte big-endian length, then the bytes. */
static void message(const void *data, size_t n) {
    unsigned char len[4] = { n >> 24, n >> 16, n >> 8, n };
    write_all(6, len, 4);
    write_all(6, data, n);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "echo";
    size_t header_len;
    char *header = read_all(0, &header_len);
    if (!strcmp(mode, "echo")) {
        /* The header, the inputs file, whether the file can be written, then half a message. */
        message(header, header_len);
        size_t inputs_len;
        char *inputs = read_all(3, &inputs_len);
        message(inputs, inputs_len);
        char verdict[64];
        int n = snprintf(verdict, sizeof verdict, "write=%zd", write(3, "x", 1));
        message(verdict, (size_t)n);
        write_all(6, "\0\0\0\x09" "ab", 6);
        return 0;
    }
    if (!strcmp(mode, "npl")) {
        /* Says "ping <argv[2]>" on the NPL, then writes each (sender, data) pair it hears as one
         * message "<sender> <data>", until it heard argv[3] of them. */
        char ping[64];
        int n = snprintf(ping, sizeof ping, "ping %s", argc > 2 ? argv[2] : "");
        send(4, ping, (size_t)n, 0);
        int want = argc > 3 ? atoi(argv[3]) : 1;
        for (int i = 0; i < want; i++) {
            char sender[256], data[256], line[600];
            ssize_t a = recv(4, sender, sizeof sender - 1, 0);
            ssize_t b = recv(4, data, sizeof data - 1, 0);
            if (a <= 0 || b < 0) break;
            sender[a] = 0;
            data[b] = 0;
            int m = snprintf(line, sizeof line, "%s %s", sender, data);
            message(line, (size_t)m);
        }
        return 0;
    }
    if (!strcmp(mode, "control")) {
        /* A peer changeset, a message of an unknown type, then the channel closed; argv[2]
         * "linger" stays on after that (to be ended), anything else exits with 3. */
        const char *change = "{\"type\":\"peer_changeset\",\"add\":[\"127.0.0.1:9\"],\"remove\":[\"127.0.0.1:8\"]}";
        send(5, change, strlen(change), 0);
        send(5, "{\"type\":\"bogus\"}", 16, 0);
        close(5);
        message("closed", 6);
        if (argc > 2 && !strcmp(argv[2], "linger")) {
            sleep(30);
            return 0;
        }
        return 3;
    }
    return 1;
}
