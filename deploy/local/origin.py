#!/usr/bin/env python3
"""The local fleet's origin: serves a directory over HTTP/1.1 with
`Cache-Control: public, max-age=300`, so the fleet may store what it fetches,
and logs one line per request (the origin's hit count) to stderr.

    origin.py ADDR PORT DIR
"""

import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def end_headers(self):
        self.send_header("Cache-Control", "public, max-age=300")
        super().end_headers()


def main():
    addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    handler = functools.partial(Handler, directory=root)
    server = http.server.ThreadingHTTPServer((addr, port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
