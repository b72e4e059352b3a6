/*
 * How many CPUs this process may use: the default for `workers`.  The
 * affinity mask (taskset, a cpuset cgroup, Kubernetes' static CPU manager)
 * bounds it, and so does a cgroup v2 CPU quota (cpu.max of the process's
 * cgroup or any ancestor: a pod's CPU limit), rounded up.  At least 1.
 */
#ifndef LDMESH_CPUS_H
#define LDMESH_CPUS_H

/* The usable CPUs, read from the kernel (sched_getaffinity, /proc/self/cgroup
 * and /sys/fs/cgroup). */
int cpus_usable(void);

/*
 * The CPUs a cgroup v2 cpu.max text allows ("max 100000": no limit, -1;
 * "150000 100000": 2, a quota rounded up), or -1 when it says nothing
 * usable.  Exposed for the unit tests.
 */
int cpus_from_cpu_max(const char *text);

#endif
