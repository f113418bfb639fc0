// The chat page (share links and the admin playground). Plain DOM, no framework, no eval.
// Everything from users and models is inserted as text; the only HTML inserted is the
// answer the server rendered from Markdown and sanitised (aiflowy/markdown.py).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("chat-config").textContent);
  const words = config.strings;
  const $ = (id) => document.getElementById(id);
  const messagesBox = $("messages");
  const questionBox = $("question");
  const sendButton = $("send");
  const stopButton = $("stop");
  const chatList = $("chat-list");
  const notice = $("notice");

  let currentChatId = "";
  let running = null; // the AbortController of the answer in progress
  let welcome = "";
  let chats = [];

  function identity() {
    return config.mode === "share"
      ? { shareId: config.shareId, authToken: config.authToken }
      : { botId: config.botId };
  }

  function post(endpoint, body, signal) {
    return fetch(endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "aiflowy-chat-page" },
      body: JSON.stringify(Object.assign(identity(), body)),
      signal: signal,
    });
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") return body.message;
    } catch (ignored) { /* not JSON */ }
    return words.networkError;
  }

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scrollDown() {
    messagesBox.scrollTop = messagesBox.scrollHeight;
  }

  function addBubble(role, text) {
    const row = element("div", "message " + role);
    const bubble = element("div", "bubble");
    const body = element("div", "content", text || "");
    bubble.appendChild(body);
    row.appendChild(bubble);
    messagesBox.appendChild(row);
    scrollDown();
    return { row: row, bubble: bubble, body: body };
  }

  function enhanceCode(container) {
    container.querySelectorAll("pre").forEach(function (pre) {
      const button = element("button", "copy", words.copy);
      button.type = "button";
      button.addEventListener("click", function () {
        const code = pre.querySelector("code");
        navigator.clipboard.writeText((code || pre).textContent).then(function () {
          button.textContent = words.copied;
          setTimeout(function () { button.textContent = words.copy; }, 1500);
        });
      });
      pre.appendChild(button);
    });
  }

  function showAnswerHtml(parts, html) {
    // `html` is the server's sanitised rendering of the answer's Markdown.
    parts.body.innerHTML = html;
    parts.body.classList.add("markdown");
    enhanceCode(parts.body);
  }

  function addDetail(parts, detail, usage) {
    const box = element("details", "detail");
    box.appendChild(element("summary", null, words.detail));
    const list = element("dl");
    function item(label, value) {
      list.appendChild(element("dt", null, label));
      const dd = element("dd");
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
      list.appendChild(dd);
    }
    if (detail.model) item(words.model, detail.model);
    if (usage) {
      item(words.tokens, usage.promptTokens + " + " + usage.completionTokens + " = " + usage.totalTokens);
    }
    if (detail.timings) {
      item(
        words.timings,
        words.firstToken + " " + detail.timings.firstTokenMs + " ms · " +
          words.total + " " + detail.timings.totalMs + " ms"
      );
    }
    if (detail.quotes !== undefined) {
      item(words.quotes, detail.quotes.length ? JSON.stringify(detail.quotes, null, 2) : words.noQuotes);
    }
    if (detail.prompt) {
      const prompt = element("div", "prompt");
      detail.prompt.forEach(function (message) {
        const line = element("div", "prompt-line");
        line.appendChild(element("span", "prompt-role", message.role));
        line.appendChild(element("pre", "prompt-text", message.content));
        prompt.appendChild(line);
      });
      item(words.prompt, prompt);
    }
    if (detail.responseData) {
      item("responseData", element("pre", "json", JSON.stringify(detail.responseData, null, 2)));
    }
    box.appendChild(list);
    parts.bubble.appendChild(box);
  }

  function renderChats() {
    chatList.textContent = "";
    if (!chats.length) {
      chatList.appendChild(element("li", "empty", words.noChats));
      return;
    }
    chats.forEach(function (chat) {
      const li = element("li");
      const button = element("button", "chat-link", chat.title || words.untitled);
      button.type = "button";
      button.dataset.chatId = chat.chatId;
      if (chat.chatId === currentChatId) button.classList.add("current");
      button.addEventListener("click", function () { loadChat(chat.chatId); closeMenu(); });
      li.appendChild(button);
      chatList.appendChild(li);
    });
  }

  function setRunning(controller) {
    running = controller;
    sendButton.hidden = !!controller;
    stopButton.hidden = !controller;
    questionBox.disabled = false;
  }

  function startNewChat() {
    if (running) running.abort();
    currentChatId = "";
    history.replaceState(null, "", location.pathname + location.search);
    messagesBox.textContent = "";
    if (welcome) addBubble("assistant welcome", welcome);
    renderChats();
    questionBox.focus();
  }

  async function loadChat(chatId) {
    if (running) running.abort();
    const response = await post(config.endpoints.messages, { chatId: chatId });
    if (!response.ok) {
      showNotice(await errorMessage(response));
      return;
    }
    const body = await response.json();
    currentChatId = body.chatId;
    history.replaceState(null, "", "#chat=" + encodeURIComponent(currentChatId));
    messagesBox.textContent = "";
    body.messages.forEach(function (message) {
      if (message.role === "user") {
        addBubble("user", message.content);
      } else if (message.role === "assistant") {
        const parts = addBubble("assistant");
        if (message.status === "error") parts.row.classList.add("error");
        showAnswerHtml(parts, message.html);
      }
    });
    renderChats();
  }

  // Server-sent events from a fetch body: yields {event, data} objects.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        block.split("\n").forEach(function (line) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        });
        if (data.length) yield { event: name, data: JSON.parse(data.join("\n")) };
      }
    }
  }

  async function ask(question) {
    showNotice("");
    addBubble("user", question);
    const parts = addBubble("assistant pending");
    parts.body.textContent = words.thinking;
    const controller = new AbortController();
    setRunning(controller);
    let text = "";
    let finished = false;
    try {
      const response = await post(
        config.endpoints.answer, { chatId: currentChatId, question: question }, controller.signal
      );
      if (!response.ok) {
        const message = await errorMessage(response);
        parts.row.classList.add("error");
        parts.body.textContent = message;
        if (response.status === 429 || response.status === 403) showNotice(message);
        finished = true;
        return;
      }
      for await (const item of events(response)) {
        if (item.event === "chat") {
          if (!currentChatId) {
            currentChatId = item.data.chatId;
            history.replaceState(null, "", "#chat=" + encodeURIComponent(currentChatId));
            chats.unshift({ chatId: currentChatId, title: question.slice(0, 200) });
            renderChats();
          }
        } else if (item.event === "delta") {
          if (!text) parts.row.classList.remove("pending");
          text += item.data.text;
          parts.body.textContent = text;
          scrollDown();
        } else if (item.event === "end") {
          finished = true;
          parts.row.classList.remove("pending");
          showAnswerHtml(parts, item.data.html);
          if (item.data.detail) addDetail(parts, item.data.detail, item.data.usage);
        } else if (item.event === "error") {
          finished = true;
          parts.row.classList.remove("pending");
          parts.row.classList.add("error");
          parts.body.textContent = (text ? text + "\n\n" : "") + item.data.message;
        }
      }
      if (!finished) {
        parts.row.classList.add("error");
        parts.body.textContent = (text ? text + "\n\n" : "") + words.networkError;
      }
    } catch (error) {
      parts.row.classList.remove("pending");
      if (controller.signal.aborted) {
        parts.body.textContent = text;
        parts.bubble.appendChild(element("div", "stopped", words.stopped));
      } else {
        parts.row.classList.add("error");
        parts.body.textContent = (text ? text + "\n\n" : "") + words.networkError;
      }
    } finally {
      setRunning(null);
      scrollDown();
    }
  }

  function closeMenu() {
    document.body.classList.remove("menu-open");
    $("scrim").hidden = true;
    $("menu-toggle").setAttribute("aria-expanded", "false");
  }

  $("menu-toggle").addEventListener("click", function () {
    const open = !document.body.classList.contains("menu-open");
    document.body.classList.toggle("menu-open", open);
    $("scrim").hidden = !open;
    this.setAttribute("aria-expanded", String(open));
  });
  $("scrim").addEventListener("click", closeMenu);
  $("new-chat").addEventListener("click", function () { startNewChat(); closeMenu(); });
  $("new-chat-top").addEventListener("click", startNewChat);
  stopButton.addEventListener("click", function () { if (running) running.abort(); });
  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    const question = questionBox.value;
    if (!question.trim() || running) return;
    questionBox.value = "";
    questionBox.style.height = "";
    ask(question);
  });
  questionBox.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  questionBox.addEventListener("input", function () {
    questionBox.style.height = "";
    questionBox.style.height = Math.min(questionBox.scrollHeight, 200) + "px";
  });
  questionBox.placeholder = words.placeholder;
  questionBox.title = words.keysHint;

  async function open() {
    let response;
    try {
      response = await post(config.endpoints.open, {});
    } catch (error) {
      showNotice(words.networkError);
      return;
    }
    if (!response.ok) {
      showNotice(await errorMessage(response));
      return;
    }
    const body = await response.json();
    $("bot-name").textContent = body.bot.name;
    document.title = body.bot.name;
    welcome = body.bot.welcome || "";
    chats = body.chats;
    questionBox.disabled = false;
    sendButton.disabled = false;
    const wanted = new URLSearchParams(location.hash.slice(1)).get("chat");
    if (wanted && chats.some(function (chat) { return chat.chatId === wanted; })) {
      await loadChat(wanted);
    } else {
      startNewChat();
    }
  }

  open();
})();
