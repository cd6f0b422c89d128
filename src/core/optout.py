"""The SNS opt-out check, in two strategies chosen by OPT_OUT_CHECK.

``ListOptOutChecker`` (``list``, the default) reads the account's whole opt-out
list with ListPhoneNumbersOptedOut, 100 numbers a page, and keeps it in a cache
per container for OPT_OUT_CACHE_SECONDS. A request then costs no SNS call while
the cache is fresh, but an opt-out made since the last load is missed.
``PerNumberOptOutChecker`` (``per_number``) calls CheckIfPhoneNumberIsOptedOut
once per number, so it finds an opt-out as soon as SNS records it, but its
calls grow with the request and share the action's per-account rate limit.
docs/reliability.md compares the two.

botocore's ``standard`` retry mode retries 5xx and the ``Throttling`` error
code, but not SNS's ``Throttled`` (HTTP 429) from either operation. Both model
``ThrottledException``, and the standard mode retries a modeled error only when
the model marks it retryable, which botocore 1.44's SNS model does not. So this
module retries ``Throttled`` itself, with the same attempt budget.
"""

import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from core.phone import mask
from core.settings import OPT_OUT_CHECK_PER_NUMBER, Settings

logger = Logger(child=True)

# SNS's error code for a request over the account's rate for this action.
THROTTLED_CODE = "Throttled"
BASE_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0

T = TypeVar("T")


class OptOutChecker(Protocol):
    """Interface of both strategies, as the service calls it."""

    def check_all(self, phone_numbers: Sequence[str]) -> dict[str, bool | None]:
        """Map each E.164 number (with ``+``) to whether it is opted out.

        The value is None when SNS could not tell after retries, and the caller
        must then not send to that number. Nothing is raised for a failed check.
        """
        ...


def build_opt_out_checker(settings: Settings, sns_client: Any) -> OptOutChecker:
    """Return the checker that ``settings.opt_out_check`` selects.

    The ``list`` checker uses the cache shared by every checker of
    ``sns_client``, so the list is loaded once per container and refresh period.
    """
    if settings.opt_out_check == OPT_OUT_CHECK_PER_NUMBER:
        return PerNumberOptOutChecker(
            sns_client, settings.sms_send_concurrency, settings.sns_max_attempts
        )
    return ListOptOutChecker(
        sns_client,
        settings.sns_max_attempts,
        settings.opt_out_cache_seconds,
        cache=shared_list_cache(sns_client),
    )


class OptOutCallError(Exception):
    """An SNS opt-out call that failed, after retries where they apply."""

    def __init__(self, code: str, attempts: int) -> None:
        super().__init__(f"SNS call failed with {code} after {attempts} attempt(s)")
        self.code = code
        self.attempts = attempts


class ThrottledRetry:
    """Retry policy for ``Throttled``, which botocore does not retry here.

    Each call makes at most ``max_attempts`` attempts while SNS returns
    ``Throttled``, with full-jitter backoff between them. botocore's own retries
    of other throttling and 5xx errors happen inside each attempt.
    """

    def __init__(
        self,
        max_attempts: int,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.jitter = jitter

    def call(self, operation: Callable[[], T]) -> T:
        """Call ``operation`` and return its result, or raise OptOutCallError."""
        attempt = 1
        while True:
            try:
                return operation()
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "Unknown")
                if code == THROTTLED_CODE and attempt < self.max_attempts:
                    self.sleep(self.backoff(attempt))
                    attempt += 1
                    continue
                raise OptOutCallError(code, attempt) from error
            except BotoCoreError as error:
                raise OptOutCallError(type(error).__name__, attempt) from error

    def backoff(self, attempt: int) -> float:
        """Return a full-jitter delay in seconds before attempt ``attempt + 1``."""
        ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2.0 ** (attempt - 1))
        return self.jitter() * ceiling


class PerNumberOptOutChecker:
    """Checker that calls CheckIfPhoneNumberIsOptedOut once per number.

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
        self.retry = ThrottledRetry(max_attempts, sleep, jitter)

    def check_all(self, phone_numbers: Sequence[str]) -> dict[str, bool | None]:
        """Map each E.164 number (with ``+``) to whether it is opted out.

        The value is None when SNS could not tell after retries, and the caller
        must then not send to that number. Nothing is raised for a failed check.
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
        try:
            response = self.retry.call(
                partial(
                    self.sns_client.check_if_phone_number_is_opted_out,
                    phoneNumber=phone_number,
                )
            )
        except OptOutCallError as error:
            logger.warning(
                "SNS opt-out check failed; the number will not be sent to",
                extra={
                    "phone_number": mask(phone_number),
                    "error_code": error.code,
                    "attempts": error.attempts,
                },
            )
            return None
        return bool(response["isOptedOut"])


