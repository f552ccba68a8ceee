#ifndef PEER_ALLOC_COUNTER_H
#define PEER_ALLOC_COUNTER_H
/// Number of heap allocations (malloc, calloc, realloc, memalign family) made by this process
/// since it started. Only meaningful in binaries that link CAllocCounter (the benchmarks), where
/// it interposes the allocator entry points and forwards to glibc.
unsigned long long peer_alloc_count(void);
#endif
