/* Result records and dead-letter headers: what the worker publishes for
 * every consumed request. */
#ifndef C2M_RESULT_H
#define C2M_RESULT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

struct job;

/* The version of the result record's layout, in its "schema" field. */
#define RESULT_SCHEMA_VERSION 1

/* Encodes the job's result record as JSON. Returns a malloc'd,
 * NUL-terminated buffer owned by the caller; *len excludes the NUL. */
char *result_encode(const struct job *job, int64_t completed_wall_ms,
                    size_t *len);

/* Returns new headers for the job's result record: request id, source
 * coordinates, attempts and last HTTP status. Owned by the caller. */
rd_kafka_headers_t *result_headers(const struct job *job);

/* Returns the dead letter's headers: the original record's headers byte
 * for byte, followed by headers saying why it failed. Owned by the
 * caller. */
rd_kafka_headers_t *result_dead_letter_headers(const struct job *job,
                                               int64_t failed_wall_ms);

#endif
