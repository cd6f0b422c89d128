"""A Powertools Tracer that is created at the first traced call, not at import.

Creating ``aws_lambda_powertools.Tracer`` imports the X-Ray SDK and builds its
recorder. Outside Lambda (tests, the devserver, benchmarks) the recorder's
default sampler creates two botocore X-Ray clients, which took well over
100 ms with aws-xray-sdk 2.15. In Lambda with tracing active, the Tracer also
patches botocore and http.client. docs/benchmarks.md has both figures. Both
costs move from the import to the first invocation, and the devserver and
tests pay the X-Ray part once per process instead of once per import.
"""

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Tracer

F = TypeVar("F", bound=Callable[..., Any])


class LazyTracer:
    """Decorators and methods of ``Tracer``, with the Tracer created on first use.

    The keyword arguments are passed to ``Tracer`` unchanged. Any attribute
    other than the two decorators (``put_annotation``, ``provider``, ...)
    creates the Tracer and is read from it.
    """

    def __init__(self, **tracer_options: Any) -> None:
        self._tracer_options = tracer_options
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @property
    def tracer(self) -> Tracer:
        """The Powertools Tracer, created on the first read."""
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    self._tracer = Tracer(**self._tracer_options)
        return self._tracer

    def capture_lambda_handler(
        self, lambda_handler: F | None = None, **options: Any
    ) -> Any:
        """Trace ``lambda_handler`` like ``Tracer.capture_lambda_handler``."""
        if lambda_handler is None:
            return functools.partial(self.capture_lambda_handler, **options)
        return self._defer("capture_lambda_handler", lambda_handler, options)

    def capture_method(self, method: F | None = None, **options: Any) -> Any:
        """Trace ``method`` like ``Tracer.capture_method``.

        Only plain functions are supported, not coroutines, generators or
        context managers.
        """
        if method is None:
            return functools.partial(self.capture_method, **options)
        return self._defer("capture_method", method, options)

    def _defer(self, decorator: str, function: F, options: dict[str, Any]) -> F:
        traced: Callable[..., Any] | None = None

        @functools.wraps(function)
        def call_traced(*args: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                traced = getattr(self.tracer, decorator)(function, **options)
            return traced(*args, **kwargs)

        return call_traced  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        # Python calls this only for names the instance lacks. Private names
        # never reach the Tracer, so a half-built instance cannot recurse here.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.tracer, name)
