"""The demo workflow, in AIFlowy's (Tinyflow's) JSON: start → LLM → template → end.

It runs offline against the demo bot (echo provider). The demo set-up command creates it with
`workflow_create(title=DEMO_WORKFLOW_TITLE, description=DEMO_WORKFLOW_DESCRIPTION,
definition=demo_workflow_definition(bot.id))`.
"""

from __future__ import annotations

DEMO_WORKFLOW_TITLE = "Demo: one sentence about a topic"
DEMO_WORKFLOW_DESCRIPTION = (
    "Asks the demo bot for one sentence about a topic and wraps the answer in a template."
)


def demo_workflow_definition(llm_id: int | str) -> dict:
    """The definition; `llm_id` names the bot the LLM node uses (its id or its name)."""
    return {
        "nodes": [
            {
                "id": "start",
                "type": "startNode",
                "position": {"x": 0, "y": 0},
                "data": {
                    "title": "Start",
                    "parameters": [
                        {
                            "id": "topic",
                            "name": "topic",
                            "dataType": "String",
                            "refType": "input",
                            "required": True,
                            "description": "What the sentence is about",
                            "formLabel": "Topic",
                            "formPlaceholder": "e.g. the sea",
                        },
                        {
                            "id": "audience",
                            "name": "audience",
                            "dataType": "String",
                            "refType": "input",
                            "required": False,
                            "defaultValue": "everyone",
                            "description": "Who will read it",
                        },
                    ],
                },
            },
            {
                "id": "llm",
                "type": "llmNode",
                "position": {"x": 320, "y": 0},
                "data": {
                    "title": "Write",
                    "llmId": str(llm_id),
                    "systemPrompt": "You write one clear sentence for {{audience}}.",
                    "userPrompt": "Write one sentence about {{topic}}.",
                    "temperature": 0.7,
                    "topP": 0.8,
                    "outType": "text",
                    "parameters": [
                        {"name": "topic", "refType": "ref", "ref": "start.topic"},
                        {"name": "audience", "refType": "ref", "ref": "start.audience"},
                    ],
                    "outputDefs": [{"name": "output", "dataType": "String"}],
                },
            },
            {
                "id": "template",
                "type": "templateNode",
                "position": {"x": 640, "y": 0},
                "data": {
                    "title": "Wrap",
                    "template": "About {{topic}}: {{sentence}}",
                    "parameters": [
                        {"name": "topic", "refType": "ref", "ref": "start.topic"},
                        {"name": "sentence", "refType": "ref", "ref": "llm.output"},
                    ],
                    "outputDefs": [{"name": "output", "dataType": "String"}],
                },
            },
            {
                "id": "end",
                "type": "endNode",
                "position": {"x": 960, "y": 0},
                "data": {
                    "title": "End",
                    "outputDefs": [
                        {"name": "sentence", "refType": "ref", "ref": "llm.output"},
                        {"name": "text", "refType": "ref", "ref": "template.output"},
                    ],
                },
            },
        ],
        "edges": [
            {"id": "e-start-llm", "source": "start", "target": "llm"},
            {"id": "e-llm-template", "source": "llm", "target": "template"},
            {"id": "e-template-end", "source": "template", "target": "end"},
        ],
    }
