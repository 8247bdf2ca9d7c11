#!/usr/bin/python3
"""ebs-emulator: a stateful stand-in for the Alibaba Cloud EBS API (2021-07-30) on
loopback.  See README.md beside this file.

    /usr/bin/python3 tests/emulator/ebs_emulator.py [options]
"""

import argparse
import ipaddress
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from model import Model, load_fixture          # noqa: E402
from server import (FAULT_KINDS, Server, State, parse_fault_spec)  # noqa: E402


def parse_key(spec, what):
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("%s must be ID:SECRET[:TOKEN]" % what)
    return parts[0], parts[1], (parts[2] if len(parts) > 2 and parts[2] else None)


def loopback_family(host):
    if host == "localhost":
        return socket.AF_INET, "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None, None
    if not ip.is_loopback:
        return None, None
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".port-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def build_parser():
    ap = argparse.ArgumentParser(
        prog="ebs_emulator.py",
        description="Alibaba Cloud EBS API emulator (loopback only, for tests).")
    ap.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    ap.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    ap.add_argument("--port-file", help="write the chosen port there once listening")
    ap.add_argument("--regions", default="cn-shanghai,cn-beijing",
                    help="comma-separated regions (default cn-shanghai,cn-beijing)")
    ap.add_argument("--pairs", type=int, default=0, help="generate N pairs")
    ap.add_argument("--seed", type=int, default=1, help="generator seed")
    ap.add_argument("--epoch", type=int, default=None,
                    help="reference Unix time for generated/fixture timestamps "
                         "(default: now); pins every field for golden tests")
    ap.add_argument("--fixture", action="append", default=[],
                    help="load pairs from a JSON list of ReplicaPair records (repeatable)")
    ap.add_argument("--ak", action="append", default=[], metavar="ID:SECRET[:TOKEN]",
                    help="an access key (repeatable; default testid:testsecret); a third "
                         "field makes it a static STS key whose token must be sent")
    ap.add_argument("--ak-denied", action="append", default=[], metavar="ID:SECRET",
                    help="a valid key whose mutating calls get 403 Forbidden.Action")
    ap.add_argument("--transition-delay", type=float, default=2.0,
                    help="seconds a transient status lasts (0: settles on the next read)")
    ap.add_argument("--sts-ttl", type=int, default=3600,
                    help="lifetime of STS credentials from the metadata service")
    ap.add_argument("--imds-v2-only", action="store_true",
                    help="metadata GETs require an X-aliyun-ecs-metadata-token")
    ap.add_argument("--imds-role", default="EcsRamRoleTest", help="RAM role name")
    ap.add_argument("--create-time-ms", action="store_true",
                    help="send CreateTime in milliseconds")
    ap.add_argument("--fault", action="append", default=[],
                    metavar="KIND[:ACTION[:COUNT[:ARG]]]",
                    help="a standing fault (repeatable); kinds: " + ", ".join(FAULT_KINDS))
    ap.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--log", help="append one JSON line per request to FILE")
    ap.add_argument("--verbose", action="store_true", help="one stderr line per request")
    return ap


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    family, host = loopback_family(args.host)
    if family is None:
        ap.error("--host %s is not a loopback address; the emulator listens on loopback "
                 "only" % args.host)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    if not regions:
        ap.error("--regions is empty")
    if args.pairs < 0:
        ap.error("--pairs must be >= 0")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    try:
        aks = [parse_key(s, "--ak") for s in args.ak] or [("testid", "testsecret", None)]
        denied = [parse_key(s, "--ak-denied") for s in args.ak_denied]
        faults = [parse_fault_spec(s) for s in args.fault]
        for kind, _, _, _ in faults:
            if kind not in FAULT_KINDS:
                raise ValueError("unknown fault kind %r" % kind)
    except (argparse.ArgumentTypeError, ValueError) as e:
        ap.error(str(e))

    t0 = time.time()
    model = Model(args.transition_delay, args.create_time_ms, args.epoch)
    try:
        for path in args.fixture:
            model.load_records(load_fixture(path))
        model.generate(args.pairs, args.seed, regions)
    except (OSError, ValueError, TypeError) as e:
        sys.stderr.write("ebs-emulator: cannot load pairs: %s\n" % e)
        return 2
    gen_s = time.time() - t0

    cfg = {"regions": regions, "transition_delay": args.transition_delay,
           "sts_ttl": args.sts_ttl, "imds_v2_only": args.imds_v2_only,
           "imds_role": args.imds_role, "create_time_ms": args.create_time_ms,
           "aks": aks, "aks_denied": denied, "log": args.log, "verbose": args.verbose,
           "seed": args.seed}
    state = State(cfg, model)
    for kind, action, count, arg in faults:
        state.add_fault(kind, action, count, arg)

    ssl_ctx = None
    if args.tls_cert:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    try:
        server = Server((host, args.port), state, ssl_ctx, family)
    except OSError as e:
        sys.stderr.write("ebs-emulator: cannot listen on %s:%d: %s\n" % (host, args.port, e))
        return 2
    port = server.server_address[1]

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="ebs-emulator", daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    scheme = "https" if ssl_ctx else "http"
    sys.stderr.write("ebs-emulator: listening on %s://%s:%d (pid %d, %d pairs in %.2fs, "
                     "regions %s)\n" % (scheme, host if ":" not in host else "[%s]" % host,
                                        port, os.getpid(), len(model.pairs), gen_s,
                                        ",".join(regions)))
    sys.stderr.flush()
    while not stop.wait(0.5):
        if not thread.is_alive():
            break
    state.stopping.set()
    server.shutdown()
    server.server_close()
    c = state.counters()
    sys.stderr.write("ebs-emulator: stopped after %d requests %s\n" % (
        c["total"], " ".join("%s=%d" % kv for kv in sorted(c["calls"].items()))))
    if state.log_file is not None:
        state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
