"""The benchmark's peer: the consume-send-produce loop people write by hand
in Python with confluent-kafka and requests.Session.

One record at a time: poll, POST the body to the API, produce a result,
commit the offset (asynchronously). No validation, no retries, no ordering
logic. The commit can reach the broker before the result is acknowledged,
so a crash can lose a result: this is weaker than the worker's at-least-once
guarantee and therefore, if anything, faster. Its result records carry the
fields the benchmark reads (status, source, received_at, completed_at).

Runs until SIGTERM or SIGINT. The API key comes from PEER_API_KEY.
"""

import argparse
import datetime
import json
import os
import signal
import sys

import requests
from confluent_kafka import Consumer, Producer

running = True


def stop(_signum, _frame):
    global running
    running = False


def rfc3339_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--requests-topic", required=True)
    parser.add_argument("--results-topic", required=True)
    parser.add_argument("--api-base-url", required=True)
    args = parser.parse_args()
    api_key = os.environ["PEER_API_KEY"]

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    producer = Producer({
        "bootstrap.servers": args.brokers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    session = requests.Session()
    session.headers.update({"x-api-key": api_key})
    consumer.subscribe([args.requests_topic])

    while running:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print("peer: consumer error: %s" % msg.error(), file=sys.stderr)
            continue
        received_at = rfc3339_now()
        request = json.loads(msg.value())
        body = {"from": request["from"], "to": request["to"], "content": request["content"]}
        url = "%s/v1/communication/%s/message" % (args.api_base_url, request["channel"])
        try:
            answer = session.post(url, json=body, timeout=30)
            status = "sent" if 200 <= answer.status_code < 300 else "failed"
            http_status = answer.status_code
            message_id = answer.json().get("messageId") if status == "sent" else None
        except requests.RequestException as exc:
            status, http_status, message_id = "failed", None, None
            print("peer: request %s failed: %s" % (request.get("id"), exc), file=sys.stderr)
        result = {
            "id": request.get("id"), "status": status, "channel": request["channel"],
            "message_id": message_id, "http_status": http_status,
            "source": {"topic": msg.topic(), "partition": msg.partition(),
                       "offset": msg.offset()},
            "received_at": received_at, "completed_at": rfc3339_now(),
        }
        producer.produce(args.results_topic, key=msg.key(), value=json.dumps(result))
        producer.poll(0)
        consumer.commit(message=msg, asynchronous=True)

    producer.flush(30)
    consumer.close()


if __name__ == "__main__":
    main()
