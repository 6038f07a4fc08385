#include "schedule.h"

#include <stdlib.h>

#include "job.h"
#include "util.h"

struct schedule {
    struct job **heap;
    size_t count;
    size_t capacity;
};

struct schedule *schedule_new(void)
{
    return xcalloc(1, sizeof(struct schedule));
}

void schedule_destroy(struct schedule *schedule)
{
    if (!schedule)
        return;
    free(schedule->heap);
    free(schedule);
}

static void place(struct schedule *schedule, size_t index, struct job *job)
{
    schedule->heap[index] = job;
    job->heap_index = index;
}

static void sift_up(struct schedule *schedule, size_t index)
{
    struct job *job = schedule->heap[index];

    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (schedule->heap[parent]->due_mono_ms <= job->due_mono_ms)
            break;
        place(schedule, index, schedule->heap[parent]);
        index = parent;
    }
    place(schedule, index, job);
}

static void sift_down(struct schedule *schedule, size_t index)
{
    struct job *job = schedule->heap[index];

    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= schedule->count)
            break;
        if (child + 1 < schedule->count &&
            schedule->heap[child + 1]->due_mono_ms <
                schedule->heap[child]->due_mono_ms)
            child++;
        if (job->due_mono_ms <= schedule->heap[child]->due_mono_ms)
            break;
        place(schedule, index, schedule->heap[child]);
        index = child;
    }
    place(schedule, index, job);
}

void schedule_add(struct schedule *schedule, struct job *job)
{
    if (schedule->count == schedule->capacity) {
        schedule->capacity = schedule->capacity ? schedule->capacity * 2 : 64;
        schedule->heap = xrealloc(schedule->heap,
                                  schedule->capacity * sizeof(*schedule->heap));
    }
    place(schedule, schedule->count, job);
    schedule->count++;
    sift_up(schedule, schedule->count - 1);
}

void schedule_remove(struct schedule *schedule, struct job *job)
{
    size_t index = job->heap_index;

    if (index >= schedule->count || schedule->heap[index] != job)
        return;

    schedule->count--;
    if (index == schedule->count)
        return;
    struct job *moved = schedule->heap[schedule->count];
    place(schedule, index, moved);
    sift_down(schedule, index);
    sift_up(schedule, moved->heap_index);
}

struct job *schedule_pop_due(struct schedule *schedule, int64_t now_ms)
{
    if (schedule->count == 0 || schedule->heap[0]->due_mono_ms > now_ms)
        return NULL;

    struct job *job = schedule->heap[0];
    schedule_remove(schedule, job);
    return job;
}

int64_t schedule_next_due(const struct schedule *schedule)
{
    return schedule->count ? schedule->heap[0]->due_mono_ms : -1;
}

size_t schedule_size(const struct schedule *schedule)
{
    return schedule->count;
}
