#!/usr/bin/env python3
"""Prints what a running emulator holds: the objects of a bucket, and Beanstalk's versions and
environments in a region. Usage: show.py URL REGION BUCKET"""

import json
import sys
import urllib.request

url, region, bucket = sys.argv[1:4]
objects = json.load(urllib.request.urlopen(f"{url}/_emulator/s3?bucket={bucket}"))
for o in objects.get("objects", []):
    print(f"s3://{bucket}/{o['key']}  {o['size']} bytes  sha256 {o['sha256'][:16]}...")
state = json.load(urllib.request.urlopen(f"{url}/_emulator/state?region={region}")).get(region, {})
for v in state.get("versions", []):
    print(f"version {v['label']} -> s3://{v['bucket']}/{v['key']}")
for name, e in state.get("environments", {}).items():
    print(f"environment {name}: {e['status']}, health {e['health']}, running {e['label']}")
