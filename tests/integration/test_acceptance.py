"""The acceptance cases, one test each, through the Lambda handler under moto.

Each case starts from the multi-domain seed in tests/data/seed.json.
"""

from conftest import response_json, sent_sms
from reinstall_api import (
    DEMO_FRENCH,
    DEMO_INSTALL,
    ENGLISH,
    LINK,
    PLAN_ERROR,
    SWITCH_ERROR,
    USAGE,
    VIEWER,
    body_for,
    buckets,
    path_for,
    post,
    sms_by_number,
    validation_errors,
)

from core.repository import Repository


def test_case_one_number_both_messages(cases_seeded: Repository) -> None:
    response = post(body_for("16175551234"))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=["16175551234"])
    assert sent_sms() == [("+16175551234", ENGLISH), ("+16175551234", DEMO_INSTALL)]


def test_case_letters_invalid_format(cases_seeded: Repository) -> None:
    response = post(body_for("1617JKL1234"))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(invalid=["1617JKL1234"])
    assert sent_sms() == []


def test_case_custom_message_link(cases_seeded: Repository) -> None:
    response = post(
        body_for("16175551234", reinstall_message="Click here to install CommCare: {}")
    )

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=["16175551234"])
    assert sms_by_number() == {
        "+16175551234": [f"Click here to install CommCare: {LINK}", DEMO_INSTALL]
    }


def test_case_standard_plan_401(cases_seeded: Repository) -> None:
    response = post(
        body_for("16175551234", app_id="std-app-0001"), path=path_for("standard-proj")
    )

    assert response["statusCode"] == 401
    assert response_json(response) == PLAN_ERROR
    assert sent_sms() == []


def test_case_registration_off_403(cases_seeded: Repository) -> None:
    response = post(
        body_for("16175551234", app_id="dis-app-0001"), path=path_for("disabled-proj")
    )

    assert response["statusCode"] == 403
    assert response_json(response) == SWITCH_ERROR
    assert sent_sms() == []


def test_case_missing_app_id(cases_seeded: Repository) -> None:
    response = post({"users": [{"phone_number": "16175551234"}]})

    assert validation_errors(response) == {"app_id": "This field is required"}
    assert sent_sms() == []


def test_case_unknown_app_id(cases_seeded: Repository) -> None:
    response = post(body_for("16175551234", app_id="no-such-app"))

    assert validation_errors(response) == {"app_id": "Invalid app_id specified"}
    assert sent_sms() == []


def test_case_same_number_respelled(cases_seeded: Repository) -> None:
    response = post(body_for("+1 (617) 555-1234", "16175551234"))

    assert validation_errors(response) == {
        "users": "phone_number cannot be reused within a request: 16175551234 "
        "(users[0] and users[1])"
    }
    assert sent_sms() == []


def test_case_verified_other_domain(cases_seeded: Repository) -> None:
    response = post(body_for("16175550101"))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(error=["16175550101"])
    assert sent_sms() == []


def test_case_contact_language(cases_seeded: Repository) -> None:
    response = post(body_for("16175550100"))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(success=["16175550100"])
    assert sent_sms() == [
        ("+16175550100", DEMO_FRENCH),
        ("+16175550100", DEMO_INSTALL),
    ]


def test_case_no_credentials(cases_seeded: Repository) -> None:
    response = post(body_for("16175551234"), api_key=None)

    assert response["statusCode"] == 401
    assert response_json(response) == {
        "error": f"Missing Authorization header. {USAGE}"
    }
    assert sent_sms() == []


def test_case_no_edit_data(cases_seeded: Repository) -> None:
    response = post(body_for("16175551234"), api_key=VIEWER)

    assert response["statusCode"] == 403
    assert response_json(response) == {
        "error": "You do not have permission to send reinstall SMS in project "
        "'demo'. The edit_data permission is required."
    }
    assert sent_sms() == []


def test_case_mixed_buckets(cases_seeded: Repository) -> None:
    numbers = ["16175551234", "bad", "16175550101", "+44 20 7946 0958"]

    response = post(body_for(*numbers))

    assert response["statusCode"] == 200
    assert response_json(response) == buckets(
        success=["16175551234", "+44 20 7946 0958"],
        invalid=["bad"],
        error=["16175550101"],
    )
    assert sms_by_number() == {
        "+16175551234": [ENGLISH, DEMO_INSTALL],
        "+442079460958": [ENGLISH, DEMO_INSTALL],
    }
