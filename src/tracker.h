/* Offset tracking for one partition: which consumed records are finished
 * (their result or dead letter acknowledged by Kafka), and so which
 * offset may be committed. Records finish out of order; the commit point
 * only moves past a record once every earlier record has finished. */
#ifndef C2M_TRACKER_H
#define C2M_TRACKER_H

#include <stddef.h>
#include <stdint.h>

struct tracker;

struct tracker *tracker_new(void);
void tracker_destroy(struct tracker *tracker);

/* Records a consumed offset. Offsets must be added in increasing order,
 * as the consumer delivers them; gaps (compaction, transaction markers)
 * are fine. Returns a handle for tracker_finish(). */
uint64_t tracker_add(struct tracker *tracker, int64_t offset);

/* Marks the record behind handle finished. Finishing twice is a no-op. */
void tracker_finish(struct tracker *tracker, uint64_t handle);

/* Returns the offset to commit (the next offset to consume: the first
 * unfinished record's offset, or the last added offset + 1 when all are
 * finished), or -1 when nothing has been added yet. */
int64_t tracker_commit_offset(const struct tracker *tracker);

/* Returns how many added records are not finished yet. */
size_t tracker_unfinished(const struct tracker *tracker);

#endif
