"""Request and response bodies. Feedback bodies are built from the store's per-kind models, so the API
and the SDK accept exactly the same fields and rules, and the OpenAPI spec documents each kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from refeed.store.checks import check_value
from refeed.store.errors import ValidationFailed
from refeed.store.schemas import KIND_MODELS

SOURCES = Literal["human", "ai_judge", "rule", "implicit", "simulated"]
COMMON = ("kind", "interaction_id", "idempotency_key", "author", "source")


def _valid_unicode(cls, data):
    """What no database stores, refused with the field's name before any other rule (and before a chat
    reaches the model): NUL, a lone UTF-16 surrogate (legal as a JSON escape, ``"\\ud800"``), inf / NaN,
    over-long text, JSON nested too deep. ``refeed.store.checks`` holds the rules."""
    try:
        check_value(data, "body")
    except ValidationFailed as e:
        raise ValueError(str(e).removeprefix("invalid record: ").replace("field 'body.", "field '")) from None
    return data


def _feedback_model(kind: str, base):
    return create_model(
        f"{kind.title()}Feedback",
        __base__=base,
        kind=(Literal[kind], ...),
        interaction_id=(
            str | None,
            Field(None, min_length=1, max_length=64, description="the judged interaction"),
        ),
        idempotency_key=(
            str | None,
            Field(
                None, min_length=1, max_length=200, description="retries with the same key return the same id"
            ),
        ),
        author=(str | None, Field(None, max_length=200)),
        source=(SOURCES, "human"),
        __validators__={"_valid_unicode": model_validator(mode="before")(_valid_unicode)},
    )


FEEDBACK_MODELS = {kind: _feedback_model(kind, base) for kind, base in KIND_MODELS.items()}
FeedbackIn = Annotated[Union[tuple(FEEDBACK_MODELS.values())], Field(discriminator="kind")]  # noqa: UP007


def kind_fields(body: BaseModel) -> dict[str, Any]:
    """The kind-specific fields of a feedback body, as the SDK takes them."""
    return {
        k: getattr(body, k) for k in type(body).model_fields if k not in COMMON and k in body.model_fields_set
    }


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[FeedbackIn] = Field(min_length=1, max_length=1000)


class Created(BaseModel):
    id: str


class CreatedMany(BaseModel):
    ids: list[str]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = Field(None, max_length=200_000)


class ChatRequest(BaseModel):
    """OpenAI's chat completion request (the fields refeed uses), plus refeed's extensions: ``thread_id``,
    ``parent_id`` (the previous turn's interaction) and ``retry_of`` (this call is a "try again" of an
    answer: logged as a retry feedback linking the two)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    # the rest of OpenAI's sampling surface (refeed/api/backends.py reads these)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    n: int | None = Field(None, ge=1, le=16)
    stop: str | list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(None, max_length=4)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Annotated[float, Field(ge=-100, le=100)]] | None = (
        Field(None, max_length=300, description="token id -> bias added to its logit"))
    stream_options: dict[str, Any] | None = None
    stream: bool = False
    user: str | None = Field(None, max_length=200)
    thread_id: str | None = Field(None, max_length=200)
    parent_id: str | None = Field(None, max_length=64)
    retry_of: str | None = Field(None, max_length=64)

    _valid_unicode = model_validator(mode="before")(_valid_unicode)


class InteractionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    completion: str = Field(max_length=200_000)
    model: str | None = Field(None, max_length=200)
    params: dict[str, Any] = {}
    thread_id: str | None = Field(None, max_length=200)
    parent_id: str | None = Field(None, max_length=64)
    metadata: dict[str, Any] = {}
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)

    _valid_unicode = model_validator(mode="before")(_valid_unicode)
