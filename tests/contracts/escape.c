/* A hostile test contract (issue 20): for each user input "probe <peer port>" it tries every
 * way out of the sandbox and answers one line per attempt, "<name>=blocked" or
 * "<name>=ESCAPED". The answer carries no errno or count, so every node gives the same bytes.
 * Any other input is echoed back, so the test can see the node still answers.
 *
 * The fork bomb stops at 2000 processes and the allocation is never touched, so a missing
 * limit shows as ESCAPED instead of taking the machine down. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char report[4096];
static size_t used;

static void say(const char *name, int escaped) {
    int n = snprintf(report + used, sizeof report - used, "%s=%s\n", name, escaped ? "ESCAPED" : "blocked");
    if (n > 0 && used + (size_t)n < sizeof report) used += (size_t)n;
}

static int can_open(const char *path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

static int can_connect_unix(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return 0;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static int can_connect_tcp(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

static int can_list(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    closedir(d);
    return 1;
}

static void probe(int peer_port) {
    used = 0;
    say("read_key", can_open("../cfg/hp.cfg", O_RDONLY));
    say("read_tls_key", can_open("../cfg/tlskey.pem", O_RDONLY));
    say("list_cfg", can_list("../cfg"));
    say("read_ledger", can_open("../hist/ledger.sqlite", O_RDONLY));
    say("list_log", can_list("../log"));
    const char *socks[] = {"consensusd", "execd", "userd", "supervisor"};
    for (int i = 0; i < 4; i++) {
        char path[64], name[64];
        snprintf(path, sizeof path, "../run/%s.sock", socks[i]);
        snprintf(name, sizeof name, "connect_%s", socks[i]);
        say(name, can_connect_unix(path));
    }
    say("tcp_peer_port", can_connect_tcp(peer_port));
    say("write_parent", can_open("../x", O_WRONLY | O_CREAT));
    say("write_tmp", can_open("/tmp/hp-escape-probe", O_WRONLY | O_CREAT));
    /* Symlinks out of state/: to the key (read) and to a new file beside state/ (write). */
    unlink("link_key");
    unlink("link_out");
    int linked = symlink("../cfg/hp.cfg", "link_key") == 0;
    say("symlink_read_key", linked && can_open("link_key", O_RDONLY));
    linked = symlink("../y", "link_out") == 0;
    say("symlink_write_out", linked && can_open("link_out", O_WRONLY | O_CREAT));
    unlink("link_key");
    unlink("link_out");
    say("signal_execd", kill(getppid(), 0) == 0);
    char environ_path[64];
    snprintf(environ_path, sizeof environ_path, "/proc/%d/environ", (int)getppid());
    say("read_execd_environ", can_open(environ_path, O_RDONLY));
    /* 10 GiB, never touched: refused by the memory limit, or the limit is missing. */
    void *big = malloc((size_t)10 << 30);
    say("alloc_10gib", big != NULL);
    free(big);
    /* The fork bomb: children wait to be killed with the group when this process exits. */
    int forked = 0;
    for (; forked < 2000; forked++) {
        pid_t pid = fork();
        if (pid < 0) break;
        if (pid == 0) {
            pause();
            _exit(0);
        }
    }
    say("fork_bomb", forked == 2000);
}

int main(void) {
    char line[256];
    if (!fgets(line, sizeof line, stdin)) return 0;
    while (fgets(line, sizeof line, stdin)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        int rfd = 0, wfd = 0;
        if (sscanf(eq + 1, "%d:%d", &rfd, &wfd) != 2) continue;
        char buf[512];
        ssize_t len = 0, n;
        while (len < (ssize_t)sizeof buf - 1 && (n = read(rfd, buf + len, sizeof buf - 1 - (size_t)len)) > 0) len += n;
        buf[len] = 0;
        if (len == 0) continue;
        int port = 0;
        if (sscanf(buf, "probe %d", &port) == 1) {
            probe(port);
            if (write(wfd, report, used) < 0) return 1;
        } else if (write(wfd, buf, (size_t)len) < 0) {
            return 1;
        }
    }
    return 0;
}
