"""The workflow request bodies as pydantic models, validated through
`aiflowy.validation.validated`: a typed request, or a `BadRequest` naming the field.

AIFlowy callers send getRunningParams as a form field (`id=…`, its documented form), as a
query parameter (`GET ?id=…`, what its 1.x server served) or as JSON; all three are accepted.
"""

from __future__ import annotations

import codecs
import io
import uuid
from typing import Any
from urllib.parse import parse_qs

from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.http import parse_header_parameters
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from aiflowy.errors import BadRequest
from aiflowy.validation import Flag, Id, JsonObject, json_object, validated

_FROZEN = ConfigDict(frozen=True)


class RunRequest(BaseModel):
    """`run`: `{id, variables, stream, async}`."""

    model_config = _FROZEN

    workflow_id: Id = Field(alias="id")
    variables: JsonObject = Field(default_factory=dict)
    stream: Flag = False
    run_async: Flag = Field(False, alias="async")

    @field_validator("run_async")
    @classmethod
    def _not_both(cls, run_async: bool, info: ValidationInfo) -> bool:
        if run_async and info.data.get("stream"):
            raise PydanticCustomError("run_mode", "cannot be true when 'stream' is true")
        return run_async


class WorkflowIdRequest(BaseModel):
    """getRunningParams: the workflow's `id`."""

    model_config = _FROZEN

    workflow_id: Id = Field(alias="id")


class RunIdRequest(BaseModel):
    """runStatus: the run's `runId`."""

    model_config = _FROZEN

    run_id: uuid.UUID = Field(alias="runId")


class ResumeRequest(BaseModel):
    """resume: the suspended run's `runId` and the `values` a person gave."""

    model_config = _FROZEN

    run_id: uuid.UUID = Field(alias="runId")
    values: JsonObject = Field(default_factory=dict)


# --- the body's fields, whatever its form ---------------------------------------------------------
class _SkipFiles(FileUploadHandler):
    """Fields only: every file part is skipped unread."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        raise SkipFile

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        return None

    def file_complete(self, file_size: int) -> None:
        return None


def _multipart_fields(body: bytes, content_type: str) -> dict[str, str]:
    """A multipart form's fields (the first value of each), parsed by Django's own parser
    with its limits (`DATA_UPLOAD_MAX_NUMBER_FIELDS`…); the charset is the Content-Type's."""
    _, params = parse_header_parameters(content_type)
    charset = params.get("charset") or "utf-8"
    codecs.lookup(charset)  # LookupError: an unknown charset
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    parser = MultiPartParser(meta, io.BytesIO(body), [_SkipFiles()], encoding=charset)
    post, _files = parser.parse()
    return {name: values[0] for name, values in post.lists() if values}


def request_fields(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The fields of a JSON object, urlencoded form or multipart form body."""
    if not body.strip():
        return {}
    kind, _, params = (content_type or "").partition(";")
    kind = kind.strip().lower()
    if kind == "multipart/form-data":
        try:
            return _multipart_fields(body, f"{kind};{params}")
        except (MultiPartParserError, SuspiciousOperation, LookupError, ValueError):
            # ValueError covers UnicodeError and binascii.Error; LookupError, a charset that
            # is unknown or not a text encoding.
            raise BadRequest("The multipart form body cannot be read.") from None
    if kind == "application/x-www-form-urlencoded" or (
        kind != "application/json" and not body.lstrip().startswith(b"{")
    ):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The form body is not UTF-8.") from None
        return {key: values[0] for key, values in parse_qs(text).items()}
    return json_object(body)


def _field_or_query(fields: dict[str, Any], name: str, query_value: str | None) -> dict:
    """`{name: value}` from the body's fields, else from the query string; blank is absent."""
    value = fields.get(name)
    if value is None or value == "":
        value = query_value
    return {} if value is None or value == "" else {name: value}


def parse_workflow_id(fields: dict[str, Any], query_id: str | None) -> int:
    return validated(WorkflowIdRequest, _field_or_query(fields, "id", query_id)).workflow_id


def parse_run(data: dict) -> RunRequest:
    return validated(RunRequest, data)


def parse_run_id(fields: dict[str, Any], query_run_id: str | None) -> uuid.UUID:
    return validated(RunIdRequest, _field_or_query(fields, "runId", query_run_id)).run_id


def parse_resume(data: dict) -> ResumeRequest:
    return validated(ResumeRequest, data)
