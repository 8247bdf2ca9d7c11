"""Alibaba Cloud POP request signing: V1 (RPC, HMAC-SHA1) and V3 (ACS3-HMAC-SHA256).

Written from ../../../shared/docs/ebs-api.md section 6 (6.0 percent-encoding, 6.1 V1,
6.2 V3, 6.4 server-side notes).  Standard library only.  Used by the emulator to verify
requests and by client.py to sign them; the vectors of sections 6.1.1, 6.1.2, 6.2.1,
6.2.2 and 6.2.3 are checked byte for byte in tests/system/test_emulator.py.
"""

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

V3_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Section 6.0: the bytes A-Z a-z 0-9 - _ . ~ stay literal, every other byte becomes %XX
# with upper-case hex digits.
_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PCT_TABLE = tuple(chr(b) if b in _UNRESERVED else "%%%02X" % b for b in range(256))


def pct(value):
    """Percent-encode the UTF-8 bytes of value as section 6.0 says."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return "".join(_PCT_TABLE[b] for b in value)


def form_decode(text):
    """Parse an application/x-www-form-urlencoded string (query or body) into an ordered
    list of (name, value) pairs: '+' is a space, %XX a byte, blank values kept (6.4)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text:
        return []
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")


def _sort_key(pair):
    return pair[0].encode("utf-8")


def canonical_query(pairs):
    """pct(name)=pct(value) sorted by the raw names' bytes, joined with '&' (6.1 step 2,
    6.2 step 2).  pairs is an iterable of (name, value) or a dict."""
    if isinstance(pairs, dict):
        pairs = pairs.items()
    ordered = sorted(pairs, key=_sort_key)
    return "&".join(pct(k) + "=" + pct(v) for k, v in ordered)


# ---------------------------------------------------------------------------------------
# V1

def v1_string_to_sign(method, params):
    """METHOD & pct("/") & pct(CQS); params excludes Signature (the caller drops it)."""
    cqs = canonical_query((k, v) for k, v in _items(params) if k != "Signature")
    return method + "&" + pct("/") + "&" + pct(cqs)


def v1_signature(secret, string_to_sign):
    """Base64(HMAC-SHA1(secret + "&", StringToSign))."""
    mac = hmac.new((secret + "&").encode("utf-8"), string_to_sign.encode("utf-8"),
                   hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _items(params):
    return params.items() if isinstance(params, dict) else params


# ---------------------------------------------------------------------------------------
# V3

def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def v3_canonical_headers(headers, signed_names):
    """headers: mapping lower-case name -> list of received values.
    Returns (CanonicalHeaders, SignedHeaders).  Values are trimmed, several values of one
    name are sorted and joined with ','; names sorted (6.2 step 3)."""
    names = sorted(set(n.lower() for n in signed_names))
    out = []
    for name in names:
        values = sorted(v.strip() for v in headers.get(name, []))
        out.append(name + ":" + ",".join(values) + "\n")
    return "".join(out), ";".join(names)


def v3_canonical_request(method, uri, query_pairs, headers, signed_names, payload_hash):
    """CanonicalRequest of section 6.2 step 5."""
    canon_headers, signed = v3_canonical_headers(headers, signed_names)
    return "\n".join([method, uri or "/", canonical_query(query_pairs),
                      canon_headers, signed, payload_hash])


def v3_string_to_sign(canonical_request):
    return V3_ALGORITHM + "\n" + sha256_hex(canonical_request)


def v3_signature(secret, string_to_sign):
    """lower-hex HMAC-SHA256(secret, StringToSign) (no '&' appended)."""
    return hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def v3_authorization(access_key_id, signed_headers, signature):
    return "%s Credential=%s,SignedHeaders=%s,Signature=%s" % (
        V3_ALGORITHM, access_key_id, signed_headers, signature)


def parse_v3_authorization(value):
    """Parse 'ACS3-HMAC-SHA256 Credential=..,SignedHeaders=a;b,Signature=hex'.
    Returns dict with algorithm, Credential, SignedHeaders, Signature (missing keys absent)
    or None when the value is not of that shape."""
    value = (value or "").strip()
    algo, _, rest = value.partition(" ")
    if not rest:
        return None
    out = {"algorithm": algo}
    for part in rest.split(","):
        name, eq, val = part.strip().partition("=")
        if eq:
            out[name.strip()] = val.strip()
    return out


def constant_time_equal(a, b):
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
