"""One module per API family: each owns its response bodies, error bodies, stream sequencing
and WebSocket frames, and nothing else renders that family.

- `aiflowy`: AIFlowy's `{errorCode, message}` world (externalChat, the chat WebSocket, the
  workflow endpoints, the history API).
- `openai`: OpenAI's chat completions and models, errors as `{"error": {...}}`.
- `fastgpt`: FastGPT's `detail` additions on the OpenAI endpoint (named SSE events,
  `responseData`).
- `workflow`: the events of a streamed workflow run.

Every family exposes `error_body(error) -> dict` for JSON answers; stream families also expose
the frames that end a stream on an error. The consumer base (`aiflowy.consumers`) sends them:
a family is chosen per endpoint and never mixed.
"""
