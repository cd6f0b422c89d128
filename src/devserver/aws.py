"""A moto server on loopback standing in for DynamoDB, SNS and SQS during local runs."""

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

# Services the devserver points at moto unless the caller chose an endpoint.
EMULATED_SERVICES = ("DYNAMODB", "SNS", "SQS")
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
DEFAULT_REGION = "us-east-1"


def start_moto(host: str = "127.0.0.1") -> tuple[ThreadedMotoServer, str]:
    """Start moto on a free port of ``host``; return the server and its URL."""
    # werkzeug logs every request to moto at INFO; that is noise here.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    bound_host, port = server.get_host_and_port()
    return server, f"http://{bound_host}:{port}"


def point_environment_at(
    moto_url: str, environ: MutableMapping[str, str] = os.environ
) -> list[str]:
    """Set endpoint variables to ``moto_url`` where the caller set none.

    A per-service variable (``AWS_ENDPOINT_URL_SNS``) or the global
    ``AWS_ENDPOINT_URL`` already set is left alone. Fake credentials and a region
    are filled in when missing. Returns the services now pointed at moto.
    """
    pointed = []
    for service in EMULATED_SERVICES:
        name = f"AWS_ENDPOINT_URL_{service}"
        if not environ.get(name) and not environ.get("AWS_ENDPOINT_URL"):
            environ[name] = moto_url
            pointed.append(service.lower())
    for name, value in FAKE_CREDENTIALS.items():
        environ.setdefault(name, value)
    environ.setdefault("AWS_DEFAULT_REGION", environ.get("AWS_REGION", DEFAULT_REGION))
    environ.setdefault("AWS_REGION", environ["AWS_DEFAULT_REGION"])
    return pointed


def _sns_backend() -> Any:
    from moto.sns import sns_backends

    return sns_backends[DEFAULT_ACCOUNT_ID][os.environ["AWS_REGION"]]


def outbox_messages() -> list[dict[str, str]]:
    """Return the SMS that moto's SNS accepted, in the order sent."""
    return [
        {"phone_number": number, "message": text, "message_id": message_id}
        for message_id, (number, text) in list(_sns_backend().sms_messages.items())
    ]


def clear_outbox() -> None:
    _sns_backend().sms_messages.clear()
