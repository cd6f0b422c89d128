"""The SNS opt-out check, one CheckIfPhoneNumberIsOptedOut call per number.

Per-number checks see an opt-out as soon as SNS records it, and their cost grows
with the request (bounded by MAX_USERS_PER_REQUEST) rather than with the
account's whole opt-out list, which ListPhoneNumbersOptedOut returns 100 numbers
a page. docs/reliability.md compares the two.

botocore's ``standard`` retry mode retries 5xx and the ``Throttling`` error
code, but not SNS's ``Throttled`` (HTTP 429) from this operation. The operation
models ``ThrottledException``, and the standard mode retries a modeled error
only when the model marks it retryable, which botocore 1.44's SNS model does
not. So this module retries ``Throttled`` itself, with the same attempt budget.
"""

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.phone import mask

logger = Logger(child=True)

# SNS's error code for a request over the account's rate for this action.
THROTTLED_CODE = "Throttled"
BASE_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0


class OptOutChecker:
    """Checker of which numbers are on the account's SNS opt-out list.

    Up to ``concurrency`` numbers are checked at once. Each check makes at most
    ``max_attempts`` calls while SNS returns ``Throttled``, on top of botocore's
    own retries of other throttling and 5xx errors.
    """

    def __init__(
        self,
        sns_client: Any,
        concurrency: int,
        max_attempts: int,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.sns_client = sns_client
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.jitter = jitter

    def check_all(self, phone_numbers: Sequence[str]) -> dict[str, bool | None]:
        """Map each E.164 number (with ``+``) to whether it is opted out.

        The value is None when SNS could not tell after retries; the caller must
        then not send to that number. Nothing is raised for a failed check.
        """
        unique = list(dict.fromkeys(phone_numbers))
        if len(unique) <= 1 or self.concurrency == 1:
            statuses = [self.check(number) for number in unique]
        else:
            workers = min(self.concurrency, len(unique))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                statuses = list(pool.map(self.check, unique))
        return dict(zip(unique, statuses, strict=True))

    def check(self, phone_number: str) -> bool | None:
        """Return whether ``phone_number`` is opted out, or None if SNS kept failing."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.sns_client.check_if_phone_number_is_opted_out(
                    phoneNumber=phone_number
                )
                return bool(response["isOptedOut"])
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "Unknown")
                if code == THROTTLED_CODE and attempt < self.max_attempts:
                    self.sleep(self._backoff(attempt))
                    continue
                logger.warning(
                    "SNS opt-out check failed; the number will not be sent to",
                    extra={
                        "phone_number": mask(phone_number),
                        "error_code": code,
                        "attempts": attempt,
                    },
                )
                return None
            except BotoCoreError as error:
                logger.warning(
                    "SNS opt-out check failed; the number will not be sent to",
                    extra={
                        "phone_number": mask(phone_number),
                        "error_code": type(error).__name__,
                        "attempts": attempt,
                    },
                )
                return None
        return None

    def _backoff(self, attempt: int) -> float:
        """Return a full-jitter delay in seconds before attempt ``attempt + 1``."""
        ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1))
        return self.jitter() * ceiling
