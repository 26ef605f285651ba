#!/usr/bin/env python3
"""Offline AWS stand-in for eb-deploy's tests and demo.

moto (pinned in requirements.txt) serves S3 and STS. moto has none of the Elastic Beanstalk deploy calls,
so this process answers every request signed for `elasticbeanstalk` itself (beanstalk.py), in the same
process, where it can read moto's S3 state. Everything else goes to moto untouched.

Control endpoints, under /_emulator/ (never AWS traffic, never in the request log):
  GET    /_emulator/health                 liveness
  GET    /_emulator/requests               the AWS request log, oldest first
  DELETE /_emulator/requests               clear it
  POST   /_emulator/setup                  {"region","bucket","app","env","version_label"?} create them
  POST   /_emulator/script                 {"region","env","outcome","delay"?} the env's next deploy outcome
  POST   /_emulator/config                 {"deploy_delay": seconds}
  POST   /_emulator/busy                   {"region","env","seconds"} hold the env in Updating
  GET    /_emulator/state?region=R         Beanstalk state, as JSON
  GET    /_emulator/identities             STS sessions handed out: access key -> assumed-role ARN
  GET    /_emulator/s3?bucket=B            the objects of a bucket: key, size, sha256, metadata
  GET    /_emulator/s3/object?bucket=B&key=K   one object's bytes (DELETE removes it)

Run: python server.py [--host 127.0.0.1] [--port 0] [--deploy-delay 0.5] [--tls-cert C --tls-key K]
It prints one line `listening http://HOST:PORT` on stdout once it accepts connections, and exits when
its stdin closes (so a test that dies never leaves it behind) unless --no-stdin-watch is given.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

import beanstalk  # noqa: E402
from s3state import find_bucket  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.sts.models import sts_backends  # noqa: E402


def signed_scope(environ):
    """(access key, region, service) from a SigV4 Authorization header, or Nones."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    marker = "Credential="
    if marker not in auth:
        return None, None, None
    cred = auth.split(marker, 1)[1].split(",", 1)[0].strip()
    parts = cred.split("/")
    if len(parts) < 5:
        return None, None, None
    return parts[0], parts[2], parts[3]


