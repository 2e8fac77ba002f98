// digest preview: one page that shows the edition as subscribers will get it and reloads
// itself when a template, the config or a local feed changes.
//
// Rules kept throughout: no dependencies; every value from the API reaches the DOM through
// textContent or a checked attribute (never innerHTML), so nothing a feed says can run here;
// the email itself is shown in sandboxed iframes that may not run scripts.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TABS = ["desktop", "phone", "text", "source", "headers"];
  const FRAMES = ["frame-desktop", "frame-phone"];
  // Shown first in the headers table, in this order; the rest follow as the API gives them.
  const HEADER_ORDER = ["From", "To", "Subject", "Preheader", "List-Unsubscribe", "List-Unsubscribe-Post"];
  const DEFAULT_LIMIT = 102000;

  const state = {
    params: { list: null, date: null, desks: null, subscriber: null },
    mode: "desks",
    tab: "desktop",
    data: null, // the last edition shown without an error
    emailSrc: null, // the /email URL the frames should show
    version: null, // the version of the last answer from /api/preview
    latestEvent: null, // the last version announced on /events
    seq: 0, // numbers each /api/preview request: only the newest one's answer is used
    inflight: false,
    dirty: false, // a version event arrived while a request was in flight
    sourceKey: null, // what the HTML source tab currently shows (query and version)
    deskNames: [], // the desks the checkboxes were built for
  };

  // ---------------------------------------------------------------- parameters and URL

  function query(params = state.params) {
    const q = new URLSearchParams();
    if (params.list) q.set("list", params.list);
    if (params.date) q.set("date", params.date);
    if (params.subscriber) q.set("subscriber", params.subscriber);
    else if (params.desks) q.set("desks", params.desks.join(";"));
    return q.toString();
  }

  function saveToHash() {
    const q = new URLSearchParams(query());
    if (state.tab !== "desktop") q.set("tab", state.tab);
    const hash = q.toString();
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  }

  function loadFromHash() {
    // The hash keeps the choices across reloads; a query string (?date=…) works for a first visit.
    const q = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
    state.params.list = q.get("list") || null;
    state.params.date = /^\d{4}-\d{2}-\d{2}$/.test(q.get("date") || "") ? q.get("date") : null;
    state.params.subscriber = q.get("subscriber") || null;
    state.params.desks = q.has("desks") && !state.params.subscriber ? q.get("desks").split(";").filter(Boolean) : null;
    state.mode = state.params.subscriber ? "subscriber" : "desks";
    if (TABS.includes(q.get("tab"))) state.tab = q.get("tab");
    $("date").value = state.params.date || "";
    $("subscriber").value = state.params.subscriber || "";
    $(state.mode === "subscriber" ? "mode-subscriber" : "mode-desks").checked = true;
    showMode();
  }

  // ---------------------------------------------------------------- small DOM helpers

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child); // strings become text nodes
    return node;
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(String(url), location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function setStatus(text, kind = "") {
    const status = $("status");
    status.textContent = text;
    status.dataset.kind = kind;
  }

  function kb(bytes) {
    return `${(bytes / 1000).toFixed(1)} KB`;
  }

  // ---------------------------------------------------------------- loading an edition

  async function refresh() {
    const seq = ++state.seq;
    const q = query();
    state.inflight = true;
    state.dirty = false;
    saveToHash();
    setStatus("Updating…", "busy");
    let response;
    let body;
    try {
      response = await fetch(`/api/preview?${q}`, { cache: "no-store", headers: { Accept: "application/json" } });
      body = await response.json();
    } catch (err) {
      if (seq !== state.seq) return;
      state.inflight = false;
      showError({ message: `The preview server did not answer (${err.message}). Is \`digest preview\` still running?` });
      setStatus("Server unreachable", "error");
      return;
    }
    if (seq !== state.seq) return; // the controls changed meanwhile: a newer request is on its way
    state.inflight = false;
    if (typeof body.version === "number") state.version = body.version;

    if (!response.ok || body.error) {
      const error = (body && body.error) || { message: `HTTP ${response.status}` };
      if (body.lists) showControls(body);
      showError(error, response.ok ? null : response.status);
      setStatus(response.ok ? "Template error" : "Bad request", "error");
    } else {
      state.data = body;
      showControls(body);
      hideError();
      showEdition(body, q);
      const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      setStatus(`Live · updated ${time}`, "live");
    }
    // A change announced while this request was running may not be in its answer.
    if (state.dirty && state.latestEvent !== state.version) refresh();
  }

  function showControls(data) {
    const select = $("list");
    const lists = Array.isArray(data.lists) ? data.lists : [];
    const current = Array.from(select.options, (o) => o.value);
    if (current.join("\n") !== lists.join("\n")) {
      select.replaceChildren(...lists.map((name) => el("option", { value: name, text: name })));
    }
    if (data.list) {
      select.value = data.list;
      state.params.list = data.list;
    }
    const desks = Array.isArray(data.desks) ? data.desks : [];
    if (desks.join("\n") !== state.deskNames.join("\n")) {
      state.deskNames = desks;
      const chosen = state.params.desks;
      $("desks").replaceChildren(
        ...desks.map((name, i) =>
          el(
            "label",
            { class: "desk" },
            el("input", {
              type: "checkbox",
              name: "desk",
              value: name,
              id: `desk-${i}`,
              checked: !chosen || chosen.includes(name),
            }),
            ` ${name}`,
          ),
        ),
      );
    }
    if (Array.isArray(data.transports)) {
      $("transports").replaceChildren(...data.transports.map((name) => el("option", { value: String(name) })));
    }
    if (data.transport) $("send-transport").placeholder = `default: ${data.transport}`;
    const who = data.subscriber;
    $("subscriber-info").textContent =
      who && typeof who === "object"
        ? `${who.name ? `${who.name}, ` : ""}${who.status || "subscribed"}: ${(who.desks || []).join(", ")}`
        : "";
    if (data.date) {
      $("date-hint").textContent = state.params.date
        ? `Edition of ${data.date}`
        : `Empty: the next edition (${data.date})`;
    }
  }

  function showEdition(data, q) {
    // Inbox line
    const from = header(data.headers, "From") || "";
    const name = from.replace(/\s*<[^>]*>\s*$/, "").replace(/^"(.*)"$/, "$1") || from;
    $("inbox-from").textContent = name;
    $("subject").textContent = data.subject || "";
    $("preheader").textContent = data.preheader || "";
    $("inbox-date").textContent = data.date || "";
    $("empty").hidden = !data.empty;

    showSize(data.size || {});
    showChecks(Array.isArray(data.checks) ? data.checks : []);
    showWarnings(Array.isArray(data.warnings) ? data.warnings : []);
    showItems(Array.isArray(data.items) ? data.items : [], data.new_count);
    showResults(data);
    showHeaders(data);
    $("text").textContent = data.text || "";
    loadFrames(q, data.version);
    if (state.tab === "source") loadSource();
  }

  function header(headers, name) {
    if (!headers) return undefined;
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : headers[key];
  }

  function showSize(size) {
    const bytes = Number(size.bytes) || 0;
    const limit = Number(size.limit) || DEFAULT_LIMIT;
    const over = bytes > limit || size.clipped === true;
    const bar = $("size-bar");
    $("size").classList.toggle("over", over);
    $("size-fill").style.width = `${Math.min(100, (bytes / limit) * 100).toFixed(1)}%`;
    bar.setAttribute("aria-valuemax", String(limit));
    bar.setAttribute("aria-valuenow", String(Math.min(bytes, limit)));
    bar.setAttribute("aria-valuetext", `${kb(bytes)} of ${Math.round(limit / 1000)} KB`);
    const label = $("size-label");
    label.replaceChildren(`${kb(bytes)} of ${Math.round(limit / 1000)} KB`);
    if (over) label.append(el("span", { class: "over-note", text: " — over the limit: Gmail clips it" }));
  }

  function showChecks(checks) {
    const words = { true: "ok", false: "failed", null: "not run" };
    $("checks").replaceChildren(
      ...checks.map((check) => {
        const ok = check.ok === true ? true : check.ok === false ? false : null;
        const kind = ok === true ? "ok" : ok === false ? "failed" : "skipped";
        return el(
          "li",
          { class: `check ${kind}`, "data-status": kind, "data-check": String(check.id ?? check.name ?? "") },
          el("span", { class: "check-icon", "aria-hidden": "true", text: ok === true ? "✓" : ok === false ? "✗" : "–" }),
          el(
            "div",
            {},
            el("span", { class: "check-name", text: String(check.name ?? "") }),
            el("span", { class: "visually-hidden", text: `: ${words[String(ok)]}` }),
            check.detail ? el("span", { class: "check-detail", text: String(check.detail) }) : null,
          ),
        );
      }),
    );
    if (!checks.length) $("checks").append(el("li", { class: "hint", text: "No checks." }));
  }

  function showResults(data) {
    // The list's last sent edition, in one line, and the guardrail's hold (the next send waits).
    $("last-result").textContent = data.last_result ? String(data.last_result) : "No edition sent yet.";
    $("held").hidden = !data.held;
    $("held").textContent = data.held ? `Held: ${String(data.held)}` : "";
  }

  function showWarnings(warnings) {
    $("warnings-card").hidden = warnings.length === 0;
    $("warnings").replaceChildren(...warnings.map((w) => el("li", { text: String(w) })));
  }

  function showItems(items, newCount) {
    const count = typeof newCount === "number" ? newCount : items.filter((i) => i.new).length;
    $("new-count").textContent = items.length
      ? `${items.length} ${items.length === 1 ? "story" : "stories"}, ${count} new since the last sent edition`
      : "No stories in this edition.";
    $("items").replaceChildren(
      ...items.map((item) => {
        const url = safeUrl(item.url);
        const title = String(item.title ?? "");
        return el(
          "li",
          { class: item.new ? "item is-new" : "item", "data-new": item.new ? "true" : "false" },
          item.new ? el("span", { class: "badge", text: "NEW" }) : null,
          url
            ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "item-title", text: title })
            : el("span", { class: "item-title", text: title }),
          el("span", { class: "item-desk", text: String(item.desk ?? "") }),
        );
      }),
    );
  }

  function showHeaders(data) {
    const headers = data.headers || {};
    const rows = [];
    const used = new Set();
    for (const name of HEADER_ORDER) {
      let value = name === "Preheader" ? data.preheader : header(headers, name);
      if (name === "Subject" && value === undefined) value = data.subject;
      const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
      if (key !== undefined) used.add(key);
      rows.push([name, value]);
    }
    for (const [name, value] of Object.entries(headers)) if (!used.has(name)) rows.push([name, value]);
    $("headers").tBodies[0].replaceChildren(
      ...rows.map(([name, value]) =>
        el(
          "tr",
          {},
          el("th", { scope: "row", text: name }),
          value === undefined || value === null || value === ""
            ? el("td", { class: "absent", text: "(not set)" })
            : el("td", { text: String(value) }),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- the frames and the source

  function loadFrames(q, version) {
    // The version makes each reload a new URL (the server ignores it), so nothing cached is shown.
    state.emailSrc = `/email?${q}${q ? "&" : ""}v=${encodeURIComponent(version ?? Date.now())}`;
    // Only the frame on screen is loaded now; the other one when its tab is opened.
    if (state.tab === "desktop") syncFrame("frame-desktop");
    if (state.tab === "phone") syncFrame("frame-phone");
  }

  function syncFrame(id) {
    const frame = $(id);
    if (!state.emailSrc || frame.getAttribute("src") === state.emailSrc) return;
    // A scroll position still waiting for the previous reload to finish wins over the new page's.
    let scroll = frame.dataset.scroll || "";
    try {
      const win = frame.contentWindow;
      if (!scroll && win && frame.getAttribute("src") && (win.scrollX || win.scrollY)) {
        scroll = `${win.scrollX},${win.scrollY}`;
      }
    } catch {
      scroll = ""; // not readable (another origin): the reload starts at the top
    }
    frame.dataset.scroll = scroll;
    let old = null;
    try {
      old = frame.contentDocument;
    } catch {
      old = null;
    }
    frame.src = state.emailSrc;
    if (scroll) restoreScrollEarly(frame, old);
  }

  // Scroll the new document back as soon as it is parsed, not only once its images loaded.
  function restoreScrollEarly(frame, old) {
    let frames = 0;
    const tick = () => {
      let doc = null;
      try {
        doc = frame.contentDocument;
      } catch {
        return;
      }
      if (!frame.dataset.scroll) return; // already restored by the load event
      if (doc && doc !== old && doc.URL !== "about:blank" && doc.readyState !== "loading") {
        const [x, y] = frame.dataset.scroll.split(",").map(Number);
        frame.contentWindow.scrollTo(x, y);
        return;
      }
      if (++frames < 300) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  function onFrameLoad(event) {
    const frame = event.currentTarget;
    try {
      const doc = frame.contentDocument;
      if (doc && doc.head && !doc.querySelector("base")) {
        // Links open in a new tab instead of inside the little frame.
        doc.head.prepend(el("base", { target: "_blank" }));
      }
      if (frame.dataset.scroll) {
        const [x, y] = frame.dataset.scroll.split(",").map(Number);
        frame.contentWindow.scrollTo(x, y);
        frame.dataset.scroll = "";
      }
    } catch {
      // another origin: nothing to adjust
    }
  }

  async function loadSource() {
    const q = query();
    const key = `${q}@${state.version}`;
    if (state.sourceKey === key || !state.data) return;
    state.sourceKey = key;
    const pre = $("source");
    pre.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`/source?${q}`, { cache: "no-store" });
      const text = await response.text();
      if (state.sourceKey === key) pre.textContent = response.ok ? text : `Could not load the source: ${text}`;
    } catch (err) {
      if (state.sourceKey === key) {
        pre.textContent = `Could not load the source: ${err.message}`;
        state.sourceKey = null;
      }
    } finally {
      pre.removeAttribute("aria-busy");
    }
  }

  // ---------------------------------------------------------------- errors

  function lineOf(problem) {
    return problem.line != null && problem.line !== "" ? String(problem.line) : "";
  }

  function showError(error, status) {
    const template = error.template ? String(error.template) : "";
    const file = template || (error.path ? String(error.path) : "");
    // A config with several mistakes: each on a line of its own, with its line number.
    const problems = Array.isArray(error.problems) && error.problems.length > 1 ? error.problems : null;
    const line = problems ? "" : lineOf(error);
    $("error-title").textContent = template ? "Template error" : status ? "Cannot show this edition" : "Preview error";
    $("error-where").textContent = file ? (line ? `${file}, line ${line}` : file) : "";
    $("error-where").parentElement.hidden = !file;
    $("error-message").textContent = problems
      ? problems
          .map((problem) => {
            const other = problem.path && String(problem.path) !== file ? String(problem.path) : "";
            const at = lineOf(problem) ? `line ${lineOf(problem)}` : "";
            const where = [other, at].filter(Boolean).join(", ");
            return `${where ? `${where}: ` : ""}${String(problem.message ?? "")}`;
          })
          .join("\n")
      : String(error.message ?? "unknown error");
    $("error").hidden = false;
    $("preview").classList.add("is-error");
    $("main").classList.add("is-error");
    $("preview").inert = true;
  }

  function hideError() {
    $("error").hidden = true;
    $("preview").classList.remove("is-error");
    $("main").classList.remove("is-error");
    $("preview").inert = false;
  }

  // ---------------------------------------------------------------- tabs

  function selectTab(name, focus = false) {
    state.tab = name;
    for (const tab of TABS) {
      const button = $(`tab-${tab}`);
      const selected = tab === name;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`panel-${tab}`).hidden = !selected;
      if (selected && focus) button.focus();
    }
    if (name === "source") loadSource();
    if (name === "desktop" || name === "phone") syncFrame(`frame-${name}`);
    saveToHash();
  }

  function onTabKey(event) {
    const index = TABS.indexOf(state.tab);
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    selectTab(TABS[(moves[event.key] + TABS.length) % TABS.length], true);
  }

  // ---------------------------------------------------------------- controls

  function showMode() {
    const subscriber = state.mode === "subscriber";
    $("desks").hidden = subscriber;
    $("subscriber-field").hidden = !subscriber;
  }

  function onModeChange() {
    state.mode = $("mode-subscriber").checked ? "subscriber" : "desks";
    showMode();
    if (state.mode === "subscriber") {
      $("subscriber").focus();
      applySubscriber();
    } else if (state.params.subscriber) {
      state.params.subscriber = null;
      refresh();
    }
  }

  function applySubscriber() {
    const value = $("subscriber").value.trim();
    if ((value || null) === state.params.subscriber) return;
    state.params.subscriber = value || null;
    if (!value || $("subscriber").checkValidity()) refresh();
  }

  function onDeskChange(event) {
    const boxes = Array.from($("desks").querySelectorAll("input[type=checkbox]"));
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) {
      // A variant has at least one desk (no desk at all would mean every desk to the server).
      event.target.checked = true;
      return;
    }
    state.params.desks = chosen.length === boxes.length ? null : chosen;
    refresh();
  }

  async function sendTest(event) {
    event.preventDefault();
    const result = $("send-result");
    const to = $("send-to");
    if (!to.checkValidity()) {
      to.reportValidity();
      return;
    }
    const button = $("send-button");
    button.disabled = true;
    result.className = "send-result";
    result.textContent = "Sending…";
    const payload = {
      list: state.params.list,
      date: state.params.date,
      desks: state.params.subscriber ? null : state.params.desks ? state.params.desks.join(";") : null,
      subscriber: state.params.subscriber,
      to: to.value.trim(),
      transport: $("send-transport").value.trim() || null,
    };
    try {
      const response = await fetch("/api/send-test", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(payload),
      });
      let body;
      try {
        body = await response.json();
      } catch {
        body = { ok: false, message: `HTTP ${response.status}` };
      }
      const message = body.message ?? (body.error && body.error.message) ?? `HTTP ${response.status}`;
      const ok = response.ok && body.ok === true;
      result.classList.add(ok ? "ok" : "failed");
      result.textContent = String(message);
    } catch (err) {
      result.classList.add("failed");
      result.textContent = `The preview server did not answer (${err.message}).`;
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- live reload

  function listen() {
    if (!("EventSource" in window)) return;
    const events = new EventSource("/events");
    let timer = null;
    events.addEventListener("version", (event) => {
      const version = Number(event.data);
      if (!Number.isFinite(version)) return;
      state.latestEvent = version;
      if (state.inflight) {
        state.dirty = true;
        return;
      }
      if (version === state.version) return;
      // An editor's save can touch a file several times in a few milliseconds.
      clearTimeout(timer);
      timer = setTimeout(refresh, 40);
    });
    events.addEventListener("error", () => {
      if (events.readyState !== EventSource.CLOSED) setStatus("Reconnecting…", "busy");
    });
  }

  // ---------------------------------------------------------------- start

  function start() {
    loadFromHash();
    selectTab(state.tab);
    for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
    document.querySelector("[role=tablist]").addEventListener("keydown", onTabKey);
    for (const id of FRAMES) $(id).addEventListener("load", onFrameLoad);

    $("list").addEventListener("change", () => {
      state.params.list = $("list").value;
      state.params.desks = null;
      state.deskNames = [];
      refresh();
    });
    $("date").addEventListener("change", () => {
      state.params.date = $("date").value || null;
      refresh();
    });
    $("date-next").addEventListener("click", () => {
      if (!$("date").value) return;
      $("date").value = "";
      state.params.date = null;
      refresh();
    });
    $("mode-desks").addEventListener("change", onModeChange);
    $("mode-subscriber").addEventListener("change", onModeChange);
    $("desks").addEventListener("change", onDeskChange);
    $("subscriber").addEventListener("change", applySubscriber);
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      applySubscriber();
    });
    $("send-form").addEventListener("submit", sendTest);

    refresh();
    listen();
  }

  start();
})();
