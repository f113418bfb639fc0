/* The workflow change page: Tinyflow's editor as the main editor, the JSON textarea kept for
 * import/export. The editor's data is written into the textarea on every change and before
 * the form is sent, so saving runs exactly the checks an import runs. */
(function () {
  "use strict";

  function layout(definition) {
    // Definitions written by hand or imported from older exports have no positions.
    const nodes = Array.isArray(definition.nodes) ? definition.nodes : [];
    if (nodes.every((node) => node && node.position)) { return definition; }
    const edges = Array.isArray(definition.edges) ? definition.edges : [];
    const level = {};
    nodes.forEach((node) => { level[node.id] = node.type === "startNode" ? 0 : undefined; });
    for (let pass = 0; pass < nodes.length; pass += 1) {
      edges.forEach((edge) => {
        if (level[edge.source] !== undefined) {
          const next = level[edge.source] + 1;
          if (level[edge.target] === undefined || level[edge.target] < next) {
            level[edge.target] = Math.min(next, nodes.length);
          }
        }
      });
    }
    const rows = {};
    nodes.forEach((node) => {
      if (node.position) { return; }
      const column = level[node.id] === undefined ? 0 : level[node.id];
      rows[column] = (rows[column] || 0) + 1;
      node.position = { x: 60 + column * 360, y: 40 + (rows[column] - 1) * 220 };
    });
    return definition;
  }

  function start() {
    const configElement = document.getElementById("workflow-editor-config");
    const mount = document.getElementById("workflow-editor");
    const textarea = document.getElementById("id_definition");
    if (!configElement || !mount || !textarea || !window.Tinyflow) { return; }
    const config = JSON.parse(configElement.textContent);
    const row = textarea.closest(".form-row") || textarea.parentElement;
    const toggle = document.getElementById("workflow-json-toggle");
    const hasErrors = row.querySelector(".errorlist") !== null;
    let jsonEdited = false;

    function parsed() {
      try { return JSON.parse(textarea.value || "{}"); } catch (error) { return null; }
    }

    function write(data) {
      textarea.value = JSON.stringify(data, null, 2);
      jsonEdited = false;
    }

    const initial = parsed() || { nodes: [], edges: [] };
    const editor = new window.Tinyflow.Tinyflow({
      element: mount,
      data: layout(initial),
      provider: {
        llm: () => config.llm,
        knowledge: () => config.knowledge,
        searchEngine: () => config.searchEngine,
      },
      hiddenNodes: config.hiddenNodes,
      onDataChange: (data) => { if (!jsonEdited) { write(data); } },
    });
    window.workflowEditor = editor;

    function showJson(visible) {
      row.style.display = visible ? "" : "none";
      toggle.textContent = visible ? toggle.dataset.hide : toggle.dataset.show;
      toggle.setAttribute("aria-expanded", visible ? "true" : "false");
    }

    textarea.addEventListener("input", () => { jsonEdited = true; });
    toggle.addEventListener("click", () => {
      const visible = row.style.display !== "none";
      if (visible && jsonEdited) {
        // Back to the editor with hand-edited JSON: load it, or stay if it does not parse.
        const data = parsed();
        if (data === null) { window.alert(toggle.dataset.invalid); return; }
        editor.setData(layout(data));
        jsonEdited = false;
      } else if (!visible) {
        write(editor.getData());
      }
      showJson(!visible);
    });
    textarea.form.addEventListener("submit", (event) => {
      // The editor's own buttons have no type, so inside our form they would submit it.
      if (event.submitter && mount.contains(event.submitter)) {
        event.preventDefault();
        return;
      }
      if (!jsonEdited) { write(editor.getData()); }
    });
    showJson(hasErrors);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
