/* Whole reads and writes for the test contracts (contract.c, hotpocket.c). */
#ifndef HP_TEST_CONTRACT_IO_H
#define HP_TEST_CONTRACT_IO_H
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Everything until EOF, NUL-terminated; its length in *len. */
static char *read_all(int fd, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0) { if (errno == EINTR) continue; break; }
        if (got == 0) break;
        n += (size_t)got;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return; }
        p += w;
        n -= (size_t)w;
    }
}
#endif
