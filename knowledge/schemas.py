"""The FastGPT knowledge-base request bodies as pydantic models (`aiflowy.validation`): a
typed request, or a `BadRequest` naming the field (`data[3].q`, `kbId`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from aiflowy.validation import Id, Text, between, integer_between

_FROZEN = ConfigDict(frozen=True, populate_by_name=True)

SearchModeName = Literal["embedding", "fullTextRecall", "mixedRecall"]


def _knowledge_base_id(data: Any) -> Any:
    """FastGPT's older pages call it `kbId`, newer ones `datasetId`: either is accepted."""
    if isinstance(data, dict) and "kbId" not in data and "datasetId" in data:
        data = {**data, "kbId": data["datasetId"]}
    return data


class PushItem(BaseModel):
    model_config = _FROZEN

    q: Text
    a: Text = ""
    indexes: list[Any] = Field(default_factory=list)


class PushDataRequest(BaseModel):
    """pushData: `{kbId | datasetId, collectionId?, mode, prompt?, billId?, data: [{q, a?}]}`."""

    model_config = _FROZEN

    knowledge_base_id: Id = Field(alias="kbId")
    collection_id: Annotated[int, integer_between(1, 2**63 - 1)] | None = Field(
        None, alias="collectionId"
    )
    mode: Literal["index", "qa"] = "index"
    prompt: Text = ""
    bill_id: uuid.UUID | None = Field(None, alias="billId")
    data: list[PushItem]

    _by_alias = model_validator(mode="before")(_knowledge_base_id)

    @field_validator("data", mode="before")
    @classmethod
    def _not_too_many(cls, data: Any) -> Any:
        limit = settings.AIFLOWY_KNOWLEDGE_MAX_PUSH_ITEMS
        if isinstance(data, list) and len(data) > limit:
            raise PydanticCustomError("too_many", f"has {len(data)} items; at most {limit}")
        return data


class SearchTestRequest(BaseModel):
    """searchTest: `{kbId | datasetId, text, limit?, similarity?, searchMode?}`."""

    model_config = _FROZEN

    knowledge_base_id: Id = Field(alias="kbId")
    text: Annotated[Text, Field(min_length=1, max_length=10_000)]
    limit: Annotated[int, integer_between(1, 100)] | None = None
    similarity: Annotated[float, between(0, 1)] | None = None
    search_mode: SearchModeName | None = Field(None, alias="searchMode")
    using_rerank: bool = Field(False, alias="usingReRank")

    _by_alias = model_validator(mode="before")(_knowledge_base_id)


class CreateBillRequest(BaseModel):
    model_config = _FROZEN

    name: Annotated[Text, Field(max_length=200)] = ""
