#!/usr/bin/env python3
"""A small QMP/HMP client on Python's standard library, used by the monitor tests.

usage: qmp_client.py qmp SOCKET|tcp:HOST:PORT 'JSON' ['JSON'...]   prints every line received
       qmp_client.py hmp SOCKET 'line' ['line'...]   prints everything received
Waits for the socket to appear (up to 30 s); after each command waits for its answer.
"""
import json
import socket
import sys
import time


def connect(path):
    """A unix socket path, or tcp:HOST:PORT."""
    deadline = time.time() + 30
    while True:
        try:
            if path.startswith("tcp:"):
                host, port = path[4:].rsplit(":", 1)
                return socket.create_connection((host, int(port)))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def qmp(path, commands):
    s = connect(path)
    f = s.makefile("rw", encoding="utf-8", newline="\n")
    print(f.readline().strip(), flush=True)  # greeting
    for text in commands:
        f.write(text + "\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                return
            print(line.strip(), flush=True)
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                break
    # Events that follow the last answer (SHUTDOWN after quit) until the peer closes.
    s.settimeout(5)
    try:
        for line in f:
            print(line.strip(), flush=True)
    except (socket.timeout, OSError):
        pass


def hmp(path, lines):
    s = connect(path)
    s.settimeout(10)
    buf = b""

    prompts = 0

    def until_prompt():
        nonlocal buf, prompts
        prompts += 1
        while buf.count(b"(qemu) ") < prompts:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, OSError):
                return False
            if not chunk:
                return False
            buf += chunk
        return True

    until_prompt()
    for line in lines:
        s.sendall(line.encode() + b"\n")
        if not until_prompt():
            break
    sys.stdout.write(buf.decode("utf-8", "replace"))


if __name__ == "__main__":
    mode, path, *rest = sys.argv[1:]
    (qmp if mode == "qmp" else hmp)(path, rest)
