"""A small signing client for the EBS emulator (and, in principle, the real API), plus a
helper that starts and stops the emulator.  Standard library only; reusable by every
pytest suite:

    import sys; sys.path.insert(0, "tests/emulator")
    from client import Emulator, call

    with Emulator("--pairs", "20", "--transition-delay", "0.2") as emu:
        status, headers, body = emu.call("DescribeDiskReplicaPairs",
                                         {"RegionId": "cn-shanghai", "MaxResults": "500"})
        emu.admin("POST", "/_admin/faults", {"kind": "http503", "action": "*", "count": 2})
        print(emu.counters()["calls"])

call() signs with V3 (ACS3-HMAC-SHA256) by default, or V1 (sig="v1"), and returns
(status, headers, json) where headers is a dict with lower-case names and json is the
parsed body (None when the body is not JSON; pass raw=True for the bytes instead).
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import signing  # noqa: E402

EBS_VERSION = "2021-07-30"
PYTHON = "/usr/bin/python3"
EMULATOR = os.path.join(HERE, "ebs_emulator.py")


def utc_now(offset=0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def _connection(host, port, tls, timeout):
    if tls:
        ctx = tls if isinstance(tls, ssl.SSLContext) else ssl._create_unverified_context()
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def build_request(action, params=None, ak="testid", secret="testsecret", sig="v3",
                  token=None, client_token=None, method="POST", host_header="127.0.0.1",
                  version=EBS_VERSION, timestamp=None, nonce=None, form=False,
                  extra_headers=None, bad_signature=False):
    """Returns (url, headers dict, body bytes) for one signed request."""
    params = {k: _str(v) for k, v in (params or {}).items() if v is not None}
    if client_token is not None:
        params["ClientToken"] = client_token
    timestamp = timestamp or utc_now()
    nonce = nonce or uuid.uuid4().hex
    headers = {"host": host_header, "accept": "application/json",
               "user-agent": "ebs-emulator-client/1"}
    body = b""
    if sig == "v1":
        common = {"Action": action, "Version": version, "Format": "JSON",
                  "AccessKeyId": ak, "SignatureMethod": "HMAC-SHA1",
                  "SignatureVersion": "1.0", "SignatureNonce": nonce,
                  "Timestamp": timestamp}
        if token is not None:
            common["SecurityToken"] = token
        allp = dict(common)
        allp.update(params)
        sts = signing.v1_string_to_sign(method, allp)
        signature = signing.v1_signature(secret, sts)
        if bad_signature:
            signature = signing.v1_signature(secret + "x", sts)
        if form and method == "POST":
            query = dict(common)
            body = signing.canonical_query(params).encode("utf-8")
            headers["content-type"] = "application/x-www-form-urlencoded"
        else:
            query = allp
        url = "/?" + signing.canonical_query(query) + "&Signature=" + signing.pct(signature)
    else:
        query_params = {} if form else params
        if form:
            body = signing.canonical_query(params).encode("utf-8")
            headers["content-type"] = "application/x-www-form-urlencoded"
        payload_hash = signing.sha256_hex(body)
        headers.update({"x-acs-action": action, "x-acs-version": version,
                        "x-acs-date": timestamp, "x-acs-signature-nonce": nonce,
                        "x-acs-content-sha256": payload_hash})
        if token is not None:
            headers["x-acs-security-token"] = token
            headers["x-acs-accesskey-id"] = ak
        for k, v in (extra_headers or {}).items():
            headers[k.lower()] = v
        signed = sorted(n for n in headers if n in ("host", "content-type")
                        or n.startswith("x-acs-"))
        cr = signing.v3_canonical_request(method, "/", query_params,
                                          {n: [headers[n]] for n in signed}, signed,
                                          payload_hash)
        signature = signing.v3_signature(secret + ("x" if bad_signature else ""),
                                         signing.v3_string_to_sign(cr))
        headers["authorization"] = signing.v3_authorization(ak, ";".join(signed), signature)
        cqs = signing.canonical_query(query_params)
        url = "/" + ("?" + cqs if cqs else "")
        return url, headers, body
    for k, v in (extra_headers or {}).items():
        headers[k.lower()] = v
    return url, headers, body


def _str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def send(port, method, url, headers, body=b"", host="127.0.0.1", tls=False, timeout=10,
         conn=None):
    """Send one request; returns (status, headers lower-case dict, body bytes)."""
    own = conn is None
    if own:
        conn = _connection(host, port, tls, timeout)
    try:
        conn.request(method, url, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def call(port, action, params=None, ak="testid", secret="testsecret", sig="v3", token=None,
         client_token=None, method="POST", host="127.0.0.1", tls=False, timeout=10,
         conn=None, raw=False, **kw):
    """Sign and send one API call.  Returns (status, headers, json or None); with raw=True
    the third item is the body bytes.  Extra keywords go to build_request (version,
    timestamp, nonce, form, extra_headers, bad_signature, host_header)."""
    kw.setdefault("host_header", "%s:%d" % (host, port))
    url, headers, body = build_request(action, params, ak=ak, secret=secret, sig=sig,
                                       token=token, client_token=client_token,
                                       method=method, **kw)
    status, rh, data = send(port, method, url, headers, body, host=host, tls=tls,
                            timeout=timeout, conn=conn)
    if raw:
        return status, rh, data
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        doc = None
    return status, rh, doc


def imds(port, path, method="GET", token=None, ttl=None, host="127.0.0.1", timeout=5):
    """One metadata request; returns (status, body text)."""
    headers = {}
    if token is not None:
        headers["X-aliyun-ecs-metadata-token"] = token
    if ttl is not None:
        headers["X-aliyun-ecs-metadata-token-ttl-seconds"] = str(ttl)
    status, _, data = send(port, method, path, headers, host=host, timeout=timeout)
    return status, data.decode("utf-8", "replace")


def imds_credentials(port, v2=True, role=None):
    """The ECS RAM role flow of ebs-api.md 7.4: token, role name, credentials JSON."""
    token = None
    if v2:
        status, token = imds(port, "/latest/api/token", "PUT", ttl=21600)
        assert status == 200, (status, token)
    if role is None:
        status, role = imds(port, "/latest/meta-data/ram/security-credentials/", token=token)
        assert status == 200, (status, role)
        role = role.strip()
    status, text = imds(port, "/latest/meta-data/ram/security-credentials/" + role,
                        token=token)
    assert status == 200, (status, text)
    return json.loads(text)


def admin(port, method, path, body=None, host="127.0.0.1", tls=False, timeout=10):
    """Admin endpoint request; returns (status, json)."""
    data = b"" if body is None else json.dumps(body).encode("utf-8")
    headers = {"content-type": "application/json"} if data else {}
    status, _, out = send(port, method, path, headers, data, host=host, tls=tls,
                          timeout=timeout)
    try:
        return status, json.loads(out.decode("utf-8"))
    except ValueError:
        return status, out


class Emulator:
    """Start ebs_emulator.py on a free loopback port (--port 0 --port-file) and stop it by
    PID.  Use as a context manager or call start()/stop().  Its port file and stderr go to a
    new directory under workdir (kept), or to a temporary one (removed by stop())."""

    def __init__(self, *args, python=PYTHON, startup_timeout=20.0, tls=False, env=None,
                 workdir=None):
        self.args = [str(a) for a in args]
        self.python = python
        self.startup_timeout = startup_timeout
        self.tls = tls
        self.env = env
        self.proc = None
        self.port = None
        self.workdir = workdir
        self._dir = None
        self.stderr_path = None
        self._stderr_kept = None

    def start(self):
        self._dir = tempfile.mkdtemp(prefix="ebs-emu-", dir=self.workdir)
        port_file = os.path.join(self._dir, "port")
        self.stderr_path = os.path.join(self._dir, "stderr")
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [self.python, EMULATOR, "--port", "0", "--port-file", port_file] + self.args,
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=self.env)
        finally:
            err.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        out = self.stderr()
        self.stop()
        raise RuntimeError("emulator did not start: %s" % out)

    def stderr(self):
        if self._dir is None and self._stderr_kept is not None:
            return self._stderr_kept
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def stop(self, timeout=5.0):
        """SIGTERM by PID, then SIGKILL by PID.  Returns the exit code."""
        p = self.proc
        if p is None:
            self._remove_dir()
            return None
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout)
        self._remove_dir()
        return p.returncode

    def _remove_dir(self):
        if self._dir and self.workdir is None:
            self._stderr_kept = self.stderr()   # still readable after stop()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # conveniences
    def call(self, action, params=None, **kw):
        kw.setdefault("tls", self.tls)
        return call(self.port, action, params, **kw)

    def admin(self, method, path, body=None):
        return admin(self.port, method, path, body, tls=self.tls)

    def counters(self):
        return self.admin("GET", "/_admin/counters")[1]

    def reset(self):
        return self.admin("POST", "/_admin/reset")

    def fault(self, kind, action="*", count=1, arg=None):
        return self.admin("POST", "/_admin/faults",
                          {"kind": kind, "action": action, "count": count, "arg": arg})

    def clear_faults(self):
        return self.admin("DELETE", "/_admin/faults")

    def pair(self, pair_id):
        return self.admin("GET", "/_admin/pair?id=" + pair_id)[1]

    def set_pair(self, pair_id, **fields):
        body = {"id": pair_id}
        body.update(fields)
        return self.admin("POST", "/_admin/pair", body)

    def config(self, **settings):
        return self.admin("POST", "/_admin/config", settings)

    def requests(self):
        return self.admin("GET", "/_admin/requests")[1]

    def describe_all(self, region, site="production", max_results=500, **kw):
        """Every record of one view, following NextToken; returns (records, calls)."""
        out = []
        token = None
        for n in range(1, 100001):
            params = {"RegionId": region, "Site": site, "MaxResults": max_results}
            if token:
                params["NextToken"] = token
            status, _, body = self.call("DescribeDiskReplicaPairs", params, **kw)
            assert status == 200, body
            out.extend(body["ReplicaPairs"])
            token = body.get("NextToken")
            if not token:
                return out, n
        raise RuntimeError("pagination did not end")
