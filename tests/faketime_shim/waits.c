/*
 * Preloaded before Debian's libfaketime 0.9.10 by tests/clock_matrix.py.
 *
 * The matrix moves the wall clock (a constant offset) and leaves the monotonic
 * clock real (FAKETIME_DONT_FAKE_MONOTONIC=1). libfaketime still rewrites waits
 * on the monotonic clock, and gets two of them wrong:
 *   - clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...), which CPython 3.11's
 *     time.sleep uses, fails with EINVAL;
 *   - pthread_cond_timedwait, which CPython's GIL hand-off uses, is slowed down:
 *     two busy Python threads ran 2.5x slower, and a Kafka client publishing
 *     from a thread 10x slower.
 * (With the monotonic clock faked too, every timed lock wait hangs.)
 * Both go straight to glibc here; waits on the wall clock in clock_nanosleep
 * still go through libfaketime.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

static void *glibc(const char *name, const char *version) {
    static void *handle;
    if (!handle) handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    return version ? dlvsym(handle, name, version) : dlsym(handle, name);
}

/* A realtime-clock condition variable gets the faked deadline against the real
 * clock: with a past offset it times out at once (a spurious timeout), never
 * hangs. CPython, libstdc++ (pthread_cond_clockwait) and the JVM wait on the
 * monotonic clock. */
int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex,
                           const struct timespec *abstime) {
    static int (*real)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    if (!real) real = glibc("pthread_cond_timedwait", "GLIBC_2.3.2");
    return real(cond, mutex, abstime);
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request,
                    struct timespec *remain) {
    static int (*real)(clockid_t, int, const struct timespec *, struct timespec *);
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!real) real = glibc("clock_nanosleep", NULL);
    if (!next) next = dlsym(RTLD_NEXT, "clock_nanosleep");
    if (clock == CLOCK_MONOTONIC || clock == CLOCK_MONOTONIC_RAW || clock == CLOCK_BOOTTIME)
        return real(clock, flags, request, remain);
    return next(clock, flags, request, remain);
}
