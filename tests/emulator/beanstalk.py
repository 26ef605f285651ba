"""The Elastic Beanstalk layer of the emulator: the AWS Query protocol calls a deploy makes.

State is per region and lives in this process. Environments move Updating -> Ready on a timer, recording
events the way Beanstalk does, and a test can script the next deploy's outcome (see Beanstalk.script).
"""

import random
import string
import threading
import time
import uuid
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from s3state import object_exists

NS = "http://elasticbeanstalk.amazonaws.com/docs/2010-12-01/"
ACCOUNT = "123456789012"
SEVERITIES = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
OUTCOMES = {"success", "fail", "rollback", "slow", "yellow"}
SOLUTION_STACK = "64bit Amazon Linux 2 v3.5.9 running Multi-container Docker"
PLATFORM = "Multi-container Docker running on 64bit Amazon Linux/2.26.0"


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text):
    text = text.replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def members(form, name):
    out = []
    i = 1
    while f"{name}.member.{i}" in form:
        out.append(form[f"{name}.member.{i}"])
        i += 1
    return out


def tag(name, value):
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def rand(n):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Region:
    def __init__(self, name):
        self.name = name
        self.applications = {}
        self.versions = {}  # (app, label) -> dict
        self.environments = {}  # name -> dict
        self.events = []  # oldest first
        self.scripts = {}  # env name -> [(outcome, delay)]


