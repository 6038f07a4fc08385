/* Delayed responses without blocking a libmicrohttpd thread: the access
 * handler suspends the connection, and this module's thread resumes it
 * when its delay has passed. Pending resumptions sit in a binary min-heap
 * ordered by due time, so thousands of delayed requests cost one thread
 * and O(log n) per request. */
#include "sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct timer_entry {
    int64_t due_ms; /* monotonic clock */
    uint64_t order; /* keeps equal due times in arrival order */
    struct MHD_Connection *conn;
};

struct sim_timer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool closing;
    struct timer_entry *heap;
    size_t count;
    size_t cap;
    uint64_t next_order;
};

static bool entry_before(const struct timer_entry *a, const struct timer_entry *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->order < b->order);
}

static void heap_push(struct sim_timer *timer, struct timer_entry entry)
{
    size_t i;

    if (timer->count == timer->cap) {
        timer->cap = timer->cap ? timer->cap * 2 : 1024;
        timer->heap = sim_xrealloc(timer->heap, timer->cap * sizeof(*timer->heap));
    }
    i = timer->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!entry_before(&entry, &timer->heap[parent]))
            break;
        timer->heap[i] = timer->heap[parent];
        i = parent;
    }
    timer->heap[i] = entry;
}

static struct timer_entry heap_pop(struct sim_timer *timer)
{
    struct timer_entry top = timer->heap[0];
    struct timer_entry last = timer->heap[--timer->count];
    size_t i = 0;

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= timer->count)
            break;
        if (child + 1 < timer->count && entry_before(&timer->heap[child + 1], &timer->heap[child]))
            child++;
        if (!entry_before(&timer->heap[child], &last))
            break;
        timer->heap[i] = timer->heap[child];
        i = child;
    }
    if (timer->count > 0)
        timer->heap[i] = last;
    return top;
}

static struct timespec mono_deadline(int64_t due_ms)
{
    struct timespec ts = {
        .tv_sec = (time_t)(due_ms / 1000),
        .tv_nsec = (long)(due_ms % 1000) * 1000000L,
    };
    return ts;
}

/* Resumes connections whose time has come. MHD_resume_connection() runs
 * outside the lock: it takes the daemon's own mutex and signals the
 * daemon thread. */
static void *timer_main(void *arg)
{
    struct sim_timer *timer = arg;
    struct MHD_Connection *due[256];

    pthread_mutex_lock(&timer->lock);
    while (!timer->closing) {
        size_t due_count = 0;
        int64_t now;

        if (timer->count == 0) {
            pthread_cond_wait(&timer->wake, &timer->lock);
            continue;
        }
        now = sim_now_mono_ms();
        if (timer->heap[0].due_ms > now) {
            struct timespec deadline = mono_deadline(timer->heap[0].due_ms);

            pthread_cond_timedwait(&timer->wake, &timer->lock, &deadline);
            continue;
        }
        while (timer->count > 0 && timer->heap[0].due_ms <= now &&
               due_count < sizeof(due) / sizeof(due[0]))
            due[due_count++] = heap_pop(timer).conn;

        pthread_mutex_unlock(&timer->lock);
        for (size_t i = 0; i < due_count; i++)
            MHD_resume_connection(due[i]);
        pthread_mutex_lock(&timer->lock);
    }
    pthread_mutex_unlock(&timer->lock);
    return NULL;
}

struct sim_timer *sim_timer_start(char *errstr, size_t errstr_size)
{
    struct sim_timer *timer = sim_xcalloc(1, sizeof(*timer));
    pthread_condattr_t attr;
    int err;

    pthread_mutex_init(&timer->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&timer->wake, &attr);
    pthread_condattr_destroy(&attr);

    err = pthread_create(&timer->thread, NULL, timer_main, timer);
    if (err != 0) {
        snprintf(errstr, errstr_size, "cannot start the timer thread: %s", strerror(err));
        pthread_cond_destroy(&timer->wake);
        pthread_mutex_destroy(&timer->lock);
        free(timer);
        return NULL;
    }
    return timer;
}

bool sim_timer_suspend(struct sim_timer *timer, struct MHD_Connection *conn,
                       unsigned delay_ms)
{
    struct timer_entry entry = {
        .due_ms = sim_now_mono_ms() + delay_ms,
        .conn = conn,
    };

    pthread_mutex_lock(&timer->lock);
    if (timer->closing) {
        pthread_mutex_unlock(&timer->lock);
        return false;
    }
    /* Suspend before the entry becomes visible to the timer thread, so a
     * resumption can never precede the suspension. */
    MHD_suspend_connection(conn);
    entry.order = timer->next_order++;
    heap_push(timer, entry);
    if (timer->heap[0].conn == conn)
        pthread_cond_signal(&timer->wake);
    pthread_mutex_unlock(&timer->lock);
    return true;
}

size_t sim_timer_pending(struct sim_timer *timer)
{
    size_t count;

    pthread_mutex_lock(&timer->lock);
    count = timer->count;
    pthread_mutex_unlock(&timer->lock);
    return count;
}

void sim_timer_stop(struct sim_timer *timer)
{
    if (!timer)
        return;

    pthread_mutex_lock(&timer->lock);
    if (timer->closing) {
        pthread_mutex_unlock(&timer->lock);
        return;
    }
    timer->closing = true;
    pthread_cond_signal(&timer->wake);
    pthread_mutex_unlock(&timer->lock);
    pthread_join(timer->thread, NULL);

    /* No entry can be added once closing is set, so this drains all. */
    pthread_mutex_lock(&timer->lock);
    while (timer->count > 0)
        MHD_resume_connection(heap_pop(timer).conn);
    pthread_mutex_unlock(&timer->lock);
}

void sim_timer_destroy(struct sim_timer *timer)
{
    if (!timer)
        return;
    sim_timer_stop(timer);
    free(timer->heap);
    pthread_cond_destroy(&timer->wake);
    pthread_mutex_destroy(&timer->lock);
    free(timer);
}
