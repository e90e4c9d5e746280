/* Reading and dropping capabilities. glibc has no wrapper for capget/capset (libcap has, but one
 * struct and two syscalls do not justify the dependency), and prctl is variadic, which Swift cannot
 * call. Capabilities belong to a thread: these calls change the calling thread only. */
#include "CFastTrace.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

_Static_assert(_LINUX_CAPABILITY_U32S_3 == 2, "version 3 capability sets are two 32-bit words");

int CFastTrace_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &header, data) != 0)
        return -1;
    *effective = (uint64_t)data[1].effective << 32 | data[0].effective;
    *permitted = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    *inheritable = (uint64_t)data[1].inheritable << 32 | data[0].inheritable;
    return 0;
}

int CFastTrace_capset_clear(void)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &header, data);
}

int CFastTrace_ambient_clear_all(void)
{
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L);
}

int CFastTrace_capbset_read(int cap)
{
    return prctl(PR_CAPBSET_READ, (unsigned long)cap, 0L, 0L, 0L);
}

int CFastTrace_capbset_drop(int cap)
{
    return prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0L, 0L, 0L);
}

int CFastTrace_set_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L);
}

int CFastTrace_get_no_new_privs(void)
{
    return prctl(PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L);
}
