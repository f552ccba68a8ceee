#ifndef PEER_PROCESS_CONTROL_H
#define PEER_PROCESS_CONTROL_H

/// Linux PR_SET_PDEATHSIG for the calling process: `sig` is delivered when the thread that
/// created it exits. prctl is variadic, so Swift cannot call it directly. Returns 0 or -1 (errno).
int peer_set_parent_death_signal(int sig);

#endif
