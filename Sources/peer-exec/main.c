// peer-exec: how a peer starts a child that must not outlive it (docs/operations.md, "When a
// peer dies"). A separate, single-threaded C program on purpose: signal masks and
// PR_SET_PDEATHSIG are per thread, and a Swift process has threads of its own.
//
//   peer-exec --parent PID -- /abs/program args...
//       asks the kernel to SIGKILL this process when the peer's spawning thread exits
//       (PR_SET_PDEATHSIG), checks the peer is still its parent, and execs the program: same
//       pid, same process group (the agent's components).
//   peer-exec --parent PID --guard -- /abs/program args...
//       stays the program's parent: forwards SIGHUP, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2 and
//       SIGWINCH to it and exits with its status; on SIGTERM (the death signal it asks for)
//       SIGKILLs its whole process group, so NGINX's workers, which a killed master would
//       leave running, die with the peer too.
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "peer-exec: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 127;
}

static int guard(char *const argv[]) {
    static const int forwarded[] = {SIGHUP, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH};
    const size_t count = sizeof(forwarded) / sizeof(forwarded[0]);
    posix_spawnattr_t attributes;
    if (posix_spawnattr_init(&attributes) != 0) return fail("posix_spawnattr_init", strerror(errno));
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t child;
    int rc = posix_spawn(&child, argv[0], NULL, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) return fail(argv[0], strerror(rc));
    sigset_t waited;
    sigemptyset(&waited);
    for (size_t i = 0; i < count; i++) sigaddset(&waited, forwarded[i]);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGCHLD);
    for (;;) {
        int sig = 0;
        if (sigwait(&waited, &sig) != 0) continue;
        if (sig == SIGCHLD) {
            int status = 0;
            if (waitpid(child, &status, WNOHANG) != child) continue;
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        if (sig == SIGTERM) {
            kill(0, SIGKILL);  // the whole group, this process included
            return 128 + SIGKILL;
        }
        kill(child, sig);
    }
}

int main(int argc, char *argv[]) {
    pid_t parent = 0;
    int guarded = 0, i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--parent") == 0 && i + 1 < argc) {
            parent = (pid_t)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--guard") == 0) {
            guarded = 1;
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            return fail("unknown argument", argv[i]);
        }
    }
    if (parent <= 0) return fail("--parent PID is required", NULL);
    if (i >= argc || argv[i][0] != '/') return fail("an absolute program path must follow --", i < argc ? argv[i] : NULL);
    if (guarded) {
        // Blocked before anything can arrive, in the only thread: no signal is lost between
        // here and sigwait, and none takes its default action (termination) here.
        sigset_t waited;
        sigemptyset(&waited);
        int all[] = {SIGHUP, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGTERM, SIGCHLD};
        for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) sigaddset(&waited, all[k]);
        if (sigprocmask(SIG_BLOCK, &waited, NULL) != 0) return fail("sigprocmask", strerror(errno));
    }
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)(guarded ? SIGTERM : SIGKILL), 0UL, 0UL, 0UL) != 0) {
        return fail("prctl(PR_SET_PDEATHSIG)", strerror(errno));
    }
    // The peer died between our start and the prctl: nothing would end us later.
    if (getppid() != parent) return fail("the peer is gone; not starting", argv[i]);
    if (guarded) return guard(&argv[i]);
    execv(argv[i], &argv[i]);
    return fail(argv[i], strerror(errno));
}
