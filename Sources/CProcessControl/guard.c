#include "process_control.h"
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int peer_guard_exec(const char *path, char *const argv[], pid_t parent) {
    static const int forwarded[] = {SIGHUP, SIGQUIT, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH};
    const size_t count = sizeof(forwarded) / sizeof(forwarded[0]);
    sigset_t waited;
    sigemptyset(&waited);
    for (size_t i = 0; i < count; i++) sigaddset(&waited, forwarded[i]);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGCHLD);
    // Blocked in this (the only) thread before anything can arrive: nothing is lost between
    // here and sigwait, and no default action (termination) runs for a forwarded signal.
    if (sigprocmask(SIG_BLOCK, &waited, NULL) != 0) return -1;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)SIGTERM, 0UL, 0UL, 0UL) != 0) return -1;
    if (getppid() != parent) {
        errno = ESRCH;
        return -1;
    }
    posix_spawnattr_t attributes;
    if (posix_spawnattr_init(&attributes) != 0) return -1;
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &empty);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t child;
    int rc = posix_spawn(&child, path, NULL, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&waited, &sig) != 0) continue;
        if (sig == SIGCHLD) {
            int status = 0;
            pid_t r = waitpid(child, &status, WNOHANG);
            if (r != child) continue;
            if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
            _exit(128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
        }
        if (sig == SIGTERM) {
            // The peer died (or someone asked this guard to end): the whole group goes now.
            kill(0, SIGKILL);
            _exit(128 + SIGKILL);
        }
        kill(child, sig);
    }
}