def s3_operation(method, path, query):
    parts = [p for p in path.split("/") if p]
    keyed = len(parts) > 1
    if "uploads" in query:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if "uploadId" in query:
        return {
            "PUT": "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, method)
    if "location" in query:
        return "GetBucketLocation"
    if not keyed:
        return {
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "GET": "ListObjects",
            "DELETE": "DeleteBucket",
        }.get(method, method)
    return {
        "HEAD": "HeadObject",
        "PUT": "PutObject",
        "GET": "GetObject",
        "DELETE": "DeleteObject",
    }.get(method, method)


class Emulator:
    def __init__(self, deploy_delay):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.beanstalk = beanstalk.Beanstalk(deploy_delay)
        self.log = []
        self.log_lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self.control(Request(environ))(environ, start_response)

        started = time.time()
        key_id, region, service = signed_scope(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        method = environ.get("REQUEST_METHOD", "")
        entry = {
            "time": started,
            "method": method,
            "path": path,
            "service": service,
            "region": region,
            "access_key_id": key_id,
        }
        if service == "elasticbeanstalk":
            request = Request(environ)
            form = request.form.to_dict(flat=True)
            entry["operation"] = form.get("Action")
            status, body, request_id = self.beanstalk.handle(region, form)
            entry["request_id"] = request_id
            response = Response(body, status=status, content_type="text/xml")
            response.headers["x-amzn-RequestId"] = request_id
            result = response(environ, start_response)
        else:
            if service == "s3":
                entry["operation"] = s3_operation(method, path, query)
            else:
                # STS and other Query-protocol calls; AssumeRoleWithWebIdentity comes unsigned.
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                form = parse_qs(body.decode("utf-8", "replace"))
                entry["operation"] = (form.get("Action") or query.get("Action") or [None])[0]
                environ["wsgi.input"] = io.BytesIO(body)

            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"] = int(status.split(" ", 1)[0])
                return start_response(status, headers, exc_info)

            result = self.moto(environ, capture)
            entry["status"] = captured.get("status")
        if "status" not in entry:
            entry["status"] = status
        entry["duration"] = time.time() - started
        with self.log_lock:
            self.log.append(entry)
        return result

    def control(self, request):
        path = request.path[len("/_emulator/"):]
        body = request.get_json(silent=True) or {}
        if path == "health":
            return json_response({"ok": True})
        if path == "requests":
            if request.method == "DELETE":
                with self.log_lock:
                    self.log.clear()
                return json_response({"ok": True})
            with self.log_lock:
                return json_response(list(self.log))
        if path == "setup":
            return self.setup(body)
        if path == "script":
            self.beanstalk.script(body["region"], body["env"], body["outcome"], body.get("delay"))
            return json_response({"ok": True})
        if path == "config":
            if "deploy_delay" in body:
                self.beanstalk.deploy_delay = float(body["deploy_delay"])
            return json_response({"deploy_delay": self.beanstalk.deploy_delay})
        if path == "busy":
            self.beanstalk.hold_busy(body["region"], body["env"], float(body["seconds"]))
            return json_response({"ok": True})
        if path == "identities":
            return json_response(assumed_identities())
        if path == "state":
            return json_response(self.beanstalk.snapshot(request.args.get("region")))
        if path == "s3":
            return json_response(s3_objects(request.args["bucket"]))
        if path == "s3/object":
            bucket = find_bucket(request.args["bucket"])
            key = request.args["key"]
            if bucket is None or key not in bucket.keys:
                return json_response({"error": "NoSuchKey"}, 404)
            if request.method == "DELETE":
                bucket.keys.pop(key)
                return json_response({"ok": True})
            return Response(bucket.keys[key].value, content_type="application/octet-stream")
        return json_response({"error": f"unknown control path {path}"}, 404)

    def setup(self, body):
        region = body["region"]
        if body.get("bucket") and find_bucket(body["bucket"]) is None:
            s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(body["bucket"], region)
        self.beanstalk.setup(region, body.get("app"), body.get("env"), body.get("version_label"))
        return json_response({"ok": True})


def s3_objects(bucket_name):
    bucket = find_bucket(bucket_name)
    if bucket is None:
        return {"error": "NoSuchBucket"}
    objects = []
    for name in sorted(bucket.keys.keys()):
        key = bucket.keys[name]
        value = key.value
        objects.append(
            {
                "key": name,
                "size": len(value),
                "sha256": hashlib.sha256(value).hexdigest(),
                "metadata": dict(key.metadata),
            }
        )
    uploads = [
        {"key": mp.key_name, "upload_id": mp.id} for mp in bucket.multiparts.values()
    ]
    return {"region": bucket.region_name, "objects": objects, "multipart_uploads": uploads}


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def assumed_identities():
    """Every session moto's STS has handed out: access key id -> assumed-role ARN and its secrets."""
    out = []
    for _account, by_partition in sts_backends.items():
        for _partition, backend in by_partition.items():
            for role in backend.assumed_roles:
                out.append(
                    {
                        "access_key_id": role.access_key_id,
                        "arn": role.arn,
                        "secret_access_key": role.secret_access_key,
                        "session_token": role.session_token,
                    }
                )
    return out


def json_response(value, status=200):
    return Response(json.dumps(value, default=str), status=status, content_type="application/json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deploy-delay", type=float, default=0.5)
    parser.add_argument("--no-stdin-watch", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this private key (PEM)")
    args = parser.parse_args()

    app = Emulator(args.deploy_delay)
    handler = QuietHandler if args.quiet else MotoRequestHandler
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=handler, ssl_context=tls
    )
    host, port = server.server_address[:2]
    scheme = "https" if tls else "http"
    print(f"listening {scheme}://{host}:{port}", flush=True)

    if not args.no_stdin_watch:

        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
