/* The health server: /healthz, /readyz and /metrics over HTTP on its own
 * thread (libmicrohttpd), reading state the event loop publishes. */
#ifndef C2M_HEALTH_H
#define C2M_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;
struct health;

/* State the loop publishes for the probes; every field is read by the
 * server thread through the setters below. */
enum health_flag {
    HEALTH_ASSIGNED = 0,        /* at least one partition assigned */
    HEALTH_BROKER_REACHABLE,
    HEALTH_OUTAGE,              /* API outage mode active */
    HEALTH_AUTH_PAUSED,         /* consumption paused after repeated 401s */
    HEALTH_STOPPING,
    HEALTH_FLAG_COUNT,
};

/* Starts listening on address:port (address "0.0.0.0", "127.0.0.1",
 * "::" ...). Returns NULL with errstr on failure. metrics must outlive
 * the server. */
struct health *health_start(const char *address, int port,
                            struct metrics *metrics, int stale_after_ms,
                            char *errstr, size_t errstr_size);
/* health_stop, health_beat and health_set do nothing when health is
 * NULL, so the loop may call them with the server disabled. */
void health_stop(struct health *health);

/* Records that the event loop ran an iteration now. /healthz fails when
 * the last beat is older than stale_after_ms. */
void health_beat(struct health *health, int64_t now_mono_ms);
void health_set(struct health *health, enum health_flag flag, bool value);

/* Returns the port actually bound (useful with port 0). */
int health_port(const struct health *health);

#endif
