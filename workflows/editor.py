"""What the workflow change page gives Tinyflow's editor (`@tinyflow-ai/ui`, vendored under
``workflows/static/workflows/tinyflow/``): its provider lists and the node types to hide.

The lists come from the project: bots for ``llm`` (an ``llmNode``'s ``llmId`` names a bot),
search engines for ``searchEngine``, and the knowledge bases of the ``knowledge`` app for
``knowledge`` (a ``knowledgeNode``'s ``knowledgeId`` is the knowledge base's id, what
`workflows.knowledge_port` looks up). Node types the engine does not run are hidden, so every
node the editor offers can be saved.
"""

from __future__ import annotations

from typing import Any

from bots.models import Bot
from knowledge.models import KnowledgeBase
from workflows.engine.nodes import NODE_TYPES
from workflows.search_engines import search_engine_choices

# The node types Tinyflow's editor (1.2.x) offers.
TINYFLOW_NODE_TYPES = (
    "startNode",
    "llmNode",
    "knowledgeNode",
    "searchEngineNode",
    "httpNode",
    "codeNode",
    "templateNode",
    "loopNode",
    "confirmNode",
    "endNode",
)


def workflow_editor_config() -> dict[str, Any]:
    """The editor's provider lists (``{value, label}`` each, as Tinyflow's selects expect)."""
    return {
        "llm": [
            {"value": bot.pk, "label": bot.name}
            for bot in Bot.objects.filter(enabled=True).order_by("name").only("pk", "name")
        ],
        "knowledge": [
            {"value": kb.pk, "label": kb.name}
            for kb in KnowledgeBase.objects.order_by("name").only("pk", "name")
        ],
        "searchEngine": search_engine_choices(),
        "hiddenNodes": [name for name in TINYFLOW_NODE_TYPES if name not in NODE_TYPES],
    }
