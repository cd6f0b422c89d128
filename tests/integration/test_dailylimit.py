"""The daily SMS limit's reservations against moto's DynamoDB."""

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import TABLE_NAME

from core.dailylimit import DailySmsLimit, Reservation, counter_key
from core.errors import StorageUnavailableError
from core.repository import Repository

NOW = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
DAY = "2026-03-01"


@pytest.fixture
def limit(repository: Repository) -> DailySmsLimit:
    return DailySmsLimit(TABLE_NAME, repository.client)


def test_reserve_whole_batch(limit: DailySmsLimit) -> None:
    reservation = limit.reserve("demo", limit=10, numbers=3, now=NOW)

    assert reservation == Reservation("demo", DAY, 3)
    assert reservation.messages == 6
    assert limit.used("demo", DAY) == 6


def test_reserve_what_fits(limit: DailySmsLimit) -> None:
    limit.reserve("demo", limit=10, numbers=3, now=NOW)

    second = limit.reserve("demo", limit=10, numbers=3, now=NOW)

    assert second.numbers == 2
    assert limit.used("demo", DAY) == 10
    assert limit.reserve("demo", limit=10, numbers=1, now=NOW).numbers == 0


def test_odd_limit_never_half_pair(limit: DailySmsLimit) -> None:
    assert limit.reserve("demo", limit=1, numbers=5, now=NOW).numbers == 0
    assert limit.reserve("demo", limit=5, numbers=5, now=NOW).numbers == 2
    assert limit.used("demo", DAY) == 4


def test_domains_and_days_separate(limit: DailySmsLimit) -> None:
    limit.reserve("demo", limit=4, numbers=2, now=NOW)

    other_domain = limit.reserve("other", limit=4, numbers=2, now=NOW)
    next_day = limit.reserve(
        "demo", limit=4, numbers=2, now=datetime(2026, 3, 2, tzinfo=UTC)
    )

    assert other_domain.numbers == 2
    assert next_day == Reservation("demo", "2026-03-02", 2)


def test_release_gives_back(limit: DailySmsLimit) -> None:
    reservation = limit.reserve("demo", limit=6, numbers=3, now=NOW)

    assert limit.release(reservation, 3) is True

    assert limit.used("demo", DAY) == 3
    assert limit.reserve("demo", limit=6, numbers=3, now=NOW).numbers == 1


def test_counter_item_exact(limit: DailySmsLimit, repository: Repository) -> None:
    limit.reserve("demo", limit=6, numbers=1, now=NOW)

    item = repository.client.get_item(
        TableName=TABLE_NAME, Key=counter_key("demo", DAY)
    )["Item"]

    # Expires seven days after the end of the day: 2026-03-09T00:00:00Z.
    assert item == {
        "pk": {"S": "SMSLIMIT#demo"},
        "sk": {"S": "DAY#2026-03-01"},
        "messages": {"N": "2"},
        "expires_at": {"N": str(int(datetime(2026, 3, 9, tzinfo=UTC).timestamp()))},
    }


class CompetitorFirst:
    """Lets another request reserve just before this one's first update lands."""

    def __init__(self, client: Any, competitor: DailySmsLimit) -> None:
        self.client = client
        self.competitor = competitor
        self.updates = 0

    def update_item(self, **request: Any) -> Any:
        self.updates += 1
        if self.updates == 1:
            self.competitor.reserve("demo", limit=10, numbers=4, now=NOW)
        return self.client.update_item(**request)

    def get_item(self, **request: Any) -> Any:
        return self.client.get_item(**request)


def test_conflict_retried_with_what_fits(repository: Repository) -> None:
    competitor = DailySmsLimit(TABLE_NAME, repository.client)
    racing = CompetitorFirst(repository.client, competitor)
    limit = DailySmsLimit(TABLE_NAME, racing)

    reservation = limit.reserve("demo", limit=10, numbers=4, now=NOW)

    # The competitor took 8 of 10 first; the retry takes the one pair left.
    assert reservation.numbers == 1
    assert racing.updates == 2
    assert competitor.used("demo", DAY) == 10


class Failing:
    def update_item(self, **request: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "InternalServerError", "Message": "injected"}},
            "UpdateItem",
        )


def test_reserve_failure_is_unavailable() -> None:
    limit = DailySmsLimit(TABLE_NAME, Failing())

    with pytest.raises(StorageUnavailableError):
        limit.reserve("demo", limit=10, numbers=1, now=NOW)


def test_release_failure_logged_not_raised() -> None:
    limit = DailySmsLimit(TABLE_NAME, Failing())

    assert limit.release(Reservation("demo", DAY, 2), 4) is False


def test_release_nothing_makes_no_call() -> None:
    limit = DailySmsLimit(TABLE_NAME, Failing())

    assert limit.release(Reservation("demo", DAY, 2), 0) is True
