"""Calls to the Lambda handler and the texts the tests expect, shared by modules.

SMS are compared per number because numbers are sent concurrently: only each
number's own two messages have a fixed order.
"""

import base64
from typing import Any

from conftest import FakeLambdaContext, api_event, response_json, sent_sms

ADMIN = "admin@demo.example:demo-admin-key"
VIEWER = "viewer@demo.example:demo-viewer-key"
APP_ID = "abcd1234abcd1234"
PATH = "/a/demo/api/v0_5/sms_user_registration_reinstall/"

LINK = "https://play.google.com/store/apps/details?id=org.commcare.dalvik&hl=en"
ENGLISH = f"To install CommCare, follow this link to the Google Play store: {LINK}"
DEMO_FRENCH = f"Pour installer CommCare, suivez ce lien : {LINK}"
ENTERPRISE_SWAHILI = f"Ili kusakinisha CommCare, fuata kiungo hiki: {LINK}"
USAGE = "Send the header 'Authorization: ApiKey <username>:<api_key>'."
PLAN_ERROR = {"error": "Your current plan does not have access to this feature"}
SWITCH_ERROR = {
    "error": "Please first enable SMS mobile worker registration for your project."
}


def install_sms(
    domain: str, app_id: str, base_url: str = "https://www.commcarehq.org"
) -> str:
    """Return the install message, built here independently of core.messages."""
    url = f"{base_url}/a/{domain}/sms/app_info/{app_id}/"
    return "[commcare app - do not delete] " + base64.b64encode(url.encode()).decode()


DEMO_INSTALL = install_sms("demo", APP_ID)


def path_for(domain: str, version: str = "v0_5", slash: str = "/") -> str:
    return f"/a/{domain}/api/{version}/sms_user_registration_reinstall{slash}"


def body_for(*numbers: str, app_id: str = APP_ID, **fields: Any) -> dict[str, Any]:
    users = [{"phone_number": number} for number in numbers]
    return {"app_id": app_id, "users": users, **fields}


def post(
    body: Any = None, *, path: str = PATH, api_key: str | None = ADMIN, **options: Any
) -> dict[str, Any]:
    """Send one API Gateway event to the handler and return the proxy response."""
    from handler.api import lambda_handler

    event = api_event(path, body, api_key=api_key, **options)
    return lambda_handler(event, FakeLambdaContext())


def buckets(
    success: list[str] | None = None,
    invalid: list[str] | None = None,
    error: list[str] | None = None,
) -> dict[str, list[str]]:
    return {
        "success_numbers": success or [],
        "invalid_format_numbers": invalid or [],
        "error_numbers": error or [],
    }


def sms_by_number() -> dict[str, list[str]]:
    """Return the texts moto's SNS accepted, per E.164 number, in the order sent."""
    grouped: dict[str, list[str]] = {}
    for number, text in sent_sms():
        grouped.setdefault(number, []).append(text)
    return grouped


def validation_errors(response: dict[str, Any]) -> dict[str, str]:
    """Return the field errors of a 400 response, checking its shape."""
    assert response["statusCode"] == 400
    body = response_json(response)
    assert list(body) == ["sms_user_registration_reinstall"]
    return body["sms_user_registration_reinstall"]
