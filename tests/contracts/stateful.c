/* A test contract with state: for each user (header "HOTPOCKET 0.1", then
 * "<pubkey>=<read fd>:<write fd>" lines), it reads the whole input and
 *   - "big <name> <bytes>": writes a file <name> of that many deterministic bytes;
 *   - anything else: appends the input and a newline to inputs.log;
 * then answers "<count>:<input>" where count is the number of inputs seen so far (kept in
 * the state file count.txt), so a user sees state carried across rounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long read_count(void) {
    FILE *f = fopen("count.txt", "r");
    long n = 0;
    if (f) { if (fscanf(f, "%ld", &n) != 1) n = 0; fclose(f); }
    return n;
}

static void write_count(long n) {
    FILE *f = fopen("count.txt", "w");
    if (f) { fprintf(f, "%ld\n", n); fclose(f); }
}

int main(void) {
    char line[256];
    if (!fgets(line, sizeof line, stdin)) return 0;
    long count = read_count();
    while (fgets(line, sizeof line, stdin)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        int rfd = 0, wfd = 0;
        if (sscanf(eq + 1, "%d:%d", &rfd, &wfd) != 2) continue;
        size_t cap = 1 << 16, len = 0;
        char *buf = malloc(cap + 1);
        ssize_t n;
        while ((n = read(rfd, buf + len, cap - len)) > 0) {
            len += (size_t)n;
            if (len == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
        }
        buf[len] = 0;
        if (len == 0) { free(buf); continue; }
        char name[128];
        long size = 0;
        if (sscanf(buf, "big %127s %ld", name, &size) == 2 && size >= 0) {
            FILE *f = fopen(name, "w");
            for (long i = 0; f && i < size; i++) fputc((int)('a' + (i * 7919) % 26), f);
            if (f) fclose(f);
        } else {
            FILE *f = fopen("inputs.log", "a");
            if (f) { fwrite(buf, 1, len, f); fputc('\n', f); fclose(f); }
        }
        count++;
        char head[32];
        int h = snprintf(head, sizeof head, "%ld:", count);
        if (write(wfd, head, (size_t)h) < 0 || write(wfd, buf, len) < 0) { free(buf); return 1; }
        free(buf);
    }
    write_count(count);
    return 0;
}
