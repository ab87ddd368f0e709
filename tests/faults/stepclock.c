/* A stepped wall clock for one process (LD_PRELOAD), as an NTP step or a bad RTC makes it.
 *
 * CLOCK_REALTIME (and its coarse variant), gettimeofday() and time() read the real clock plus
 * an offset; CLOCK_MONOTONIC and every sleep are left alone, as a real step leaves them. The
 * offset is a signed 64-bit count of nanoseconds at the start of the file named by
 * $STEPCLOCK_FILE, mapped shared, so the test steps the clock by rewriting those 8 bytes.
 * (libfaketime 0.9.10, Debian's, breaks Python 3.11's time.sleep with a monotonic clock left
 * alone: wolfcw/libfaketime#426.) Built by tests/faults/stepclock.py.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *offset_ns;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((constructor)) static void stepclock_init(void) {
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    const char *path = getenv("STEPCLOCK_FILE");
    int fd = path ? open(path, O_RDONLY) : -1;
    if (fd >= 0) {
        void *p = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
        offset_ns = p == MAP_FAILED ? NULL : p;
        close(fd);
    }
}

static void shift(struct timespec *ts) {
    int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + (offset_ns ? *offset_ns : 0);
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        shift(ts);
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    if (tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t)
        *t = ts.tv_sec;
    return ts.tv_sec;
}
