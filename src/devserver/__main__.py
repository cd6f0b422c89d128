"""Run the API locally: ``python -m devserver [--host H] [--port P] [--seed FILE]``."""

import argparse
import ipaddress
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from devserver import aws, consumer
from devserver.server import make_server

DEMO_SEED = Path(__file__).with_name("demo_seed.json")
DEFAULT_TABLE_NAME = "reinstall-sms-local"
DEFAULT_IDEMPOTENCY_TABLE_NAME = "reinstall-sms-idempotency-local"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def demo_request(seed: dict[str, Any], base_url: str) -> tuple[str, str] | None:
    """Return a seeded ``username:key`` and a curl command that uses it, if any."""
    apps = [app for app in seed.get("apps", []) if not app.get("deleted")]
    for user in seed.get("users", []):
        if not user.get("api_key") or not user.get("active", True):
            continue
        for domain, permissions in (user.get("domains") or {}).items():
            app = next((a for a in apps if a["domain"] == domain), None)
            if "edit_data" not in permissions or app is None:
                continue
            credentials = f"{user['username']}:{user['api_key']}"
            body = json.dumps(
                {"app_id": app["app_id"], "users": [{"phone_number": "16175551234"}]}
            )
            url = f"{base_url}/a/{domain}/api/v0_5/sms_user_registration_reinstall/"
            command = " ".join(
                [
                    "curl -s -X POST",
                    shlex.quote(url),
                    "-H",
                    shlex.quote(f"Authorization: ApiKey {credentials}"),
                    "-H 'Content-Type: application/json'",
                    "-d",
                    shlex.quote(body),
                ]
            )
            return credentials, command
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description="Serve the reinstall API locally with AWS emulated by moto.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument(
        "--port", type=int, default=3000, help="TCP port (default 3000)"
    )
    parser.add_argument(
        "--seed", type=Path, default=DEMO_SEED, help="seed file to load at start"
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"--host {args.host} is not a loopback address; use 127.0.0.1")

    seed = json.loads(args.seed.read_text(encoding="utf-8"))
    # Bound first, so that a busy port fails at once, before moto starts.
    try:
        server = make_server(args.host, args.port)
    except OSError as error:
        parser.error(
            f"cannot listen on {args.host}:{args.port} ({error.strerror}); "
            "choose another port with --port, or PORT=... with make run"
        )
    moto_server, moto_url = aws.start_moto()
    aws.point_environment_at(moto_url)
    os.environ.setdefault("TABLE_NAME", DEFAULT_TABLE_NAME)
    os.environ.setdefault("IDEMPOTENCY_TABLE_NAME", DEFAULT_IDEMPOTENCY_TABLE_NAME)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    # Core's loggers take the service name when first imported; without it they
    # log under "service_undefined" and apart from the handler's logger.
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "reinstall-sms")
    queues = consumer.prepare_local_queues()

    # Imported only now, so that clients are created with the endpoints above.
    from core.aws import dynamodb_client
    from core.idempotency import create_idempotency_table
    from core.repository import Repository
    from core.seed import load_seed
    from core.settings import get_settings

    repository = Repository(get_settings().table_name, dynamodb_client())
    repository.create_table()
    load_seed(seed, repository)
    create_idempotency_table(dynamodb_client(), get_settings().idempotency_table_name)

    queue_consumer = consumer.start_local_consumer(queues)
    base_url = f"http://{args.host}:{server.server_address[1]}"
    print(f"Reinstall API listening on {base_url} (AWS emulated by moto at {moto_url})")
    dynamodb_url = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get(
        "AWS_ENDPOINT_URL", moto_url
    )
    print(
        f"Table {repository.table_name} at {dynamodb_url}. Manage it with: "
        f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing reinstall-admin "
        f"--endpoint-url {dynamodb_url} --region {os.environ['AWS_REGION']} "
        f"--table {repository.table_name} domain show NAME"
    )
    demo = demo_request(seed, base_url)
    if demo:
        print(f"Demo API key: {demo[0]}")
        print("Try it:")
        print(f"  {demo[1]}")
    print(f"Sent SMS: curl -s {base_url}/_dev/outbox", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        queue_consumer.stop()
        moto_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
