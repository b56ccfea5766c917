/* The test contract of hp-execd's integration tests. argv[1] picks the behaviour (binargs).
 * The header is the text format: "HOTPOCKET 0.1\n" then "<pubkey>=<read fd>:<write fd>\n". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

struct user { char key[65]; int r, w; };

#include "io.h"

static int users(struct user **out) {
    size_t len;
    char *hdr = read_all(0, &len);
    int count = 0, cap = 16;
    struct user *u = malloc(sizeof *u * cap);
    char *line = strchr(hdr, '\n');
    while (line && line[1]) {
        line++;
        char *eq = strchr(line, '=');
        if (!eq) break;
        if (count == cap) { cap *= 2; u = realloc(u, sizeof *u * cap); }
        memcpy(u[count].key, line, 64);
        u[count].key[64] = 0;
        sscanf(eq + 1, "%d:%d", &u[count].r, &u[count].w);
        count++;
        line = strchr(eq, '\n');
    }
    *out = u;
    return count;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void script(const struct user *u) {
    size_t len;
    char *text = read_all(u->r, &len);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char cmd[16] = {0}, path[512] = {0};
        int off = 0;
        sscanf(line, "%15s %511s %n", cmd, path, &off);
        const char *rest = off ? line + off : "";
        if (!strcmp(cmd, "put") || !strcmp(cmd, "append")) {
            int flags = O_WRONLY | O_CREAT | (cmd[0] == 'p' ? O_TRUNC : O_APPEND);
            int fd = open(path, flags, 0644);
            write_all(fd, rest, strlen(rest));
            close(fd);
        } else if (!strcmp(cmd, "del")) {
            if (unlink(path) != 0) rmdir(path);
        } else if (!strcmp(cmd, "mkdir")) {
            mkdir(path, 0755);
        } else if (!strcmp(cmd, "chmodx")) {
            chmod(path, 0755);
        } else if (!strcmp(cmd, "sleep")) {
            sleep((unsigned)atoi(path));
        } else if (!strcmp(cmd, "cat")) {
            int fd = open(path, O_RDONLY);
            if (fd >= 0) { size_t n; char *c = read_all(fd, &n); write_all(u->w, c, n); close(fd); }
            else write_all(u->w, "<missing>", 9);
        } else if (!strcmp(cmd, "out")) {
            write_all(u->w, path, strlen(path));
        } else if (!strcmp(cmd, "pwd")) {
            char cwd[4096];
            if (getcwd(cwd, sizeof cwd)) write_all(u->w, cwd, strlen(cwd));
        } else if (!strcmp(cmd, "env")) {
            for (char **e = environ; *e; e++) { write_all(u->w, *e, strlen(*e)); write_all(u->w, "\n", 1); }
        } else if (!strcmp(cmd, "log")) {
            printf("line to stdout\n");
            fflush(stdout);
            fprintf(stderr, "line to stderr\n");
        } else if (!strcmp(cmd, "exit")) {
            exit(atoi(path));
        }
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "echo";
    struct user *u = NULL;
    if (!strcmp(mode, "ignore")) return 0;
    if (!strcmp(mode, "header")) {
        size_t len;
        char *h = read_all(0, &len);
        write_all(4, h, len);
        return 0;
    }
    if (!strcmp(mode, "segv")) { volatile int *p = NULL; *p = 1; return 0; }
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "exit")) return atoi(argc > 2 ? argv[2] : "0");
    int n = users(&u);
    if (!strcmp(mode, "echo")) {
        for (int i = 0; i < n; i++) {
            size_t len;
            char *data = read_all(u[i].r, &len);
            write_all(u[i].w, data, len);
            free(data);
        }
    } else if (!strcmp(mode, "fionread")) {
        for (int i = 0; i < n; i++) {
            int avail = 0;
            ioctl(u[i].r, FIONREAD, &avail);
            char *buf = malloc((size_t)avail + 1);
            ssize_t got = avail > 0 ? read(u[i].r, buf, (size_t)avail) : 0;
            dprintf(u[i].w, "%d:", avail);
            if (got > 0) write_all(u[i].w, buf, (size_t)got);
        }
    } else if (!strcmp(mode, "silent")) {
        for (int i = 0; i < n; i++) { size_t len; free(read_all(u[i].r, &len)); }
    } else if (!strcmp(mode, "fds")) {
        int fds[4096], count = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while ((e = readdir(d)) && count < 4096) {
            if (e->d_name[0] == '.') continue;
            int fd = atoi(e->d_name);
            if (fd != dirfd(d)) fds[count++] = fd;
        }
        closedir(d);
        qsort(fds, (size_t)count, sizeof fds[0], cmp_int);
        for (int i = 0; i < count; i++) dprintf(4, i ? " %d" : "%d", fds[i]);
    } else if (!strcmp(mode, "forkloop")) {
        pid_t child = fork();
        if (child == 0) { for (;;) pause(); }
        dprintf(4, "%d %d\n", (int)getpid(), (int)child);
        volatile unsigned long spin = 0;
        for (;;) spin++;
    } else if (!strcmp(mode, "escape")) {
        /* A child that leaves the process group and keeps the output pipe open. */
        pid_t child = fork();
        if (child == 0) { setsid(); sleep(30); _exit(0); }
        dprintf(4, "%d", (int)child);
    } else if (!strcmp(mode, "script")) {
        if (n > 0) script(&u[0]);
    }
    return 0;
}