class Beanstalk:
    def __init__(self, deploy_delay):
        self.deploy_delay = deploy_delay
        self.regions = {}
        self.lock = threading.RLock()
        self.seq = 0

    def region(self, name):
        if name not in self.regions:
            self.regions[name] = Region(name)
        return self.regions[name]

    # ---- wire protocol -------------------------------------------------------------------------

    def handle(self, region_name, form):
        request_id = str(uuid.uuid4())
        action = form.get("Action", "")
        handler = getattr(self, f"op_{action}", None)
        try:
            if handler is None:
                raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")
            with self.lock:
                result = handler(self.region(region_name or "us-east-1"), form, request_id)
        except ApiError as err:
            body = (
                f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type>'
                f"{tag('Code', err.code)}{tag('Message', err.message)}</Error>"
                f"{tag('RequestId', request_id)}</ErrorResponse>"
            )
            return err.status, body, request_id
        body = (
            f'<{action}Response xmlns="{NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata>{tag('RequestId', request_id)}</ResponseMetadata></{action}Response>"
        )
        return 200, body, request_id

    # ---- applications --------------------------------------------------------------------------

    def op_CreateApplication(self, region, form, request_id):
        name = form.get("ApplicationName", "")
        if name in region.applications:
            raise ApiError("InvalidParameterValue", f"Application {name} already exists.")
        region.applications[name] = {"name": name, "created": time.time(), "description": form.get("Description")}
        return f"<Application>{self.application_xml(region, name)}</Application>"

    def op_DescribeApplications(self, region, form, request_id):
        names = members(form, "ApplicationNames") or sorted(region.applications)
        items = "".join(
            f"<member>{self.application_xml(region, n)}</member>" for n in names if n in region.applications
        )
        return f"<Applications>{items}</Applications>"

    def application_xml(self, region, name):
        app = region.applications[name]
        labels = "".join(tag("member", label) for (a, label) in region.versions if a == name)
        return (
            tag("ApplicationName", name)
            + tag("ApplicationArn", f"arn:aws:elasticbeanstalk:{region.name}:{ACCOUNT}:application/{name}")
            + tag("Description", app["description"])
            + tag("DateCreated", iso(app["created"]))
            + tag("DateUpdated", iso(app["created"]))
            + f"<Versions>{labels}</Versions>"
        )

    def require_app(self, region, name):
        if name not in region.applications:
            raise ApiError("InvalidParameterValue", f"No Application named '{name}' found.")

    # ---- application versions ------------------------------------------------------------------

    def op_CreateApplicationVersion(self, region, form, request_id):
        app = form.get("ApplicationName", "")
        label = form.get("VersionLabel", "")
        description = form.get("Description")
        if not 1 <= len(label) <= 100:
            raise ApiError(
                "ValidationError",
                f"1 validation error detected: Value '{label}' at 'versionLabel' failed to satisfy "
                "constraint: Member must have length less than or equal to 100",
            )
        if description is not None and len(description) > 200:
            raise ApiError(
                "ValidationError",
                "1 validation error detected: Value at 'description' failed to satisfy constraint: "
                "Member must have length less than or equal to 200",
            )
        if app not in region.applications:
            if form.get("AutoCreateApplication") == "true":
                region.applications[app] = {"name": app, "created": time.time(), "description": None}
            else:
                raise ApiError("InvalidParameterValue", f"No Application named '{app}' found.")
        if (app, label) in region.versions:
            raise ApiError("InvalidParameterValue", f"Application Version {label} already exists.")
        bucket = form.get("SourceBundle.S3Bucket")
        key = form.get("SourceBundle.S3Key")
        if bucket and key:
            ok, reason = object_exists(bucket, key, region.name)
            if not ok:
                raise ApiError(
                    "InvalidParameterCombination",
                    f"Unable to download from S3 location (Bucket: {bucket}  Key: {key}). Reason: {reason}",
                )
        version = {
            "app": app,
            "label": label,
            "description": description,
            "bucket": bucket,
            "key": key,
            "created": time.time(),
        }
        region.versions[(app, label)] = version
        self.event(region, app, None, label, request_id, "INFO", f"Created new Application Version ({label})")
        return f"<ApplicationVersion>{self.version_xml(region, version)}</ApplicationVersion>"

    def op_DescribeApplicationVersions(self, region, form, request_id):
        app = form.get("ApplicationName")
        labels = members(form, "VersionLabels")
        found = [
            v
            for v in sorted(region.versions.values(), key=lambda v: -v["created"])
            if (not app or v["app"] == app) and (not labels or v["label"] in labels)
        ]
        page, token = paged(found, form)
        items = "".join(f"<member>{self.version_xml(region, v)}</member>" for v in page)
        return f"<ApplicationVersions>{items}</ApplicationVersions>{tag('NextToken', token)}"

    def op_DeleteApplicationVersion(self, region, form, request_id):
        app = form.get("ApplicationName", "")
        label = form.get("VersionLabel", "")
        self.require_app(region, app)
        if (app, label) not in region.versions:
            raise ApiError("InvalidParameterValue", f"Application Version {label} does not exist.")
        for env in region.environments.values():
            if env["app"] == app and env["label"] == label and env["status"] != "Terminated":
                raise ApiError(
                    "SourceBundleDeletion",
                    f"Unable to delete application version '{label}' because it is being used by "
                    f"environment '{env['name']}'.",
                )
        del region.versions[(app, label)]
        return ""

    def version_xml(self, region, v):
        bundle = ""
        if v["bucket"]:
            bundle = f"<SourceBundle>{tag('S3Bucket', v['bucket'])}{tag('S3Key', v['key'])}</SourceBundle>"
        arn = f"arn:aws:elasticbeanstalk:{region.name}:{ACCOUNT}:applicationversion/{v['app']}/{v['label']}"
        return (
            tag("ApplicationName", v["app"])
            + tag("ApplicationVersionArn", arn)
            + tag("VersionLabel", v["label"])
            + tag("Description", v["description"])
            + bundle
            + tag("DateCreated", iso(v["created"]))
            + tag("DateUpdated", iso(v["created"]))
            + tag("Status", "UNPROCESSED")
        )

    def op_DescribePlatformVersion(self, region, form, request_id):
        arn = form.get("PlatformArn") or f"arn:aws:elasticbeanstalk:{region.name}::platform/{PLATFORM}"
        return (
            "<PlatformDescription>"
            + tag("PlatformArn", arn)
            + tag("PlatformName", PLATFORM.split("/")[0])
            + tag("PlatformVersion", PLATFORM.split("/")[-1])
            + tag("PlatformStatus", "Ready")
            + tag("PlatformCategory", "Docker")
            + tag("SolutionStackName", SOLUTION_STACK)
            + tag("PlatformBranchName", "Multi-container Docker running on 64bit Amazon Linux")
            + tag("PlatformLifecycleState", "Recommended")
            + "</PlatformDescription>"
        )

    def op_ListPlatformBranches(self, region, form, request_id):
        branch = PLATFORM.split("/")[0]
        wanted = [
            form[k.replace(".Attribute", ".Values.member.1")]
            for k in form
            if k.endswith(".Attribute") and form[k] == "BranchName"
        ]
        if wanted and branch not in wanted:
            return "<PlatformBranchSummaryList/>"
        return (
            "<PlatformBranchSummaryList><member>"
            + tag("PlatformName", "Multi-container Docker")
            + tag("BranchName", branch)
            + tag("LifecycleState", "Supported")
            + tag("BranchOrder", 1)
            + "<SupportedTierList><member>WebServer/Standard</member></SupportedTierList>"
            + "</member></PlatformBranchSummaryList>"
        )

    def op_CreateStorageLocation(self, region, form, request_id):
        return tag("S3Bucket", f"elasticbeanstalk-{region.name}-{ACCOUNT}")

    # ---- environments --------------------------------------------------------------------------

    def op_CreateEnvironment(self, region, form, request_id):
        app = form.get("ApplicationName", "")
        name = form.get("EnvironmentName", "")
        label = form.get("VersionLabel")
        self.require_app(region, app)
        existing = region.environments.get(name)
        if existing and existing["status"] != "Terminated":
            raise ApiError("InvalidParameterValue", f"Environment {name} already exists.")
        if label and (app, label) not in region.versions:
            raise ApiError("InvalidParameterValue", f"No Application Version named '{label}' found.")
        env = self.new_environment(region, app, name, label)
        self.event(region, app, name, label, request_id, "INFO", "createEnvironment is starting.")
        self.event(region, app, name, label, request_id, "INFO", "Successfully launched environment: " + name)
        return self.environment_xml(region, env)

    def new_environment(self, region, app, name, label):
        now = time.time()
        env = {
            "id": "e-" + rand(10),
            "app": app,
            "name": name,
            "label": label,
            "status": "Ready",
            "health": "Green",
            "health_status": "Ok",
            "cname": f"{name}.{rand(10)}.{region.name}.elasticbeanstalk.com".lower(),
            "endpoint": f"awseb-e-{rand(10)}-stack-awsebloa-{rand(12)}.{region.name}.elb.amazonaws.com",
            "created": now,
            "updated": now,
        }
        region.environments[name] = env
        return env

    def op_DescribeEnvironments(self, region, form, request_id):
        app = form.get("ApplicationName")
        names = members(form, "EnvironmentNames")
        ids = members(form, "EnvironmentIds")
        label = form.get("VersionLabel")
        include_deleted = form.get("IncludeDeleted", "true") == "true"
        found = [
            e
            for e in region.environments.values()
            if (not app or e["app"] == app)
            and (not names or e["name"] in names)
            and (not ids or e["id"] in ids)
            and (not label or e["label"] == label)
            and (include_deleted or e["status"] != "Terminated")
        ]
        items = "".join(f"<member>{self.environment_xml(region, e)}</member>" for e in found)
        return f"<Environments>{items}</Environments>"

    def op_DescribeEnvironmentHealth(self, region, form, request_id):
        env = self.find_environment(region, form)
        return (
            tag("EnvironmentName", env["name"])
            + tag("HealthStatus", env["health_status"])
            + tag("Status", env["status"])
            + tag("Color", env["health"])
            + "<Causes/>"
            + tag("RefreshedAt", iso(time.time()))
        )

    def op_TerminateEnvironment(self, region, form, request_id):
        env = self.find_environment(region, form)
        env["status"] = "Terminated"
        env["health"] = "Grey"
        self.event(region, env["app"], env["name"], None, request_id, "INFO", "terminateEnvironment completed successfully.")
        return self.environment_xml(region, env)

    def find_environment(self, region, form):
        name = form.get("EnvironmentName")
        env_id = form.get("EnvironmentId")
        for env in region.environments.values():
            if (name and env["name"] == name) or (env_id and env["id"] == env_id):
                return env
        raise ApiError("InvalidParameterValue", f"No Environment found for EnvironmentName = '{name}'.")

    def environment_xml(self, region, e):
        arn = f"arn:aws:elasticbeanstalk:{region.name}:{ACCOUNT}:environment/{e['app']}/{e['name']}"
        return (
            tag("EnvironmentName", e["name"])
            + tag("EnvironmentId", e["id"])
            + tag("ApplicationName", e["app"])
            + tag("VersionLabel", e["label"])
            + tag("SolutionStackName", SOLUTION_STACK)
            + tag("PlatformArn", f"arn:aws:elasticbeanstalk:{region.name}::platform/{PLATFORM}")
            + tag("EndpointURL", e["endpoint"])
            + tag("CNAME", e["cname"])
            + tag("DateCreated", iso(e["created"]))
            + tag("DateUpdated", iso(e["updated"]))
            + tag("Status", e["status"])
            + tag("AbortableOperationInProgress", e["status"] == "Updating")
            + tag("Health", e["health"])
            + tag("HealthStatus", e["health_status"])
            + "<Tier><Name>WebServer</Name><Type>Standard</Type><Version>1.0</Version></Tier>"
            + tag("EnvironmentArn", arn)
        )

    # ---- deploys -------------------------------------------------------------------------------

    def op_UpdateEnvironment(self, region, form, request_id):
        env = self.find_environment(region, form)
        label = form.get("VersionLabel")
        if env["status"] == "Terminated":
            raise ApiError("InvalidParameterValue", f"No Environment found for EnvironmentName = '{env['name']}'.")
        if env["status"] != "Ready":
            raise ApiError(
                "InvalidParameterValue",
                f"Environment named {env['name']} is in an invalid state for this operation. Must be Ready.",
            )
        if label and (env["app"], label) not in region.versions:
            raise ApiError("InvalidParameterValue", f"No Application Version named '{label}' found.")
        outcome, delay = "success", self.deploy_delay
        queue = region.scripts.get(env["name"])
        if queue:
            outcome, scripted_delay = queue.pop(0)
            if scripted_delay is not None:
                delay = scripted_delay
        previous = env["label"]
        env["status"] = "Updating"
        env["health"] = "Grey"
        env["health_status"] = "Info"
        env["updated"] = time.time()
        self.event(region, env["app"], env["name"], label, request_id, "INFO", "Environment update is starting.")
        described = self.environment_xml(region, env)
        if label:
            self.later(delay * 0.4, self.deploying, region, env, label, request_id)
        self.later(delay, self.finish, region, env, label, previous, outcome, request_id)
        return described

    def later(self, delay, fn, *args):
        def run():
            with self.lock:
                fn(*args)

        timer = threading.Timer(max(delay, 0), run)
        timer.daemon = True
        timer.start()

    def deploying(self, region, env, label, request_id):
        self.event(region, env["app"], env["name"], label, request_id, "INFO", "Deploying new version to instance(s).")

    def finish(self, region, env, label, previous, outcome, request_id):
        def ev(severity, message):
            self.event(region, env["app"], env["name"], label, request_id, severity, message)

        env["status"] = "Ready"
        env["updated"] = time.time()
        if outcome == "fail":
            if label:
                env["label"] = label
            env["health"], env["health_status"] = "Red", "Severe"
            ev("ERROR", "Unsuccessful command execution on instance id(s) 'i-0e1f2a3b4c5d6e7f8'. Aborting the operation.")
            ev("ERROR", "Failed to deploy application.")
            return
        if outcome == "rollback":
            env["health"], env["health_status"] = "Green", "Ok"
            ev("WARN", f"Deployment failed health checks; rolled back to application version '{previous}'.")
            ev("INFO", "Environment update completed successfully.")
            return
        if label:
            env["label"] = label
            ev("INFO", "New application version was deployed to running EC2 instances.")
        if outcome == "yellow":
            env["health"], env["health_status"] = "Yellow", "Warning"
        else:
            env["health"], env["health_status"] = "Green", "Ok"
        ev("INFO", "Environment update completed successfully.")

    # ---- events --------------------------------------------------------------------------------

    def event(self, region, app, env, label, request_id, severity, message):
        self.seq += 1
        region.events.append(
            {
                "seq": self.seq,
                "date": time.time(),
                "app": app,
                "env": env,
                "label": label,
                "request_id": request_id,
                "severity": severity,
                "message": message,
            }
        )

    def op_DescribeEvents(self, region, form, request_id):
        min_severity = SEVERITIES.index(form["Severity"]) if form.get("Severity") in SEVERITIES else 0
        start = parse_iso(form["StartTime"]) if form.get("StartTime") else None
        end = parse_iso(form["EndTime"]) if form.get("EndTime") else None
        env_id = form.get("EnvironmentId")
        env_name = form.get("EnvironmentName")
        if env_id:
            env_name = next((e["name"] for e in region.environments.values() if e["id"] == env_id), "-")
        checks = {
            "app": form.get("ApplicationName"),
            "env": env_name,
            "label": form.get("VersionLabel"),
            "request_id": form.get("RequestId"),
        }
        found = [
            e
            for e in reversed(region.events)
            if all(not want or e[field] == want for field, want in checks.items())
            and SEVERITIES.index(e["severity"]) >= min_severity
            and (start is None or e["date"] >= start)
            and (end is None or e["date"] < end)
        ]
        page, token = paged(found, form)
        items = "".join(
            "<member>"
            + tag("EventDate", iso(e["date"]))
            + tag("Message", e["message"])
            + tag("ApplicationName", e["app"])
            + tag("VersionLabel", e["label"])
            + tag("EnvironmentName", e["env"])
            + tag("RequestId", e["request_id"])
            + tag("Severity", e["severity"])
            + "</member>"
            for e in page
        )
        return f"<Events>{items}</Events>{tag('NextToken', token)}"

    # ---- control -------------------------------------------------------------------------------

    def setup(self, region_name, app, env, label):
        with self.lock:
            region = self.region(region_name)
            if app and app not in region.applications:
                region.applications[app] = {"name": app, "created": time.time(), "description": None}
            if app and env and env not in region.environments:
                self.new_environment(region, app, env, label)

    def script(self, region_name, env, outcome, delay):
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome}; one of {sorted(OUTCOMES)}")
        if outcome == "slow" and delay is None:
            delay = self.deploy_delay * 10
        with self.lock:
            self.region(region_name).scripts.setdefault(env, []).append((outcome, delay))

    def hold_busy(self, region_name, env_name, seconds):
        with self.lock:
            region = self.region(region_name)
            env = region.environments[env_name]
            env["status"] = "Updating"
            request_id = str(uuid.uuid4())
            self.event(region, env["app"], env_name, None, request_id, "INFO", "Environment update is starting.")

            def release():
                env["status"] = "Ready"
                self.event(region, env["app"], env_name, None, request_id, "INFO", "Environment update completed successfully.")

            self.later(seconds, release)

    def snapshot(self, region_name):
        with self.lock:
            regions = [self.regions[region_name]] if region_name in self.regions else []
            if region_name is None:
                regions = list(self.regions.values())
            return {
                r.name: {
                    "applications": sorted(r.applications),
                    "versions": [
                        {k: v[k] for k in ("app", "label", "bucket", "key", "description")}
                        for v in r.versions.values()
                    ],
                    "environments": {
                        n: {k: e[k] for k in ("app", "label", "status", "health", "health_status", "cname")}
                        for n, e in r.environments.items()
                    },
                    "events": [{k: e[k] for k in e if k != "seq"} for e in r.events],
                }
                for r in regions
            }


def paged(items, form):
    try:
        size = max(1, min(int(form.get("MaxRecords") or 1000), 1000))
        start = int(form.get("NextToken") or 0)
    except ValueError:
        raise ApiError("InvalidParameterValue", "Invalid NextToken or MaxRecords.")
    page = items[start : start + size]
    token = str(start + size) if start + size < len(items) else None
    return page, token
