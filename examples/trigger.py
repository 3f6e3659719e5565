#!/usr/bin/env python3
"""Trigger a cdktr run from Python: a complete event listener client in a dozen lines.

    pip install pyzmq
    python3 examples/trigger.py --principal tcp://127.0.0.1:5561 --workflow hello
    python3 examples/trigger.py --workflow reports.daily --param day=2025-01-20
    python3 examples/trigger.py --credential hook.cred --principal tcp://10.0.0.5:5561 --workflow hello

With --credential (a file from `cdktr keys new NAME --role trigger --out FILE`) it speaks
CURVE, as an authenticated principal requires: the file holds this client's key pair and the
principal's public key.

Prints the run id and exits 0, or prints the principal's error and exits 1 (2 when the
principal does not answer). The message format is documented in docs/protocol.md.
"""

import argparse
import sys
import tomllib

import zmq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--principal", default="tcp://127.0.0.1:5561")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the reply")
    parser.add_argument("--credential", help="credential file, for a principal that requires one")
    args = parser.parse_args()

    params = dict(p.split("=", 1) for p in args.param)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if args.credential:
        with open(args.credential, "rb") as f:
            credential = tomllib.load(f)
        socket.curve_serverkey = credential["principal"].encode()
        socket.curve_publickey = credential["public"].encode()
        socket.curve_secretkey = credential["secret"].encode()
    socket.connect(args.principal)
    socket.send_json({
        "v": 1,
        "id": 1,
        "request": {
            "family": "control",
            "message": {"type": "trigger", "workflow": args.workflow, "params": params, "trigger": "event:python"},
        },
    })
    if not socket.poll(int(args.timeout * 1000)):
        print(f"no reply from {args.principal} within {args.timeout}s", file=sys.stderr)
        return 2
    response = socket.recv_json()["response"]
    if response["family"] == "error":
        print(f"error: {response['reply']['message']} ({response['reply']['code']})", file=sys.stderr)
        return 1
    print(response["reply"]["run_id"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
