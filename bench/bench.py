#!/usr/bin/env python3
"""eb-deploy against the awscli three-command deploy and `eb deploy`, on the offline emulator.

Run it with `scripts/bench` (which prepares the venvs and the static release binary). Every
measurement is interleaved round by round (the tools' order rotates each round), and each run gets
its own version label so every tool does a real deploy. Prints Markdown on stdout; progress on stderr.

  (a)-(c) the multi-docker bundle, waiting off: eb-deploy, awscli (s3 cp + create-application-version
          + update-environment), eb deploy --nohang
  (d)     waiting on, deploys that take 1 s in the emulator: eb-deploy vs eb deploy, and the lag from
          "environment Ready" to "tool reports success"
  (e)     a 400 MiB bundle: eb-deploy vs awscli, with peak RSS
  (f)     eb-deploy over HTTPS (the emulator with TLS), to price the TLS handshake
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-2"
APP = "multi-docker"
ENV = "MultiDocker-env"
BUCKET = "elasticbeanstalk-us-east-2-123456789012"  # where `eb` puts bundles (CreateStorageLocation)
REQUIRED = {"PutObject", "CreateApplicationVersion", "UpdateEnvironment"}
REQUIRED_MULTIPART = {
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "CreateApplicationVersion",
    "UpdateEnvironment",
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Emulator:
    def __init__(self, python, workdir, tls=None):
        cmd = [python, os.path.join(ROOT, "tests/emulator/server.py"), "--port", "0", "--quiet",
               "--no-stdin-watch", "--deploy-delay", "0"]
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.out = open(os.path.join(workdir, f"emulator-{len(os.listdir(workdir))}.out"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.DEVNULL)
        for _ in range(200):
            self.out.seek(0)
            line = self.out.readline()
            if line.startswith("listening "):
                self.url = line.split()[1]
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the emulator did not start")
        self.control = "http://" + self.url.split("://")[1] if not tls else None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run(cmd, env, cwd=None, rss=False):
    """Runs cmd; returns (seconds, exit code, peak RSS KiB or None, stderr)."""
    if rss:
        cmd = ["/usr/bin/time", "-f", "%M"] + cmd
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    peak = None
    err = p.stderr
    if rss:
        lines = err.strip().splitlines()
        peak = int(lines[-1]) if lines and lines[-1].isdigit() else None
        err = "\n".join(lines[:-1])
    return elapsed, p.returncode, peak, err


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eb-deploy", required=True)
    ap.add_argument("--eb-deploy-ring", help="the same binary built with --features tls-ring")
    ap.add_argument("--emulator-python", required=True)
    ap.add_argument("--tools-bin", required=True, help="bin folder holding aws and eb")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--big-mib", type=int, default=400)
    ap.add_argument("--big-rounds", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="eb-bench-")
    aws = os.path.join(args.tools_bin, "aws")
    eb = os.path.join(args.tools_bin, "eb")
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": work,
        "AWS_ACCESS_KEY_ID": "AKIDBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    # The bundle: the multi-docker example, as a folder (eb-deploy, eb) and a zip (awscli).
    bundle_dir = os.path.join(work, "multi-docker")
    os.makedirs(os.path.join(bundle_dir, ".elasticbeanstalk"))
    shutil.copy(os.path.join(ROOT, "examples/multi-docker/Dockerrun.aws.json"), bundle_dir)
    with open(os.path.join(bundle_dir, ".elasticbeanstalk/config.yml"), "w") as f:
        f.write(
            "branch-defaults:\n  default:\n    environment: MultiDocker-env\n"
            "global:\n  application_name: multi-docker\n"
            "  default_platform: Multi-container Docker running on 64bit Amazon Linux\n"
            "  default_region: us-east-2\n  profile: null\n  sc: null\n"
        )
    small_zip = os.path.join(work, "bundle.zip")
    with zipfile.ZipFile(small_zip, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(bundle_dir, "Dockerrun.aws.json"), "Dockerrun.aws.json")

    emu = Emulator(args.emulator_python, work)
    env = dict(base_env, AWS_ENDPOINT_URL=emu.url)
    emu.call("POST", "/_emulator/setup", {"region": REGION, "bucket": BUCKET, "app": APP, "env": ENV})

    def wait_ready():
        for _ in range(600):
            state = emu.call("GET", f"/_emulator/state?region={REGION}")[REGION]["environments"][ENV]
            if state["status"] == "Ready":
                return
            time.sleep(0.01)
        raise SystemExit("environment never Ready")

    def eb_deploy(label, wait, extra=None, rss=False, zip_file=None):
        e = dict(env, EB_REGION=REGION, EB_APP=APP, EB_ENV=ENV, EB_BUCKET_NAME=BUCKET,
                 EB_BUCKET_PATH="docker-multi", EB_BRANCH="*", EB_LABEL=label,
                 EB_WAIT="true" if wait else "false", **(extra or {}))
        if zip_file:
            e["EB_ZIP_FILE"] = zip_file
        else:
            e["EB_BUNDLE_DIR"] = bundle_dir
        return run([args.eb_deploy], e, rss=rss)

    def awscli(label, zip_path, rss=False, e=None):
        e = e or env
        key = f"docker-multi/{label}.zip"
        total, peak = 0.0, 0
        for cmd in (
            [aws, "s3", "cp", "--quiet", zip_path, f"s3://{BUCKET}/{key}"],
            [aws, "elasticbeanstalk", "create-application-version", "--application-name", APP,
             "--version-label", label, "--source-bundle", f"S3Bucket={BUCKET},S3Key={key}"],
            [aws, "elasticbeanstalk", "update-environment", "--environment-name", ENV,
             "--version-label", label],
        ):
            t, code, p, err = run(cmd, e, rss=rss)
            if code != 0:
                raise SystemExit(f"awscli failed: {' '.join(cmd)}\n{err}")
            total += t
            peak = max(peak, p or 0)
        return total, 0, peak or None, ""

    def ebcli(label, wait):
        cmd = [eb, "deploy", "--label", label] + ([] if wait else ["--nohang"])
        return run(cmd, env, cwd=bundle_dir)

    def requests_since_clear():
        return emu.call("GET", "/_emulator/requests")

    # ---- (a)-(c): small bundle, no waiting ----------------------------------------------------
    tools = {
        "eb-deploy": lambda label: eb_deploy(label, wait=False),
        "awscli": lambda label: awscli(label, small_zip),
        "eb --nohang": lambda label: ebcli(label, wait=False),
    }
    times = {k: [] for k in tools}
    counts = {k: [] for k in tools}
    floors = []
    overheads = []
    served = []
    # One unmeasured warm-up each (page cache, Python bytecode).
    for name, fn in tools.items():
        wait_ready()
        fn(f"warm-{name.split()[0]}")
    log(f"(a)-(c): {args.rounds} interleaved rounds")
    for i in range(args.rounds):
        order = list(tools)[i % 3:] + list(tools)[:i % 3]
        for name in order:
            wait_ready()
            emu.call("DELETE", "/_emulator/requests")
            label = f"r{i}-{name.split()[0].replace('-', '')}"
            t, code, _, err = tools[name](label)
            if code != 0:
                raise SystemExit(f"{name} failed (exit {code}):\n{err}")
            log_entries = requests_since_clear()
            times[name].append(t)
            counts[name].append(len(log_entries))
            if name == "eb-deploy":
                floor = sum(r["duration"] for r in log_entries if r.get("operation") in REQUIRED)
                floors.append(floor)
                overheads.append(t - floor)
                served.append(sum(r["duration"] for r in log_entries))

    # ---- (d): waiting on, 1 s deploys ---------------------------------------------------------
    emu.call("POST", "/_emulator/config", {"deploy_delay": 1.0})
    wait_tools = {
        "eb-deploy": lambda label: eb_deploy(label, wait=True),
        "eb deploy": lambda label: ebcli(label, wait=True),
    }
    wtimes = {k: [] for k in wait_tools}
    lags = {k: [] for k in wait_tools}
    wcounts = {k: [] for k in wait_tools}
    log(f"(d): {args.rounds} interleaved rounds with 1 s deploys, waiting on")
    for i in range(args.rounds):
        order = list(wait_tools) if i % 2 == 0 else list(wait_tools)[::-1]
        for name in order:
            wait_ready()
            emu.call("DELETE", "/_emulator/requests")
            label = f"w{i}-{name.split()[0].replace('-', '')}"
            t0 = time.time()
            t, code, _, err = wait_tools[name](label)
            t_end = t0 + t
            if code != 0:
                raise SystemExit(f"{name} failed (exit {code}):\n{err}")
            events = emu.call("GET", f"/_emulator/state?region={REGION}")[REGION]["events"]
            ready = [e["date"] for e in events
                     if e["label"] == label and e["message"] == "Environment update completed successfully."]
            wtimes[name].append(t)
            lags[name].append(t_end - ready[-1])
            wcounts[name].append(len(requests_since_clear()))
    emu.call("POST", "/_emulator/config", {"deploy_delay": 0.0})

    # ---- (e): a big bundle --------------------------------------------------------------------
    big_results = None
    if args.big_mib > 0:
        big_zip = os.path.join(work, "big.zip")
        log(f"(e): writing a {args.big_mib} MiB bundle")
        with zipfile.ZipFile(big_zip, "w", zipfile.ZIP_STORED) as z:
            z.write(os.path.join(bundle_dir, "Dockerrun.aws.json"), "Dockerrun.aws.json")
            with z.open(".ebextensions/assets.bin", "w", force_zip64=True) as f:
                chunk = os.urandom(1 << 20)
                for _ in range(args.big_mib):
                    f.write(chunk)
        big = {"eb-deploy": ([], [], []), "awscli": ([], [], [])}
        log(f"(e): {args.big_rounds} interleaved rounds")
        for i in range(args.big_rounds):
            order = ["eb-deploy", "awscli"] if i % 2 == 0 else ["awscli", "eb-deploy"]
            for name in order:
                wait_ready()
                emu.call("DELETE", "/_emulator/requests")
                label = f"b{i}-{name.replace('-', '')}"
                if name == "eb-deploy":
                    t, code, peak, err = eb_deploy(label, wait=False, rss=True, zip_file=big_zip)
                else:
                    t, code, peak, err = awscli(label, big_zip, rss=True)
                if code != 0:
                    raise SystemExit(f"{name} failed on the big bundle (exit {code}):\n{err}")
                entries = requests_since_clear()
                big[name][0].append(t)
                big[name][1].append(peak)
                big[name][2].append(len(entries))
                emu.call("DELETE", f"/_emulator/s3/object?bucket={BUCKET}&key=docker-multi/{label}.zip")
        big_results = big
    emu.stop()

    # ---- (f): HTTPS ---------------------------------------------------------------------------
    https = None
    if shutil.which("openssl"):
        tls_dir = os.path.join(work, "tls")
        os.makedirs(tls_dir)
        sh = lambda *c: subprocess.run(c, cwd=tls_dir, check=True, capture_output=True)  # noqa: E731
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
           "-days", "2", "-subj", "/CN=bench-ca")
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=localhost")
        with open(os.path.join(tls_dir, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        sh("openssl", "x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
           "-out", "s.pem", "-days", "2", "-extfile", "ext.cnf")
        temu = Emulator(args.emulator_python, work, tls=(os.path.join(tls_dir, "s.pem"), os.path.join(tls_dir, "s.key")))
        temu.control = "https://" + temu.url.split("://")[1]
        import ssl
        ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.pem"))

        def tcall(method, path, body=None):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(temu.control + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, context=ctx) as r:
                return json.loads(r.read() or b"null")

        tcall("POST", "/_emulator/setup", {"region": REGION, "bucket": BUCKET, "app": APP, "env": ENV})
        https_env = dict(base_env, AWS_ENDPOINT_URL=temu.url, SSL_CERT_FILE=os.path.join(tls_dir, "ca.pem"),
                         AWS_CA_BUNDLE=os.path.join(tls_dir, "ca.pem"))
        ht = {"eb-deploy https": [], "awscli https": []}
        binaries = {"eb-deploy https": args.eb_deploy}
        if args.eb_deploy_ring:
            ht["eb-deploy https (ring)"] = []
            binaries["eb-deploy https (ring)"] = args.eb_deploy_ring
        log(f"(f): {args.rounds} interleaved rounds over HTTPS")
        for i in range(args.rounds):
            names = list(ht)
            for name in names[i % len(names):] + names[:i % len(names)]:
                for _ in range(600):
                    if tcall("GET", f"/_emulator/state?region={REGION}")[REGION]["environments"][ENV]["status"] == "Ready":
                        break
                    time.sleep(0.01)
                label = f"t{i}-{name.split()[0].replace('-', '')}{'-ring' if 'ring' in name else ''}"
                if name.startswith("eb-deploy"):
                    e = dict(https_env, EB_REGION=REGION, EB_APP=APP, EB_ENV=ENV, EB_BUCKET_NAME=BUCKET,
                             EB_BUCKET_PATH="docker-multi", EB_BRANCH="*", EB_LABEL=label, EB_WAIT="false",
                             EB_BUNDLE_DIR=bundle_dir)
                    t, code, _, err = run([binaries[name]], e)
                else:
                    t, code, _, err = awscli(label, small_zip, e=https_env)
                if code != 0:
                    raise SystemExit(f"{name} failed (exit {code}):\n{err}")
                ht[name].append(t)
        temu.stop()
        https = ht

    # ---- report -------------------------------------------------------------------------------
    def ms(x):
        return f"{x * 1000:.1f} ms"

    versions = {}
    for tool in ("aws", "eb"):
        out = subprocess.run([os.path.join(args.tools_bin, tool), "--version"], capture_output=True, text=True)
        versions[tool] = (out.stdout + out.stderr).strip().splitlines()[0]
    out = subprocess.run([args.eb_deploy, "--version"], capture_output=True, text=True)
    versions["eb-deploy"] = out.stdout.strip()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass

    m = {k: median(v) for k, v in times.items()}
    print(f"# Benchmarks\n")
    print(f"Run by `scripts/bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on "
          f"{os.cpu_count()} cores ({cpu or platform.processor()}), Linux {platform.release()}, against the "
          f"offline emulator on 127.0.0.1 (moto 5.2.5 + the Beanstalk layer). Versions: {versions['eb-deploy']} "
          f"(static release build), {versions['aws']}, {versions['eb']}. Medians of {args.rounds} interleaved "
          f"rounds; every run deploys a new version label.\n")
    print("## (a)-(c) The multi-docker bundle, waiting off\n")
    print("| tool | median | ratio to eb-deploy | HTTP requests |")
    print("|---|---|---|---|")
    for name in tools:
        print(f"| {name} | {ms(m[name])} | {m[name] / m['eb-deploy']:.1f}x | {median(counts[name]):.0f} |")
    print()
    print(f"awscli / eb-deploy = **{m['awscli'] / m['eb-deploy']:.1f}x**, "
          f"eb --nohang / eb-deploy = **{m['eb --nohang'] / m['eb-deploy']:.1f}x**. "
          f"The emulator's own time for the three required calls (PutObject, CreateApplicationVersion, "
          f"UpdateEnvironment) was {ms(median(floors))} (median); eb-deploy's time above it: "
          f"{ms(median(overheads))}; above the emulator's time for all {median(counts['eb-deploy']):.0f} of its "
          f"requests ({ms(median(served))}): {ms(median(overheads) + median(floors) - median(served))}.\n")
    print("## (d) Waiting on, deploys that take 1 s in the emulator\n")
    print("| tool | median end to end | median lag after Ready | HTTP requests |")
    print("|---|---|---|---|")
    for name in wait_tools:
        print(f"| {name} | {ms(median(wtimes[name]))} | {ms(median(lags[name]))} | {median(wcounts[name]):.0f} |")
    print()
    print(f"eb deploy / eb-deploy = **{median(wtimes['eb deploy']) / median(wtimes['eb-deploy']):.1f}x**. "
          f"Lag = the tool's exit minus the time the emulator recorded \"Environment update completed "
          f"successfully.\".\n")
    if big_results:
        print(f"## (e) A {args.big_mib} MiB bundle (prebuilt zip), waiting off\n")
        print("| tool | median | peak RSS (median) | HTTP requests |")
        print("|---|---|---|---|")
        for name, (ts, peaks, cs) in big_results.items():
            print(f"| {name} | {ms(median(ts))} | {median(peaks) / 1024:.1f} MiB | {median(cs):.0f} |")
        print()
        e_t = median(big_results["eb-deploy"][0])
        a_t = median(big_results["awscli"][0])
        print(f"awscli / eb-deploy = **{a_t / e_t:.2f}x** over {args.big_rounds} interleaved rounds; "
              f"awscli's RSS is the largest of its three processes.\n")
    if https:
        print("## (f) Over HTTPS (the emulator with a test CA)\n")
        print("| tool | median |")
        print("|---|---|")
        for name, ts in https.items():
            print(f"| {name} | {ms(median(ts))} |")
        print()
        print(f"eb-deploy over HTTPS (rustls with aws-lc-rs, the SDK's default) costs "
              f"{ms(median(https['eb-deploy https']) - m['eb-deploy'])} more than over HTTP; the awscli pays "
              f"{ms(median(https['awscli https']) - m['awscli'])} more for its three processes.\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
