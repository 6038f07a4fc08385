#include "tracker.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A ring of entries in consume order. Entries before `head` are finished
 * and dropped; handles are absolute sequence numbers, so an entry's slot
 * is (handle - base) positions after the ring's start. */
struct tracker_entry {
    int64_t offset;
    bool finished;
};

struct tracker {
    struct tracker_entry *ring;
    size_t capacity;            /* a power of two */
    size_t start;               /* slot of sequence number `base` */
    size_t count;               /* live entries from `base` on */
    uint64_t base;              /* sequence number of the oldest live entry */
    size_t unfinished;
    int64_t next_offset;        /* last added offset + 1, or -1 */
};

struct tracker *tracker_new(void)
{
    struct tracker *tracker = xcalloc(1, sizeof(*tracker));

    tracker->capacity = 64;
    tracker->ring = xcalloc(tracker->capacity, sizeof(*tracker->ring));
    tracker->next_offset = -1;
    return tracker;
}

void tracker_destroy(struct tracker *tracker)
{
    if (!tracker)
        return;
    free(tracker->ring);
    free(tracker);
}

static struct tracker_entry *entry_at(const struct tracker *tracker,
                                      size_t index)
{
    return &tracker->ring[(tracker->start + index) & (tracker->capacity - 1)];
}

static void grow(struct tracker *tracker)
{
    size_t capacity = tracker->capacity * 2;
    struct tracker_entry *ring = xcalloc(capacity, sizeof(*ring));

    for (size_t i = 0; i < tracker->count; i++)
        ring[i] = *entry_at(tracker, i);
    free(tracker->ring);
    tracker->ring = ring;
    tracker->capacity = capacity;
    tracker->start = 0;
}

uint64_t tracker_add(struct tracker *tracker, int64_t offset)
{
    if (tracker->count == tracker->capacity)
        grow(tracker);

    struct tracker_entry *entry = entry_at(tracker, tracker->count);
    entry->offset = offset;
    entry->finished = false;
    tracker->count++;
    tracker->unfinished++;
    tracker->next_offset = offset + 1;
    return tracker->base + tracker->count - 1;
}

void tracker_finish(struct tracker *tracker, uint64_t handle)
{
    if (handle < tracker->base || handle >= tracker->base + tracker->count)
        return;

    struct tracker_entry *entry = entry_at(tracker, handle - tracker->base);
    if (entry->finished)
        return;
    entry->finished = true;
    tracker->unfinished--;

    /* Drop the finished prefix. Once every entry is finished, the commit
     * point is next_offset. */
    while (tracker->count > 0 && entry_at(tracker, 0)->finished) {
        tracker->start = (tracker->start + 1) & (tracker->capacity - 1);
        tracker->count--;
        tracker->base++;
    }
}

int64_t tracker_commit_offset(const struct tracker *tracker)
{
    if (tracker->count > 0)
        return entry_at(tracker, 0)->offset;
    return tracker->next_offset;
}

size_t tracker_unfinished(const struct tracker *tracker)
{
    return tracker->unfinished;
}
