"""Storage: the reads a request makes, and the seed loader.

Every test here gets its own moto account, because the seed tests change the
stored keys.
"""

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import CASES_SEED, TABLE_NAME, response_json
from reinstall_api import APP_ID, body_for, post

from core import seed
from core.repository import Repository
from core.seed import load_seed

# Storage layout


def test_context_read_in_one_batch(cases_seeded: Repository) -> None:
    from core.aws import dynamodb_client

    client = dynamodb_client()
    batches: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **kwargs: batches.append(params),
    )
    repository = Repository(TABLE_NAME, client)

    context = repository.load_request_context("admin@demo.example", "demo", APP_ID)

    assert len(batches) == 1
    assert len(batches[0]["RequestItems"][TABLE_NAME]["Keys"]) == 3
    assert context.user is not None
    assert context.domain is not None
    assert context.app is not None


def test_registry_read_in_chunks(cases_seeded: Repository) -> None:
    client = cases_seeded.client
    batches: list[int] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **kwargs: batches.append(
            len(params["RequestItems"][TABLE_NAME]["Keys"])
        ),
    )
    numbers = [f"1202555{index:04d}" for index in range(247)]
    numbers[0] = "16175550100"
    numbers[150] = "16175550101"
    numbers[246] = "16175550102"

    registrations = cases_seeded.get_phone_registrations(numbers)

    assert sorted(batches) == [47, 100, 100]
    assert sorted(registrations) == ["16175550100", "16175550101", "16175550102"]
    assert registrations["16175550101"].domain == "other-proj"
    assert registrations["16175550102"].verified is False


# The seed loader


def scan_table(repository: Repository) -> list[dict[str, Any]]:
    response = repository.client.scan(TableName=TABLE_NAME, ConsistentRead=True)
    return sorted(
        response["Items"], key=lambda item: (item["pk"]["S"], item["sk"]["S"])
    )


def cases_seed() -> dict[str, Any]:
    return json.loads(CASES_SEED.read_text(encoding="utf-8"))


def test_seed_twice_same_items(cases_seeded: Repository) -> None:
    before = scan_table(cases_seeded)

    load_seed(cases_seed(), cases_seeded)

    assert scan_table(cases_seeded) == before


def test_seed_twice_same_hash(cases_seeded: Repository) -> None:
    user = cases_seeded.get_user("admin@demo.example")
    assert user is not None

    load_seed(cases_seed(), cases_seeded)
    reloaded = cases_seeded.get_user("admin@demo.example")

    assert reloaded is not None
    assert reloaded.api_keys == user.api_keys
    assert len(reloaded.api_keys) == 1
    assert "demo-admin-key" not in reloaded.api_keys[0].key_hash


def test_seed_twice_key_valid(cases_seeded: Repository) -> None:
    load_seed(cases_seed(), cases_seeded)

    response = post(body_for("16175551234"))

    assert response["statusCode"] == 200


ROTATED = "admin@demo.example:rotated-admin-key"


def test_seed_changed_key(cases_seeded: Repository) -> None:
    changed = cases_seed()
    changed["users"][0]["api_key"] = ROTATED.partition(":")[2]

    load_seed(changed, cases_seeded)
    user = cases_seeded.get_user("admin@demo.example")

    old_key = post(body_for("16175551234"))
    new_key = post(body_for("16175551234"), api_key=ROTATED)

    assert user is not None
    assert len(user.api_keys) == 1
    assert old_key["statusCode"] == 401
    assert new_key["statusCode"] == 200


def test_seed_main_creates_table(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    first = seed.main([str(CASES_SEED), "--create-table"])
    second = seed.main([str(CASES_SEED), "--create-table"])

    loaded = (
        f"Loaded 6 domains, 7 apps, 5 users, 4 phone_numbers into table {TABLE_NAME}.\n"
    )
    assert first == 0
    assert second == 0
    assert capsys.readouterr().out == loaded + loaded
    assert post(body_for("16175551234"))["statusCode"] == 200


def test_seed_main_fills_existing_table(repository: Repository) -> None:
    assert seed.main([str(CASES_SEED)]) == 0

    assert repository.get_domain("enterprise-proj") is not None
    phone = repository.get_phone("16175550103")
    assert phone is not None
    assert phone.verified is False
    assert phone.language == "fr"


def test_seed_phone_stored_as_e164(cases_seeded: Repository) -> None:
    load_seed(
        {
            "phone_numbers": [
                {"phone_number": "+1 (617) 555-0144", "domain": "other-proj"}
            ]
        },
        cases_seeded,
    )

    response = post(body_for("16175550144"))

    assert cases_seeded.get_phone("16175550144") is not None
    assert response_json(response) == {
        "success_numbers": [],
        "invalid_format_numbers": [],
        "error_numbers": ["16175550144"],
    }


def test_seed_invalid_phone_rejected(repository: Repository) -> None:
    seed_file = {"phone_numbers": [{"phone_number": "617-JKL", "domain": "demo"}]}

    with pytest.raises(ValueError) as raised:
        load_seed(seed_file, repository)

    assert str(raised.value) == (
        "phone_numbers[0]: '617-JKL' is not a valid phone number. Write it with its "
        "country code, such as 16175550100."
    )


def reject_oversized_keys(params: dict[str, Any], **kwargs: Any) -> None:
    """Raise DynamoDB's ValidationException for a key over its size limits.

    DynamoDB rejects a GetItem or BatchGetItem whose partition key is over 2048
    bytes or whose sort key is over 1024 bytes; moto checks this only on writes.
    """
    for table in params["RequestItems"].values():
        for key in table["Keys"]:
            if (
                len(key["pk"]["S"].encode()) > 2048
                or len(key["sk"]["S"].encode()) > 1024
            ):
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ValidationException",
                            "Message": "One or more parameter values were invalid: "
                            "Size of hashkey has exceeded the maximum size limit",
                        }
                    },
                    "BatchGetItem",
                )


@pytest.mark.parametrize(
    ("api_key", "domain", "app_id", "status"),
    [
        ("x" * 3000 + ":key", "demo", APP_ID, 401),
        ("admin@demo.example:demo-admin-key", "d" * 3000, APP_ID, 403),
        ("admin@demo.example:demo-admin-key", "demo", "a" * 1100, 400),
    ],
    ids=["username", "domain", "app_id"],
)
def test_oversized_key_not_storage_error(
    cases_seeded: Repository, api_key: str, domain: str, app_id: str, status: int
) -> None:
    from core.aws import dynamodb_client

    dynamodb_client().meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem", reject_oversized_keys
    )
    path = f"/a/{domain}/api/v0_5/sms_user_registration_reinstall/"

    response = post(body_for("16175551234", app_id=app_id), path=path, api_key=api_key)

    assert response["statusCode"] == status
