#!/usr/bin/python3
"""Isolation soak: several concurrent clients send random state-changing requests to the
isolation test server (tests/servers/isolation.c) under
`kvmserver -e -t 2 --max-request-time 1 -v`; some requests are cut by --max-request-time
(/slow) and some crash the guest (/crash, and the direct touches that must crash a pristine VM).
Every answer must be the endpoint's pristine one. Not part of `make test`.

Prints the counts: requests, pristine and non-pristine answers (the first few shown), cut and
crashed requests as the clients saw them and as kvmserver logged them, client-side hangs,
resets in the log (-v logs one per connection, so it must equal the requests), and the time.
Exit status 0 only when every answer was pristine, nothing hung and every request was reset.

Usage: bench/isolation_soak.py [-n REQUESTS] [-c CLIENTS] [--build DIR] [--transport T]
       [--seed S] [--slow FRACTION] [--crash FRACTION]
"""
import argparse
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from isolation_endpoints import CLOSED, ENDPOINTS, PRISTINE, ask  # noqa: E402
from servers import ServerFactory  # noqa: E402

SUMMARY_LINE = re.compile(r"kvmserver: \d+ resets; per reset")
RESET_LINE = re.compile(r"request VM \d+ reset:")
CRASH_LINE = re.compile(r"request VM \d+: crashed:")
CUT_LINE = re.compile(r"request VM \d+: request took longer than --max-request-time")
ANSWER_TIMEOUT = 15.0     # seconds: a request with no outcome by then hung
SHOWN = 5                 # non-pristine answers shown


def options():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="requests (default 100000)")
    parser.add_argument("-c", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--build", default=str(REPO / "build"), help="build directory")
    parser.add_argument("--transport", choices=["exit", "shared", "auto"], default="auto")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--slow", type=float, default=0.002,
                        help="fraction of /slow requests (default 0.002)")
    parser.add_argument("--crash", type=float, default=0.01,
                        help="fraction of /crash requests (default 0.01)")
    return parser.parse_args()


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.wrong = []
        self.wrong_paths = Counter()

    def add(self, kind, detail=None):
        with self.lock:
            self.counts[kind] += 1
            if detail and len(self.wrong) < SHOWN:
                self.wrong.append(detail)


def pristine_answers(endpoint):
    """Each endpoint's answer on the fresh server, before anything changed any state; the
    touches first, so nothing they could see was mapped or widened yet."""
    order = sorted(ENDPOINTS, key=lambda path: PRISTINE.get(path) != CLOSED)
    answers = {path: ask(endpoint, path, ANSWER_TIMEOUT) for path in order}
    for path, want in PRISTINE.items():
        if answers[path] != want:
            sys.exit(f"{path} answered {answers[path]!r} on the fresh server, not {want!r}")
    return answers


def client(endpoint, pristine, requests, tally):
    for path in requests:
        try:
            got = ask(endpoint, path, ANSWER_TIMEOUT)
        except socket.timeout:
            tally.add("hung", (path, "(no outcome within %g s)" % ANSWER_TIMEOUT, "an outcome"))
            continue
        except OSError as error:
            tally.add("errors", (path, repr(error), "a connection"))
            continue
        if path == "/slow":
            tally.add("cut" if got == CLOSED else "slow not cut", None if got == CLOSED else
                      (path, got, CLOSED))
        elif path == "/crash":
            tally.add("crashed" if got == CLOSED else "crash not crashed",
                      None if got == CLOSED else (path, got, CLOSED))
        elif got == pristine[path]:
            tally.add("pristine")
            if got == CLOSED:
                tally.add("crashed")
        else:
            tally.add("not pristine", (path, got, pristine[path]))
            with tally.lock:
                tally.wrong_paths[path] += 1


def plan(count, rng, args):
    """The request paths, in a random order: mostly the state endpoints, with /slow and /crash
    at the given fractions."""
    paths = []
    for _ in range(count):
        roll = rng.random()
        paths.append("/slow" if roll < args.slow else
                     "/crash" if roll < args.slow + args.crash else rng.choice(ENDPOINTS))
    return paths


def wait_for_resets(server, expected, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        resets = sum(1 for line in server.stderr_lines if RESET_LINE.search(line))
        if resets >= expected or time.monotonic() > deadline:
            return resets
        time.sleep(0.1)


def main():
    args = options()
    build = Path(args.build)
    kvmserver = build / "kvmserver"
    program = build / "tests" / "servers" / "isolation"
    for path in (kvmserver, program):
        if not path.is_file():
            sys.exit(f"{path} not built: meson compile -C {build}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)

    factory = ServerFactory()
    server = factory.kvmserver(kvmserver, program, options=[
        f"--syscall-transport={args.transport}", "-e", "-t", "2", "--max-request-time", "1",
        "-v", "--allow-read"])
    try:
        pristine = pristine_answers(server.endpoint)
        paths = plan(args.n, rng, args)
        tally = Tally()
        shares = [paths[i::args.c] for i in range(args.c)]
        started = time.monotonic()
        clients = [threading.Thread(target=client,
                                    args=(server.endpoint, pristine, share, tally))
                   for share in shares]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.monotonic() - started
        connections = len(pristine) + args.n
        resets = wait_for_resets(server, connections)
        log = server.stderr_lines
        logged_crashes = sum(1 for line in log if CRASH_LINE.search(line))
        logged_cuts = sum(1 for line in log if CUT_LINE.search(line))
    finally:
        server.terminate()
        time.sleep(0.2)              # the collector threads read the last lines
        factory.started.clear()      # stopped already; nothing to print
    summary = [line for line in server.stderr_lines if SUMMARY_LINE.search(line)]
    counts = tally.counts
    answered = counts["pristine"] + counts["not pristine"]
    print(f"seed {seed}, {args.c} clients, kvmserver -e -t 2 --max-request-time 1 "
          f"--syscall-transport={args.transport}")
    print(f"requests            {args.n} (+{len(pristine)} to learn the pristine answers)")
    print(f"pristine answers    {counts['pristine']} of {answered} state requests "
          f"(crash-expecting touches included)")
    print(f"non-pristine        {counts['not pristine']}")
    if tally.wrong_paths:
        print("  by endpoint: " + ", ".join(f"{path} {n}"
                                            for path, n in tally.wrong_paths.most_common()))
    for path, got, want in tally.wrong:
        print(f"  {path}: got {got!r}, pristine {want!r}")
    print(f"cut (/slow)         {counts['cut']} seen by clients, {logged_cuts} logged; "
          f"not cut: {counts['slow not cut']}")
    learning_crashes = sum(1 for answer in pristine.values() if answer == CLOSED)
    print(f"crashed             {counts['crashed']} seen by clients (+{learning_crashes} while "
          f"learning), {logged_crashes} logged; "
          f"/crash that answered: {counts['crash not crashed']}")
    print(f"hung / errors       {counts['hung']} / {counts['errors']}")
    print(f"resets in the log   {resets} (connections: {connections})")
    for line in summary:
        print(f"  {line}")
    print(f"elapsed             {elapsed:.1f} s, {args.n / elapsed:.0f} requests/s")
    failed = (counts["not pristine"] or counts["hung"] or counts["errors"]
              or counts["slow not cut"] or counts["crash not crashed"] or resets != connections)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
