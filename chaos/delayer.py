#!/usr/bin/env python3
"""Delay packets in userspace: this kernel has no `tc netem`, so chaos/run.sh queues a network
namespace's outgoing packets to NFQUEUE (`iptables -j NFQUEUE --queue-bypass`) and this process,
run in that namespace, gives each one its verdict (accept) DELAY +- JITTER milliseconds after it
arrived. It speaks nfnetlink_queue over a raw netlink socket (no library): bind the queue, ask
for metadata only, then read packet ids and answer verdicts.

Bounded: at most --max packets wait here (the kernel's queue is set to the same length and drops
past it, as a full link would); on SIGTERM or SIGINT every waiting packet is accepted at once and
the queue unbound. With --queue-bypass on the rule, packets pass undelayed when no delayer runs.

    delayer.py --queue 0 --delay-ms 100 --jitter-ms 25 [--seed 7] [--max 4096]
"""
import argparse
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
SO_RCVBUFFORCE = 33
NETLINK_NO_ENOBUFS = 5
SOL_NETLINK = 270


def attribute(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


class Queue:
    def __init__(self, number, maxlen):
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.request(NFQNL_MSG_CONFIG, [attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET))])
        self.request(NFQNL_MSG_CONFIG, [attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))])
        self.request(NFQNL_MSG_CONFIG, [attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen))])

    def message(self, kind, attributes, flags):
        self.seq += 1
        body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", self.number) + b"".join(attributes)
        return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, self.seq, 0) + body

    def request(self, kind, attributes):
        """Sends a configuration request and waits for its acknowledgement (raises on an error)."""
        self.sock.send(self.message(kind, attributes, NLM_F_REQUEST | NLM_F_ACK))
        while True:
            for kind_, payload in self.messages(self.sock.recv(1 << 16)):
                if kind_ == NLMSG_ERROR:
                    code = struct.unpack("=i", payload[:4])[0]
                    if code != 0:
                        raise OSError(-code, "nfnetlink_queue refused the configuration")
                    return

    def verdict(self, packet_id):
        self.sock.send(self.message(NFQNL_MSG_VERDICT, [attribute(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))], NLM_F_REQUEST))

    @staticmethod
    def messages(data):
        """(type, payload after the netlink header) of each message in one datagram."""
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                return
            yield kind, data[offset + 16:offset + length]
            offset += (length + 3) & ~3

    @staticmethod
    def packet_id(payload):
        """The packet id of an NFQNL_MSG_PACKET's payload (after its nfgenmsg), or None."""
        offset = 4
        while offset + 4 <= len(payload):
            length, kind = struct.unpack_from("=HH", payload, offset)
            if length < 4:
                return None
            if kind & 0x3FFF == NFQA_PACKET_HDR:
                return struct.unpack_from("!I", payload, offset + 4)[0]
            offset += (length + 3) & ~3
        return None

    def unbind(self):
        try:
            self.request(NFQNL_MSG_CONFIG, [attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, socket.AF_INET))])
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max", type=int, default=4096)
    a = parser.parse_args()
    if not (0 <= a.queue <= 65535 and 0 <= a.delay_ms <= 10_000 and 0 <= a.jitter_ms <= a.delay_ms and 1 <= a.max <= 65536):
        parser.error("--queue 0-65535, --delay-ms 0-10000, --jitter-ms 0..delay, --max 1-65536")
    rng = random.Random(a.seed)
    queue = Queue(a.queue, a.max)
    stopping = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stopping.append(True))
    waiting = []  # (due, arrival order, packet id)
    order = 0
    passed = 0
    print("delayer: queue %d, %.0f +- %.0f ms" % (a.queue, a.delay_ms, a.jitter_ms), flush=True)
    while not stopping:
        now = time.monotonic()
        while waiting and waiting[0][0] <= now:
            queue.verdict(heapq.heappop(waiting)[2])
            passed += 1
        timeout = max(0.0, waiting[0][0] - now) if waiting else 0.5
        try:
            ready, _, _ = select.select([queue.sock], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = queue.sock.recv(1 << 16)
        except InterruptedError:
            continue
        arrived = time.monotonic()
        for kind, payload in queue.messages(data):
            if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            packet = queue.packet_id(payload)
            if packet is None:
                continue
            if len(waiting) >= a.max:       # full: the packet passes now rather than waiting unbounded
                queue.verdict(packet)
                passed += 1
                continue
            delay = max(0.0, a.delay_ms + rng.uniform(-a.jitter_ms, a.jitter_ms)) / 1000
            order += 1
            heapq.heappush(waiting, (arrived + delay, order, packet))
    for _, _, packet in waiting:
        queue.verdict(packet)
    queue.unbind()
    print("delayer: stopped after %d packet(s), %d released at the stop" % (passed + len(waiting), len(waiting)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
