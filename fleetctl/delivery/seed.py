"""Runs on devices (Python 3 standard library only), sent by fleetctl over SSH.

``serve ROOT ADDRESS``: read a token from the first line of standard input
(never from argv, which ``ps`` shows), serve the staged blobs in ROOT over HTTP
on ADDRESS (the seed's LAN address), at ``/<TOKEN>/<hex>``, with byte ranges;
prints ``port N`` and runs until its standard input closes (the controller's
SSH session ends), so it never outlives the delivery.

``fetch URL ROOT HEX:OFFSET...``: download each blob from a seed into ROOT as
``<hex>.part`` from OFFSET on (a broken transfer resumes), check its sha256,
rename it to ``<hex>``; prints ``fetched HEX BYTES`` per blob.
"""

import hashlib
import hmac
import http.server
import os
import re
import sys
import threading
import urllib.error
import urllib.request

CHUNK = 1 << 16
BLOB = re.compile(r"[0-9a-f]{64}")
RANGE = re.compile(r"bytes=([0-9]{1,19})-")


def serve(root, address):
    token = sys.stdin.readline().strip()
    if len(token) < 32:
        sys.exit("no token on standard input")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            prefix, _, name = self.path.lstrip("/").partition("/")
            path = os.path.join(root, name)
            if not hmac.compare_digest(prefix.encode(), token.encode()) \
                    or not BLOB.fullmatch(name) or not os.path.isfile(path):
                self.send_error(404)
                return
            size = os.path.getsize(path)
            ranged = RANGE.fullmatch(self.headers.get("Range", "").strip())
            start = int(ranged.group(1)) if ranged else 0
            if start >= size > 0 or (ranged and size == 0):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            with open(path, "rb") as blob:
                blob.seek(start)
                while chunk := blob.read(CHUNK):
                    self.wfile.write(chunk)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


def fetch(url, root, wanted):
    os.makedirs(root, exist_ok=True)
    for item in wanted:
        name, _, offset = item.partition(":")
        final, part = os.path.join(root, name), os.path.join(root, name + ".part")
        if os.path.isfile(final):
            print(f"fetched {name} 0", flush=True)
            continue
        have = os.path.getsize(part) if os.path.isfile(part) else 0
        have = min(have, int(offset or have))
        request = urllib.request.Request(f"{url}/{name}", headers={"Range": f"bytes={have}-"})
        got = 0
        try:
            with urllib.request.urlopen(request, timeout=60) as answer, \
                    open(part, "ab") as out:
                if answer.status == 200:    # the seed sent it all: start over
                    out.truncate(0)
                else:
                    out.truncate(have)
                while chunk := answer.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
        except urllib.error.HTTPError as error:
            if error.code != 416:       # 416: the staged part is already whole
                raise
        digest = hashlib.sha256()
        with open(part, "rb") as blob:
            while chunk := blob.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != name:
            os.remove(part)
            sys.exit(f"blob sha256:{name} from the seed is damaged; it is fetched again "
                     f"next time")
        os.replace(part, final)
        print(f"fetched {name} {got}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(*sys.argv[2:4])
    else:
        fetch(sys.argv[2], sys.argv[3], sys.argv[4:])
