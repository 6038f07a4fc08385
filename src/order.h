/* Ordering queues: jobs with the same ordering key run strictly one after
 * another, in the order they were consumed. Jobs with different keys run
 * concurrently. */
#ifndef C2M_ORDER_H
#define C2M_ORDER_H

#include <stdbool.h>
#include <stddef.h>

struct job;
struct order_map;

struct order_map *order_map_new(void);
void order_map_destroy(struct order_map *map);

/* Appends job to the queue of key. Returns true when the job is the
 * queue's head, so it may start now. The map keeps no copy of job data
 * but the key bytes. */
bool order_map_push(struct order_map *map, struct job *job, const void *key,
                    size_t key_len);

/* Removes job from its queue (it finished or is being dropped). Returns
 * the job that became the queue's head because of this, or NULL. */
struct job *order_map_remove(struct order_map *map, struct job *job);

/* Returns how many keys have queued jobs. */
size_t order_map_keys(const struct order_map *map);

#endif
