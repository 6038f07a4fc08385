/* The retry schedule: jobs waiting for their next attempt, ordered by
 * due time (a binary min-heap on job->due_mono_ms). */
#ifndef C2M_SCHEDULE_H
#define C2M_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

struct job;
struct schedule;

struct schedule *schedule_new(void);
void schedule_destroy(struct schedule *schedule);

void schedule_add(struct schedule *schedule, struct job *job);
void schedule_remove(struct schedule *schedule, struct job *job);

/* Removes and returns the earliest job due at or before now_ms, or NULL. */
struct job *schedule_pop_due(struct schedule *schedule, int64_t now_ms);

/* Returns the earliest due time, or -1 when the schedule is empty. */
int64_t schedule_next_due(const struct schedule *schedule);
size_t schedule_size(const struct schedule *schedule);

#endif
