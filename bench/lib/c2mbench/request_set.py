"""The benchmark's request set: valid send requests over all six channels.

Every run draws the same set from a fixed seed, so the worker, the peer, wrk
and kcat all handle the same records. Each request has its own recipient and
its record key is "<channel>:<to>", so keys are distinct and spread over all
partitions, and the worker's per-key ordering never serialises two requests.
"""

import json
import random

SEED = 20261204

# The `from` UUIDs that chatt2me-sim accepts by default (tests/sim/sim_send.c).
CHANNEL_FROM = {
    "whatsapp": "11111111-1111-4111-8111-111111111111",
    "instagram": "22222222-2222-4222-8222-222222222222",
    "messenger": "33333333-3333-4333-8333-333333333333",
    "telegram": "44444444-4444-4444-8444-444444444444",
    "sms": "55555555-5555-4555-8555-555555555555",
    "web-chatt2me": "66666666-6666-4666-8666-666666666666",
}
CHANNELS = list(CHANNEL_FROM)

_WORDS = (
    "your order has shipped and will arrive tomorrow between nine and noon "
    "thanks for shopping with us reply stop to opt out of these updates "
    "the appointment is confirmed please bring a photo id and arrive early"
).split()


def _recipient(rng, channel):
    """Draw a recipient in the format the channel requires."""
    if channel == "whatsapp":
        return "55" + "".join(rng.choice("0123456789") for _ in range(11))
    if channel == "sms":
        return "+55" + "".join(rng.choice("0123456789") for _ in range(11))
    if channel == "telegram":
        return str(rng.randrange(10**8, 10**10))
    if channel in ("instagram", "messenger"):
        return str(rng.randrange(10**15, 10**17))
    return "visitor-%016x" % rng.getrandbits(64)


def _content(rng, index):
    """Text for four requests in five, an image with a caption for the fifth."""
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(8, 24)))
    if index % 5 == 4:
        return {"imageUrl": "https://cdn.example.com/img/%08x.jpg" % rng.getrandbits(32),
                "text": text[:60]}
    return {"text": text}


class RequestSet:
    """The first `count` requests of the seeded sequence.

    keys[i] and values[i] are the record key and value (bytes); bodies[i] is
    the HTTP body the worker sends for request i ({"from","to","content"}),
    for the load generator. The values carry no tab or newline, so a file of
    "key<TAB>value" lines feeds kcat.
    """

    def __init__(self, count):
        rng = random.Random(SEED)
        seen = set()
        self.keys = []
        self.values = []
        self.bodies = []
        self.channels = []
        for index in range(count):
            channel = CHANNELS[index % len(CHANNELS)]
            while True:
                to = _recipient(rng, channel)
                if (channel, to) not in seen:
                    seen.add((channel, to))
                    break
            content = _content(rng, index)
            request = {
                "id": "bench-%07d" % index,
                "channel": channel,
                "from": CHANNEL_FROM[channel],
                "to": to,
                "content": content,
                "metadata": {"campaign": "benchmark", "sequence": index},
            }
            body = {"from": CHANNEL_FROM[channel], "to": to, "content": content}
            self.keys.append(("%s:%s" % (channel, to)).encode())
            self.values.append(json.dumps(request, separators=(",", ":")).encode())
            self.bodies.append(json.dumps(body, separators=(",", ":")))
            self.channels.append(channel)

    def __len__(self):
        return len(self.values)

    def mean_value_bytes(self):
        return sum(len(v) for v in self.values) / max(1, len(self.values))

    def write_kcat_file(self, path, count):
        """Write the first `count` records as "key<TAB>value" lines."""
        with open(path, "wb") as out:
            for index in range(count):
                out.write(self.keys[index] + b"\t" + self.values[index] + b"\n")
