"""Validation of workflow request bodies: plain functions that return typed requests or raise a
`BadRequest` naming the field.

AIFlowy callers send getRunningParams as a form field (`id=…`, its documented form), as a
query parameter (`GET ?id=…`, what its 1.x server served) or as JSON; all three are accepted.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from aiflowy.errors import BadRequest
from aiflowy.validation import parse_bool, parse_id


@dataclass(frozen=True, slots=True)
class RunRequest:
    workflow_id: int
    variables: dict
    stream: bool
    run_async: bool


def _multipart_fields(body: bytes, content_type: str) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
    )
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and part.get_filename() is None:
            payload = part.get_payload(decode=True) or b""
            fields.setdefault(str(name), payload.decode(part.get_content_charset() or "utf-8"))
    return fields


def request_fields(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The fields of a JSON object, urlencoded form or multipart form body."""
    if not body.strip():
        return {}
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            return _multipart_fields(body, content_type or "")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("The multipart form body cannot be read.") from None
    if kind == "application/x-www-form-urlencoded" or (
        kind != "application/json" and not body.lstrip().startswith(b"{")
    ):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The form body is not UTF-8.") from None
        return {key: values[0] for key, values in parse_qs(text).items()}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.", code="invalid_json")
    return data


def parse_workflow_id(fields: dict[str, Any], query_id: str | None) -> int:
    value = fields.get("id")
    if value in (None, ""):
        value = query_id
    if value in (None, ""):
        raise BadRequest("'id' (the workflow id) is required.", param="id")
    return parse_id(value, "id")


def parse_run(data: dict) -> RunRequest:
    if data.get("id") in (None, ""):
        raise BadRequest("'id' (the workflow id) is required.", param="id")
    variables = data.get("variables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise BadRequest(
            "'variables' must be a JSON object of the workflow's inputs.", param="variables"
        )
    stream = parse_bool(data.get("stream"), "stream")
    run_async = parse_bool(data.get("async"), "async")
    if stream and run_async:
        raise BadRequest("'stream' and 'async' cannot both be true.", param="async")
    return RunRequest(
        workflow_id=parse_id(data["id"], "id"),
        variables=variables,
        stream=stream,
        run_async=run_async,
    )


def parse_run_id(fields: dict[str, Any], query_run_id: str | None) -> uuid.UUID:
    value = fields.get("runId")
    if value in (None, ""):
        value = query_run_id
    if value in (None, ""):
        raise BadRequest("'runId' is required.", param="runId")
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest("'runId' is not a run id.", param="runId") from None
