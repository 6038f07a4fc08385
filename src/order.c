#include "order.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "util.h"

struct order_queue {
    struct order_queue *bucket_next;
    uint64_t hash;
    struct job *head;
    struct job *tail;
    size_t key_len;
    unsigned char key[];
};

struct order_map {
    struct order_queue **buckets;
    size_t bucket_count;        /* a power of two */
    size_t queue_count;
};

static uint64_t hash_key(const void *key, size_t len)
{
    /* FNV-1a: keys are short and chosen by producers we trust to be
     * non-adversarial to our memory, and a flood of one bucket only costs
     * time in this worker, never correctness. */
    const unsigned char *p = key;
    uint64_t hash = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        hash ^= p[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

struct order_map *order_map_new(void)
{
    struct order_map *map = xcalloc(1, sizeof(*map));

    map->bucket_count = 1024;
    map->buckets = xcalloc(map->bucket_count, sizeof(*map->buckets));
    return map;
}

void order_map_destroy(struct order_map *map)
{
    if (!map)
        return;
    for (size_t i = 0; i < map->bucket_count; i++) {
        struct order_queue *queue = map->buckets[i];
        while (queue) {
            struct order_queue *next = queue->bucket_next;
            free(queue);
            queue = next;
        }
    }
    free(map->buckets);
    free(map);
}

static void rehash(struct order_map *map)
{
    size_t count = map->bucket_count * 2;
    struct order_queue **buckets = xcalloc(count, sizeof(*buckets));

    for (size_t i = 0; i < map->bucket_count; i++) {
        struct order_queue *queue = map->buckets[i];
        while (queue) {
            struct order_queue *next = queue->bucket_next;
            size_t slot = queue->hash & (count - 1);
            queue->bucket_next = buckets[slot];
            buckets[slot] = queue;
            queue = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->bucket_count = count;
}

static struct order_queue *find_or_add(struct order_map *map, const void *key,
                                       size_t key_len)
{
    uint64_t hash = hash_key(key, key_len);
    size_t slot = hash & (map->bucket_count - 1);

    for (struct order_queue *queue = map->buckets[slot]; queue;
         queue = queue->bucket_next) {
        if (queue->hash == hash && queue->key_len == key_len &&
            memcmp(queue->key, key, key_len) == 0)
            return queue;
    }

    if (map->queue_count >= map->bucket_count) {
        rehash(map);
        slot = hash & (map->bucket_count - 1);
    }

    struct order_queue *queue = xcalloc(1, sizeof(*queue) + key_len);
    queue->hash = hash;
    queue->key_len = key_len;
    if (key_len)
        memcpy(queue->key, key, key_len);
    queue->bucket_next = map->buckets[slot];
    map->buckets[slot] = queue;
    map->queue_count++;
    return queue;
}

static void unlink_queue(struct order_map *map, struct order_queue *queue)
{
    struct order_queue **link = &map->buckets[queue->hash &
                                              (map->bucket_count - 1)];

    while (*link != queue)
        link = &(*link)->bucket_next;
    *link = queue->bucket_next;
    map->queue_count--;
    free(queue);
}

bool order_map_push(struct order_map *map, struct job *job, const void *key,
                    size_t key_len)
{
    struct order_queue *queue = find_or_add(map, key, key_len);

    job->order = queue;
    job->order_next = NULL;
    if (queue->tail)
        queue->tail->order_next = job;
    else
        queue->head = job;
    queue->tail = job;
    return queue->head == job;
}

struct job *order_map_remove(struct order_map *map, struct job *job)
{
    struct order_queue *queue = job->order;
    struct job *new_head = NULL;

    if (!queue)
        return NULL;

    if (queue->head == job) {
        queue->head = job->order_next;
        new_head = queue->head;
        if (!queue->head)
            queue->tail = NULL;
    } else {
        struct job *prev = queue->head;
        while (prev && prev->order_next != job)
            prev = prev->order_next;
        if (prev) {
            prev->order_next = job->order_next;
            if (queue->tail == job)
                queue->tail = prev;
        }
    }

    job->order = NULL;
    job->order_next = NULL;
    if (!queue->head)
        unlink_queue(map, queue);
    return new_head;
}

size_t order_map_keys(const struct order_map *map)
{
    return map->queue_count;
}
