/*
 * The seccomp filter: socket-setup calls go to the launcher as user
 * notifications, everything else (read, write, sendmsg, recvmsg, epoll...)
 * runs untouched.  Installed in the child after PR_SET_NO_NEW_PRIVS, so no
 * privilege is needed, and inherited by every descendant across fork and
 * exec.  If the launcher dies, the kernel fails trapped calls with ENOSYS:
 * closed, never plaintext.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "run.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define COMPAT_ARCH AUDIT_ARCH_I386
/* i386: socketcall, then socket .. shutdown (359-373). */
#define COMPAT_SOCKETCALL 102
#define COMPAT_NET_FIRST 359
#define COMPAT_NET_LAST 373
#define X32_BIT 0x40000000u
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#define COMPAT_ARCH AUDIT_ARCH_ARM
/* arm EABI has no socketcall; socket .. recvmmsg are 281-299 and 365-366. */
#define COMPAT_SOCKETCALL 281
#define COMPAT_NET_FIRST 281
#define COMPAT_NET_LAST 299
#define X32_BIT 0x80000000u /* no x32 here: nothing matches */
#else
/* Other architectures: filter_install() says ENOSYS, nothing runs unmeshed. */
#define NO_FILTER 1
#endif

#define LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
/* Low 32 bits of argument i (little-endian). */
#define LD_ARG(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))

#ifdef NO_FILTER
int filter_install(void)
{
	return -ENOSYS;
}
#else
int filter_install(void)
{
	struct sock_filter prog[] = {
		LD_ARCH,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 8, 0),
		/* The 32-bit ABI reaches the network through calls we do not
		 * decode: its socket calls fail (closed), everything else runs. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, COMPAT_ARCH, 1, 0),
		RET(SECCOMP_RET_ALLOW),
		LD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, COMPAT_SOCKETCALL, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, COMPAT_NET_FIRST, 0, 2),
		BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, COMPAT_NET_LAST, 1, 0),
		RET(SECCOMP_RET_ERRNO | EACCES),
		RET(SECCOMP_RET_ALLOW),
		LD_NR,
		/* x32 shares the arch value: refuse its calls rather than guess. */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT, 0, 1),
		RET(SECCOMP_RET_ERRNO | EACCES),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 8, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bind, 7, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_listen, 6, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept, 5, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_accept4, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getsockname, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpeername, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getsockopt, 2, 0),
		RET(SECCOMP_RET_ALLOW),
		RET(SECCOMP_RET_USER_NOTIF),
		/* getsockopt: only SOL_SOCKET/SO_ERROR, which reports a dial. */
		LD_ARG(1),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOL_SOCKET, 0, 3),
		LD_ARG(2),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SO_ERROR, 0, 1),
		RET(SECCOMP_RET_USER_NOTIF),
		RET(SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = {.len = (unsigned short)(sizeof(prog) / sizeof(prog[0])),
				   .filter = prog};
	long fd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		return -errno;
	}
	fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
		     &fprog);
	if (fd < 0) {
		return -errno;
	}
	return (int)fd;
}
#endif
