/* A slow test contract: for each user (header "HOTPOCKET 0.1", then
 * "<pubkey>=<read fd>:<write fd>" lines) it echoes the whole input back, then every run takes
 * a second more. Inputs pile up while it runs: for the tests of overload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char line[256];
    if (!fgets(line, sizeof line, stdin)) return 0;
    while (fgets(line, sizeof line, stdin)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        int rfd = 0, wfd = 0;
        if (sscanf(eq + 1, "%d:%d", &rfd, &wfd) != 2) continue;
        char buf[65536];
        ssize_t n;
        while ((n = read(rfd, buf, sizeof buf)) > 0) {
            if (write(wfd, buf, (size_t)n) != n) return 1;
        }
    }
    sleep(1);
    return 0;
}