class OptOutListCache:
    """The account's opt-out list as last loaded, shared by threads.

    One thread loads at a time. Threads that ask while a load runs wait for it
    and get its result, or its exception. A failed load is not kept, so the
    next call after it loads again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers: frozenset[str] | None = None
        self._loaded_at = 0.0
        self._load_in_progress: Future[frozenset[str]] | None = None

    def get(
        self,
        load: Callable[[], frozenset[str]],
        max_age_seconds: float,
        clock: Callable[[], float],
    ) -> frozenset[str]:
        """Return the cached list, loading it first when missing or too old.

        The list is too old once ``clock()`` has advanced ``max_age_seconds``
        past the start of the load that produced it. Raises what ``load``
        raises.
        """
        with self._lock:
            if (
                self._numbers is not None
                and clock() - self._loaded_at < max_age_seconds
            ):
                return self._numbers
            if self._load_in_progress is not None:
                pending = self._load_in_progress
                loads_here = False
            else:
                pending = self._load_in_progress = Future()
                loads_here = True
        if not loads_here:
            return pending.result()

        started = clock()
        try:
            numbers = load()
        except BaseException as error:
            with self._lock:
                self._load_in_progress = None
            pending.set_exception(error)
            raise
        with self._lock:
            self._numbers = numbers
            self._loaded_at = started
            self._load_in_progress = None
        pending.set_result(numbers)
        return numbers

    def clear(self) -> None:
        """Forget the loaded list, so the next call loads it again."""
        with self._lock:
            self._numbers = None


# One cache per SNS client, because a client is bound to one account and Region.
# core.aws creates one client per container, so in Lambda this is one cache per
# container. Weak keys drop a cache once its client is garbage-collected, as
# happens to the clients that tests replace.
_list_caches: "weakref.WeakKeyDictionary[Any, OptOutListCache]" = (
    weakref.WeakKeyDictionary()
)
_list_caches_lock = threading.Lock()


def shared_list_cache(sns_client: Any) -> OptOutListCache:
    """Return the opt-out list cache of ``sns_client``, creating it on first use."""
    with _list_caches_lock:
        cache = _list_caches.get(sns_client)
        if cache is None:
            cache = _list_caches[sns_client] = OptOutListCache()
        return cache


def reset_list_caches() -> None:
    """Forget every cached opt-out list, so the next check loads it from SNS."""
    with _list_caches_lock:
        caches = list(_list_caches.values())
        _list_caches.clear()
    for cache in caches:
        cache.clear()


class ListOptOutChecker:
    """Checker that compares numbers with the account's cached opt-out list.

    The list is loaded with ListPhoneNumbersOptedOut, following ``nextToken``
    until SNS returns none, and reused for ``cache_seconds`` counted from the
    start of the load. Each page makes at most ``max_attempts`` calls while SNS
    returns ``Throttled``. ``cache`` defaults to a cache of this checker alone.
    ``clock`` returns seconds and only its differences are used.
    """

    def __init__(
        self,
        sns_client: Any,
        max_attempts: int,
        cache_seconds: float,
        cache: OptOutListCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.sns_client = sns_client
        self.cache_seconds = cache_seconds
        self.cache = cache if cache is not None else OptOutListCache()
        self.clock = clock
        self.retry = ThrottledRetry(max_attempts, sleep, jitter)

    def check_all(self, phone_numbers: Sequence[str]) -> dict[str, bool | None]:
        """Map each E.164 number (with ``+``) to whether it is on the list.

        When the list cannot be loaded, every value is None and the caller must
        not send to any of the numbers. Nothing is raised for a failed load,
        which is logged once per call.
        """
        unique = list(dict.fromkeys(phone_numbers))
        if not unique:
            return {}
        try:
            opted_out = self.cache.get(self.load, self.cache_seconds, self.clock)
        except OptOutCallError as error:
            logger.warning(
                "SNS opt-out list could not be loaded; none of the numbers will "
                "be sent to",
                extra={
                    "error_code": error.code,
                    "attempts": error.attempts,
                    "phone_number_count": len(unique),
                },
            )
            return dict.fromkeys(unique, None)
        return {number: number in opted_out for number in unique}

    def load(self) -> frozenset[str]:
        """Read every page of the opt-out list. Raise OptOutCallError on failure."""
        numbers: set[str] = set()
        next_token: str | None = None
        pages = 0
        while True:
            request = {"nextToken": next_token} if next_token else {}
            response = self.retry.call(
                partial(self.sns_client.list_phone_numbers_opted_out, **request)
            )
            pages += 1
            numbers.update(response.get("phoneNumbers", []))
            next_token = response.get("nextToken")
            if not next_token:
                break
        logger.info(
            "SNS opt-out list loaded",
            extra={"opted_out_count": len(numbers), "pages": pages},
        )
        return frozenset(numbers)
