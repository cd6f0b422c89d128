"""The body of a queue message: a chunk of one queued request's numbers.

Each chunk carries the texts and SNS attributes to send its numbers with, so
the queue consumer needs no other record to send. The models validate a body
read back from the queue. core.queueing builds and sends the chunks.
"""

from pydantic import BaseModel, ConfigDict, Field

from core.dispatch import PairJob

CHUNK_FORMAT_VERSION = 1


class ChunkNumber(BaseModel):
    """One number of a chunk: E.164 with ``+``, as submitted, and its first text."""

    model_config = ConfigDict(frozen=True)

    phone_number: str = Field(pattern=r"^\+[1-9][0-9]{1,14}$")
    submitted: str
    # Place among the request's queued numbers, from 0, for the status order.
    position: int = Field(ge=0)
    # Index into Chunk.first_texts; numbers of one language share a text.
    first_text: int = Field(ge=0)


class Chunk(BaseModel):
    """The body of one queue message: some numbers of one request."""

    model_config = ConfigDict(frozen=True)

    version: int = CHUNK_FORMAT_VERSION
    request_id: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    app_id: str = Field(min_length=1)
    index: int = Field(ge=0)
    chunk_count: int = Field(ge=1)
    attributes: dict[str, dict[str, str]]
    first_texts: list[str] = Field(min_length=1)
    second_text: str = Field(min_length=1)
    numbers: list[ChunkNumber] = Field(min_length=1)

    def jobs(self) -> list[PairJob]:
        """Return the numbers as PairJobs for the dispatcher, in order.

        Raises IndexError when a number refers to a first text that is missing.
        """
        return [
            PairJob(
                number.phone_number,
                self.first_texts[number.first_text],
                self.second_text,
            )
            for number in self.numbers
        ]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, body: str) -> "Chunk":
        """Parse a queue message body; raises pydantic.ValidationError when invalid."""
        return cls.model_validate_json(body)
