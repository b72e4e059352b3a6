/*
 * Giving the heap back after a spike.  glibc returns freed memory to the
 * system only from the top of each arena; what thousands of closed
 * connections freed below a long-lived object stays resident for good.
 * heap_slack() says how much resident anonymous memory malloc holds but
 * nobody uses; heap_trim() hands the whole free pages of every arena back
 * (malloc_trim(0): madvise(MADV_DONTNEED) on them, the heap's layout
 * stays).
 */
#ifndef LDMESH_HEAP_H
#define LDMESH_HEAP_H

#include <stddef.h>

/*
 * Resident anonymous memory of the process (RssAnon and RssShmem, from
 * /proc/self/statm) minus what malloc has handed out (in-use chunks and
 * mmapped blocks, mallinfo2()), in bytes; 0 when that is negative or cannot
 * be read.  What is left is free heap that is still resident, plus a small
 * constant (stacks, static data, the loop's rings): after a spike, the
 * memory a trim would give back.  Cost: a read of statm and a walk over
 * malloc's free lists, for a periodic tick, not a hot path.
 */
size_t heap_slack(void);

/*
 * malloc_trim(0): returns the free pages of every arena to the system.
 * Returns how far heap_slack() went down, in bytes (0 if it did not).
 */
size_t heap_trim(void);

#endif
