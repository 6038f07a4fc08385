"""Prints the results and dead letters of the demo as a table.

Usage: show_results.py BOOTSTRAP EXPECTED_COUNT TIMEOUT_SECONDS
Exits 1 when fewer than EXPECTED_COUNT records arrive before the timeout.
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer


def main():
    bootstrap, expected, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "demo-viewer-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe(["chatt2me.results", "chatt2me.dead-letters"])

    rows = []
    deadline = time.monotonic() + timeout
    while len(rows) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (msg.headers() or [])}
        if msg.topic() == "chatt2me.dead-letters":
            rows.append((headers.get("chatt2me.request_id", "?"), "dead letter",
                         headers.get("chatt2me.attempts", ""),
                         "%s %s" % (headers.get("chatt2me.error_class", ""),
                                    headers.get("chatt2me.http_status", ""))))
            continue
        result = json.loads(msg.value())
        error = result.get("error") or {}
        detail = result.get("message_id") or "%s %s" % (error.get("class", ""), error.get("code", ""))
        rows.append((result.get("id") or "(unreadable)", result["status"], str(result["attempts"]), detail))
    consumer.close()

    print("%-28s %-12s %-8s %s" % ("request id", "status", "attempts", "message id or error"))
    for row in sorted(rows):
        print("%-28s %-12s %-8s %s" % row)
    print("\n%d of %d requests have a result or a dead letter" % (len(rows), expected))
    return 0 if len(rows) >= expected else 1


if __name__ == "__main__":
    sys.exit(main())
