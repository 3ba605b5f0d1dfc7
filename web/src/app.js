// Quarry's page: one document, never reloaded. State lives on the server;
// the URL hash remembers the workspace and conversation, so a reload (or a
// server restart) shows the same place, rebuilt from the stored events.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};

const state = { config: null, workspace: null, conversation: null, source: null, lastSeq: 0, questions: new Map(), running: false, scope: new Set() };

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts,
    headers: { ...(opts.body && typeof opts.body === "string" ? { "content-type": "application/json" } : {}), ...(opts.headers || {}) } });
  if (r.status === 401) { showLogin(); throw new Error("log in first"); }
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

function hashState() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { ws: p.get("ws"), conv: p.get("c") };
}
function setHash() {
  const p = new URLSearchParams();
  if (state.workspace) p.set("ws", state.workspace);
  if (state.conversation) p.set("c", state.conversation);
  history.replaceState(null, "", "#" + p.toString());
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    state.config = await api("/api/config");
  } catch (e) { return; }
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#user").textContent = state.config.user;
  $("#engine").textContent = state.config.engine;
  $("#logout").hidden = !state.config.login_required;
  $("#sessions").hidden = !state.config.login_required;
  if (state.config.login_required) loadTokens();
  $("#model").value = state.config.model || "";
  if (state.config.local_models.length) {
    // Models of a model server found running on this machine, to pick from.
    document.body.append(el("datalist", { id: "local-models" }, state.config.local_models.map((m) => el("option", { value: m }))));
    $("#model").setAttribute("list", "local-models");
  }
  // The modes come from the server (one definition, in the analyst).
  $("#privacy").replaceChildren(...state.config.privacy_modes.map((m, i) =>
    el("option", { value: m }, `${m} — ${state.config.privacy_help[i] || ""}`)));
  const banner = [];
  if (!state.config.model) banner.push("No model is configured, so questions cannot be answered yet. Upload, preview and the SQL console work without one.\n" + (state.config.llm_help || ""));
  if (!state.config.python && state.config.python_note) banner.push("Python: " + state.config.python_note);
  $("#banner").hidden = banner.length === 0;
  $("#banner").textContent = banner.join("\n\n");
  if (!state.definitionsReady) { setupDefinitions(); setupConnections(); setupTeam(); state.definitionsReady = true; }
  state.packs = await api("/api/packs");
  await loadWorkspaces();
}

// Sessions and API tokens of the signed-in user, each revocable.
async function loadTokens() {
  const list = await api("/api/tokens");
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
  $("#tokens").replaceChildren(...list.map((t) => el("li", { "data-token": t.id },
    `${t.kind === "session" ? "login session" : "API token"} (${t.label}), created ${t.created_at}, last used ${when(t.last_used_unix)}, ends ${t.expires_unix ? when(t.expires_unix) : "when revoked"} `,
    el("button", { type: "button", onclick: async () => { await api(`/api/tokens/${t.id}`, { method: "DELETE" }); loadTokens(); } }, "Revoke"))));
}

function showLogin() {
  $("#app").hidden = true;
  $("#login").hidden = false;
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await fetch("/api/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: f.get("name"), password: f.get("password") }) });
  if (!r.ok) { $("#login-error").textContent = (await r.json()).error; return; }
  $("#login-error").textContent = "";
  start();
});
$("#logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); location.hash = ""; showLogin(); });

async function loadWorkspaces() {
  const list = await api("/api/workspaces");
  state.wsList = list;
  const want = hashState().ws;
  const sel = $("#workspace");
  sel.replaceChildren(...list.map((w) => el("option", { value: w.id }, w.name)));
  state.workspace = list.some((w) => w.id === want) ? want : list[0].id;
  sel.value = state.workspace;
  await openWorkspace(hashState().conv);
}
$("#workspace").addEventListener("change", async (ev) => { state.workspace = ev.target.value; state.conversation = null; await openWorkspace(null); });
$("#new-workspace").addEventListener("click", async () => {
  const name = prompt("Name of the new workspace");
  if (!name) return;
  const w = await api("/api/workspaces", { method: "POST", body: JSON.stringify({ name }) });
  state.wsList.push(w);
  $("#workspace").append(el("option", { value: w.id }, w.name));
  $("#workspace").value = w.id;
  state.workspace = w.id; state.conversation = null;
  await openWorkspace(null);
});

async function openWorkspace(conv) {
  setHash();
  $("#uploads").replaceChildren();
  state.scope.clear();
  showScope();
  applyRole();
  await Promise.all([loadTables(), loadConversations(conv), loadDefinitions(), loadAnalyses(), loadConnections()]);
}

// ---------------------------------------------------------------- data

const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll([...e.dataTransfer.files]); });
$("#file").addEventListener("change", (e) => { uploadAll([...e.target.files]); e.target.value = ""; });

async function uploadAll(files) {
  setTimeout(loadAnalyses, 3000); // analyses reading a new version run again on the server
  await Promise.all(files.map(upload));
  await loadTables();
}

// One request per file, the file itself as the body: streamed, with progress.
function upload(file) {
  return new Promise((resolve) => {
    const bar = el("progress", { max: 100, value: 0 });
    const status = el("span", { class: "muted" }, "uploading…");
    const li = el("li", { "data-file": file.name }, el("div", {}, file.name, " ", status), bar);
    $("#uploads").append(li);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/workspaces/${state.workspace}/datasets?name=${encodeURIComponent(file.name)}`);
    // Not a type a page elsewhere could send without asking (the server refuses those).
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
    xhr.upload.onload = () => { bar.value = 100; status.textContent = "reading the file…"; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 200) {
        status.textContent = `✓ ${body.tables.length} table(s): ${body.tables.join(", ")}`;
        li.dataset.done = "ok";
      } else {
        status.replaceChildren(el("span", { class: "error" }, body.error || `failed (${xhr.status})`));
        li.dataset.done = "error";
      }
      resolve();
    };
    xhr.onerror = () => { status.replaceChildren(el("span", { class: "error" }, "the connection failed")); li.dataset.done = "error"; resolve(); };
    xhr.send(file);
  });
}

async function loadTables() {
  const tables = await api(`/api/workspaces/${state.workspace}/tables`);
  const box = $("#tables");
  if (tables.length === 0) { box.replaceChildren(el("p", { class: "muted" }, "No tables yet: upload a file.")); return; }
  box.replaceChildren(...tables.map(tableCard));
}

function tableCard(t) {
  const preview = el("div", { class: "preview" });
  const pick = el("input", { type: "checkbox", class: "scope-table", "aria-label": `ask about ${t.name}` });
  pick.checked = state.scope.has(t.name);
  pick.addEventListener("change", () => { if (pick.checked) state.scope.add(t.name); else state.scope.delete(t.name); showScope(); });
  const insights = el("div", { class: "insights" }, el("span", { class: "muted" }, "Checking the data…"));
  const read = t.notes.length + (t.excluded_rows ? 1 : 0);
  const card = el("div", { class: "table-card", "data-table": t.name },
    el("h3", {}, t.name, el("label", { class: "scope-pick" }, pick, " ask about this")),
    el("div", { class: "summary muted" }, `${t.rows} rows × ${t.columns.length} columns · ${t.source}${t.sheet ? " / " + t.sheet : ""} · v${t.version}`),
    insights,
    el("details", { class: "how-read" },
      el("summary", {}, `How it was read${read ? ` (${read} note${read === 1 ? "" : "s"})` : ""}`),
      el("div", { class: "cols" }, t.columns.map((c) => `${c.name} (${c.type})`).join(", ")),
      t.notes.length ? el("ul", { class: "notes" }, t.notes.map((n) => el("li", { "data-note": n.kind }, n.text))) : null,
      t.excluded_rows ? el("div", { class: "muted" }, `${t.excluded_rows} row(s) kept out of the data (totals, footnotes…)`) : null),
    el("button", { type: "button", class: "preview-rows", onclick: () => showRows(t.name, 0, preview) }, "Preview"),
    t.layout ? layoutControls(t) : null,
    packControls(t),
    preview);
  loadInsights(t, insights);
  return card;
}

// Analysis packs: the pack's roles bound to this table's columns — proposed,
// shown, and saved only when the person confirms — then run as analyses.
function packControls(t) {
  const box = el("div", { class: "pack-box" });
  const buttons = (state.packs || []).map((p) =>
    el("button", { type: "button", class: "bind-pack", "data-pack": p.name, onclick: () => bindForm(t, p, box) }, `${p.title}…`));
  return el("details", { class: "packs" }, el("summary", {}, "Analysis packs"), ...buttons, box);
}

async function bindForm(t, p, box) {
  const r = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(t.name)}/packs/${p.name}`);
  const split = r.binding.split;
  const rows = r.roles.map((role) => {
    const input = el("input", { class: "role-columns", "data-role": role.role, size: "40", value: (r.binding.roles[role.role] || []).join(", "), "aria-label": role.role });
    // A role read from the column names (age groups of a wide export): shown, and used only while ticked.
    const fromNames = split && split.role === role.role
      ? el("input", { type: "checkbox", class: "role-split", checked: "" }) : null;
    const groups = fromNames ? el("label", { class: "split-groups" }, fromNames, " read from the column names: ",
      el("ul", {}, split.groups.map((g) => el("li", {}, el("b", {}, g.label), " — ",
        Object.entries(g.columns).map(([k, v]) => `${k}: ${v.join(" + ")}`).join("; "))))) : null;
    return { role, input, fromNames, row: el("div", { class: "role" },
      el("b", {}, role.role), role.optional ? " (optional)" : "", " — ", role.description, el("br"), input,
      role.candidates.length ? el("span", { class: "muted" }, ` could be: ${role.candidates.join(", ")}`) : null, groups) };
  });
  const status = el("span", { class: "muted" });
  const confirm = el("button", { type: "button", class: "confirm-pack" }, r.confirmed ? "Save and run again" : "Confirm and run");
  confirm.addEventListener("click", async () => {
    const roles = {};
    let useSplit = null;
    for (const { role, input, fromNames } of rows) {
      const cols = input.value.split(",").map((c) => c.trim()).filter(Boolean);
      if (cols.length) roles[role.role] = cols;
      else if (fromNames && fromNames.checked) useSplit = split;
    }
    status.textContent = "running…";
    try {
      const done = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(t.name)}/packs/${p.name}`, { method: "POST", body: JSON.stringify({ roles, split: useSplit }) });
      status.textContent = `✓ ${done.runs.length} analyses${done.skipped.length ? `; skipped: ${done.skipped.join("; ")}` : ""}`;
      status.className = "muted pack-done";
      await loadAnalyses();
    } catch (e) { status.textContent = e.message; status.className = "error"; }
  });
  box.replaceChildren(
    el("div", { class: "muted" }, r.confirmed ? "Bound: change a role's columns and save again." : "Proposed from the columns' names, labels and types — check each role, then confirm. Nothing is used until you do."),
    ...rows.map((x) => x.row), confirm, status);
}

// The table's findings (computed without a model): the top three, the rest on request.
async function loadInsights(t, box) {
  let ins;
  try { ins = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(t.name)}/insights`); }
  catch (e) { box.replaceChildren(el("span", { class: "error" }, "insights: " + e.message)); return; }
  if (ins.findings.length === 0) { box.replaceChildren(el("div", { class: "muted no-findings" }, "No problems found by the checks.")); return; }
  const list = el("ul", { class: "insight-list" }, ins.findings.slice(0, 3).map(insightItem));
  const rest = ins.findings.length - 3;
  const more = rest > 0 ? el("button", { type: "button", class: "more-insights", onclick: () => { list.append(...ins.findings.slice(3).map(insightItem)); more.remove(); } }, `${rest} more finding${rest === 1 ? "" : "s"}`) : null;
  box.replaceChildren(list, more, state.config.model ? summaryButton(t) : null);
}

// A model's summary of the findings: they quote values, so the server sends
// them only in privacy "full" (and says so otherwise); its numbers are checked.
function summaryButton(t) {
  const out = el("div", { class: "insight-summary muted" });
  const button = el("button", { type: "button", class: "summarise-insights" }, "Summarise with the model");
  button.addEventListener("click", async () => {
    out.textContent = "asking the model…";
    try {
      const s = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(t.name)}/insights/summary`, { method: "POST", body: JSON.stringify({ privacy: $("#privacy").value }) });
      out.className = "insight-summary answer-text";
      out.replaceChildren(el("div", {}, s.text), el("div", { class: "muted" }, `${s.model} · the numbers are the findings'`));
    } catch (e) { out.className = "insight-summary error"; out.textContent = e.message; }
  });
  return el("div", {}, button, out);
}

function insightItem(f) {
  const label = (state.config.insight_kinds.find((k) => k.kind === f.kind) || {}).label || f.kind;
  const chart = el("div", { class: "chart" });
  const open = el("details", {},
    el("summary", {}, "show"),
    highlight(f.sql, "sql"),
    el("button", { type: "button", class: "to-console", onclick: () => { $("#sql").value = f.sql; $("#sql-console").open = true; $("#sql").focus(); } }, "Open in the SQL console"),
    f.result && f.result.rows.length ? grid(f.result, { pageSize: 10 }) : null,
    f.chart ? chart : null);
  if (f.chart) open.addEventListener("toggle", () => {
    if (open.open && !chart.childElementCount && window.vegaEmbed) window.vegaEmbed(chart, f.chart, { actions: false }).catch(() => {});
  });
  return el("li", { class: "insight", "data-kind": f.kind }, el("b", {}, label + ": "), f.text, " ", open);
}

// How the table was read, and the corrections a person can make: the
// header's row, no header, split at a row, one table. The file is read
// again with the choice, which is kept for its later versions too.
function layoutControls(t) {
  const l = t.layout;
  const how = l.header === "auto" ? "found" : "chosen";
  const said = l.header_row ? `header on row ${l.header_row} (${how})` : `no header row (${how})`;
  const headerRow = el("input", { type: "number", min: "1", class: "header-row", value: l.header_row ?? "", "aria-label": "header row" });
  const splitRow = el("input", { type: "number", min: "1", class: "split-row", "aria-label": "split at row" });
  const status = el("span", { class: "layout-status muted" });
  const apply = async (change) => {
    status.textContent = "reading the file again…";
    try {
      const r = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(t.name)}/layout`, { method: "POST", body: JSON.stringify(change) });
      status.textContent = `✓ ${r.choice}: ${r.tables.join(", ")}`;
      await loadTables();
    } catch (e) { status.textContent = e.message; status.className = "layout-status error"; }
  };
  return el("details", { class: "layout" },
    el("summary", {}, `Read from ${l.range}, ${said}`),
    el("label", {}, "Header is row ", headerRow),
    el("button", { type: "button", class: "set-header", onclick: () => apply({ header: headerRow.value || "auto" }) }, "Apply"),
    el("button", { type: "button", class: "no-header", onclick: () => apply({ header: "none" }) }, "No header"),
    el("label", {}, " Split at row ", splitRow),
    el("button", { type: "button", class: "split", onclick: () => splitRow.value && apply({ split_at: [Number(splitRow.value)] }) }, "Split here"),
    t.part ? el("button", { type: "button", class: "one-table", onclick: () => apply({ one_table: true }) }, "This is one table") : null,
    el("button", { type: "button", class: "as-found", onclick: () => apply({ header: "auto", one_table: false, split_at: [], range: "" }) }, "As found"),
    status);
}

async function showRows(table, offset, box) {
  const limit = 20;
  const r = await api(`/api/workspaces/${state.workspace}/tables/${encodeURIComponent(table)}/rows?offset=${offset}&limit=${limit}`);
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", disabled: offset === 0 ? "" : null, onclick: () => showRows(table, Math.max(0, offset - limit), box) }, "‹ prev"),
    `rows ${r.total === 0 ? 0 : offset + 1}–${Math.min(offset + limit, r.total)} of ${r.total}`,
    el("button", { type: "button", disabled: offset + limit >= r.total ? "" : null, onclick: () => showRows(table, offset + limit, box) }, "next ›"));
  box.replaceChildren(grid({ columns: r.columns.map((name) => ({ name })), rows: r.rows }, { pageSize: limit }), pager);
}

$("#run-sql").addEventListener("click", async () => {
  const out = $("#sql-result");
  out.replaceChildren(el("span", { class: "muted" }, "running…"));
  try {
    const r = await api(`/api/workspaces/${state.workspace}/sql`, { method: "POST", body: JSON.stringify({ sql: $("#sql").value }) });
    out.replaceChildren(el("div", { class: "muted" }, `${r.rows} row(s)${r.truncated ? " (truncated)" : ""}`), grid(r.table));
  } catch (e) { out.replaceChildren(el("div", { class: "error" }, e.message)); }
});

// A sortable, paged table.
function grid(t, { pageSize = 25 } = {}) {
  const wrap = el("div", { class: "grid-wrap" });
  let rows = t.rows.slice();
  let page = 0;
  let sortCol = -1, asc = true;
  const render = () => {
    const pages = Math.max(1, Math.ceil(rows.length / pageSize));
    const head = el("tr", {}, t.columns.map((c, i) => el("th", { onclick: () => { asc = sortCol === i ? !asc : true; sortCol = i; sort(); render(); } },
      c.name, sortCol === i ? (asc ? " ▲" : " ▼") : "")));
    const body = rows.slice(page * pageSize, (page + 1) * pageSize).map((r) => el("tr", {}, r.map((v) => el("td", {}, v === null ? "" : typeof v === "object" ? JSON.stringify(v) : v))));
    const table = el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, body));
    const kids = [table];
    if (pages > 1) kids.push(el("div", { class: "pager" },
      el("button", { type: "button", disabled: page === 0 ? "" : null, onclick: () => { page--; render(); } }, "‹"),
      `page ${page + 1} of ${pages} (${rows.length} rows)`,
      el("button", { type: "button", disabled: page >= pages - 1 ? "" : null, onclick: () => { page++; render(); } }, "›")));
    wrap.replaceChildren(...kids);
  };
  const sort = () => {
    rows.sort((a, b) => {
      const x = a[sortCol], y = b[sortCol];
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      const r = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? r : -r;
    });
    page = 0;
  };
  render();
  return wrap;
}

// ---------------------------------------------------------------- conversations

async function loadConversations(want) {
  const list = await api(`/api/workspaces/${state.workspace}/conversations`);
  const sel = $("#conversation");
  sel.replaceChildren(...list.map((c) => el("option", { value: c.id }, c.title || "(new conversation)")));
  if (list.length === 0) {
    if (canEdit()) { await newConversation(); return; }
    $("#thread").replaceChildren(el("p", { class: "muted" }, "No conversations here yet."));
    return;
  }
  await openConversation(list.some((c) => c.id === want) ? want : list[0].id);
}
$("#conversation").addEventListener("change", (e) => openConversation(e.target.value));
$("#new-conversation").addEventListener("click", () => newConversation());

async function newConversation() {
  $("#send").disabled = true;
  const c = await api(`/api/workspaces/${state.workspace}/conversations`, { method: "POST", body: JSON.stringify({}) });
  $("#conversation").prepend(el("option", { value: c.id }, "(new conversation)"));
  $("#conversation").value = c.id;
  await openConversation(c.id);
}

async function openConversation(id) {
  $("#send").disabled = true;
  if (state.source) state.source.close();
  state.conversation = id;
  $("#export-report").href = `/api/conversations/${id}/export/html`;
  $("#export-notebook").href = `/api/conversations/${id}/export/ipynb`;
  state.lastSeq = 0;
  state.questions = new Map();
  $("#conversation").value = id;
  setHash();
  $("#thread").replaceChildren();
  const c = await api(`/api/conversations/${id}`);
  // Another conversation was opened while this one loaded (the page's first
  // one, say, as "New conversation" is clicked): its events stay out.
  if (state.conversation !== id) return;
  for (const e of c.events) onEvent(e);
  setRunning(c.running);
  listen();
}

function listen() {
  const id = state.conversation;
  const src = new EventSource(`/api/conversations/${id}/events?after=${state.lastSeq}`);
  src.onmessage = (m) => { if (state.conversation === id) onEvent(JSON.parse(m.data)); };
  state.source = src;
}

$("#ask").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const question = $("#question").value.trim();
  if (!question) return;
  try {
    setRunning(true);
    await api(`/api/conversations/${state.conversation}/questions`, { method: "POST",
      body: JSON.stringify({ question, privacy: $("#privacy").value, model: $("#model").value || null, tables: [...state.scope] }) });
    $("#question").value = "";
    const opt = $(`#conversation option[value="${state.conversation}"]`);
    if (opt && opt.textContent === "(new conversation)") opt.textContent = question.slice(0, 80);
  } catch (e) {
    setRunning(false);
    $("#thread").append(el("div", { class: "error", "data-kind": "ask-error" }, e.message));
  }
});
// Questions about the tables ticked on their cards (every table when none is).
function showScope() {
  $("#scope").textContent = state.scope.size ? `Questions are about: ${[...state.scope].join(", ")}` : "";
}

function ask(question) {
  $("#question").value = question;
  $("#ask").requestSubmit();
}

$("#question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#ask").requestSubmit(); } });
$("#stop").addEventListener("click", () => api(`/api/conversations/${state.conversation}/cancel`, { method: "POST" }));

function setRunning(on) {
  state.running = on;
  $("#stop").hidden = !on;
  $("#send").disabled = on;
}

// ---------------------------------------------------------------- events

function questionBox(n) {
  let q = state.questions.get(n);
  if (!q) {
    const steps = el("div", { class: "steps" });
    const typing = el("div", { class: "typing" });
    const box = el("div", { class: "question", "data-question": n }, el("div", { class: "q" }), steps, typing);
    $("#thread").append(box);
    q = { box, steps, typing };
    state.questions.set(n, q);
  }
  return q;
}

function step(q, kind, ...kids) {
  q.typing.textContent = "";
  const s = el("div", { class: "step", "data-kind": kind }, ...kids);
  q.steps.append(s);
  s.scrollIntoView({ block: "nearest" });
  return s;
}

function onEvent({ seq, question, event: e }) {
  if (seq > 0) { if (seq <= state.lastSeq) return; state.lastSeq = seq; }
  const q = questionBox(question);
  switch (e.type) {
    case "started":
      q.box.querySelector(".q").textContent = e.question;
      step(q, "started", el("span", { class: "muted" }, `${e.model} · privacy ${e.privacy}`));
      if (seq > 0) setRunning(true);
      break;
    case "context_built": step(q, "context_built", `Context: ${e.tables.length} table(s), ${e.columns} columns`); break;
    case "llm_delta": q.typing.textContent += e.text; break;
    case "plan": step(q, "plan", el("b", {}, "Plan: "), e.text); break;
    case "code_proposed": step(q, "code_proposed", el("div", { class: "muted" }, `Step ${e.step}, attempt ${e.attempt} · ${e.language}`), highlight(e.code, e.language)); break;
    case "refused": step(q, "refused", "Refused: ", e.message); break;
    case "failed": step(q, "failed", "Failed: ", e.message); break;
    case "retrying": step(q, "retrying", `Asking the model for a fix (attempt ${e.attempt + 1} of ${e.max_attempts})…`); break;
    case "output": step(q, "output", e.text ? el("pre", { class: "output" }, e.text) : null, figures(e.figures)); break;
    case "executed": step(q, "executed", `✓ ${e.rows} row(s)${e.truncated ? " (truncated)" : ""} in ${e.elapsed_ms} ms`); break;
    case "empty_filter": step(q, "empty_filter", `No row has ${e.column} = '${e.value}'${e.closest.length ? "; closest: " + e.closest.join(", ") : ""}`); break;
    case "cached": step(q, "cached", "Stored answer (same question, data, model and privacy)"); break;
    case "clarify":
      step(q, "clarify", el("div", { class: "clarify" }, el("div", { class: "answer-text" }, e.question),
        e.options.map((o) => el("button", { type: "button", class: "choice", onclick: () => ask(o) }, o)),
        el("div", { class: "muted" }, "Choose one, or write your own answer below.")));
      break;
    case "answer": renderAnswer(q, question, e.answer); break;
    case "cancelled": step(q, "cancelled", "Stopped."); break;
    case "done":
      q.typing.textContent = "";
      if (e.interrupted) step(q, "interrupted", "The server stopped during this question.");
      setRunning(false);
      break;
    default: break;
  }
}

function figures(list) {
  if (!list || list.length === 0) return null;
  return el("div", { class: "figure" }, list.map((b64) => el("img", { alt: "figure", src: "data:image/png;base64," + b64 })));
}

function renderAnswer(q, n, a) {
  const chart = el("div", { class: "chart" });
  const box = el("div", { class: "answer", "data-ok": a.ok ? "true" : "false" },
    el("div", { class: "answer-text" }, a.answer),
    a.table ? grid(a.table) : null,
    a.chart ? chart : null,
    a.output && !a.table ? el("pre", { class: "output" }, a.output) : null,
    figures(a.figures),
    a.code && state.shared ? el("details", { class: "answer-code" }, el("summary", {}, "Code"), highlight(a.code, a.language)) : null,
    canEdit() && a.ok && a.language === "sql" && a.code ? markRight(a) : null,
    canEdit() && a.ok && (a.language === "sql" || a.language === "python") && a.code ? saveAsAnalysis(n, a) : null,
    state.shared ? null : el("div", { class: "exports" }, "Export:",
      state.config.export_formats.filter((f) => a.table || !f.needs_table).map((f) =>
        el("a", { href: `/api/conversations/${state.conversation}/questions/${n}/export/${f.format}`, download: "" }, f.label)),
      isOwner() ? shareButton({ kind: "answer", conversation: state.conversation, question: n }) : null),
    el("div", { class: "provenance" }, `${a.provenance.model}${a.provenance.engine ? ` · ${a.provenance.engine}` : ""} · privacy ${a.provenance.privacy} · ${a.attempts} attempt(s) · ${a.provenance.total_ms} ms · data ${a.provenance.data_versions.map((d) => `${d.table} v${d.version}`).join(", ")}${a.cached ? " · stored answer" : ""}`));
  step(q, "answer", box);
  if (a.chart && window.vegaEmbed) {
    window.vegaEmbed(chart, a.chart, { actions: { export: true, source: false, compiled: false, editor: false } })
      .catch((err) => chart.replaceChildren(el("div", { class: "error" }, "chart: " + err.message)));
  }
}

// The owner's "Share" by an answer or an analysis: a link to that alone.
function shareButton(what) {
  const b = el("button", { type: "button", class: `share-${what.kind}` }, "Share");
  b.addEventListener("click", () => { b.after(shareForm(what)); b.disabled = true; });
  return b;
}

// An answer a person checks as right becomes a verified example for similar questions.
function markRight(a) {
  const b = el("button", { type: "button", class: "mark-right", title: "Use this query as the verified answer to this question" }, "✓ Mark as right");
  b.addEventListener("click", async () => {
    try {
      await api(`/api/workspaces/${state.workspace}/definitions`, { method: "POST", body: JSON.stringify({ kind: "verified", question: a.question, sql: a.code }) });
      b.textContent = "✓ Verified"; b.disabled = true;
      await loadDefinitions();
    } catch (e) { b.textContent = e.message; }
  });
  return b;
}

// ---------------------------------------------------------------- analyses

// Save an answer as an analysis: the literals its query compares columns with
// are offered as parameters; the person ticks those to keep.
function saveAsAnalysis(n, a) {
  const conversation = state.conversation;
  const box = el("span", { class: "save-analysis" });
  const open = el("button", { type: "button", class: "save-as-analysis" }, "Save as analysis");
  open.addEventListener("click", async () => {
    let p;
    try { p = await api(`/api/conversations/${conversation}/questions/${n}/analysis`); }
    catch (e) { box.append(el("span", { class: "error" }, e.message)); return; }
    const name = el("input", { class: "analysis-name", value: a.question.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 40) || "analysis", "aria-label": "analysis name" });
    const ticks = p.params.map((x) => {
      const cb = el("input", { type: "checkbox", class: "param-pick", checked: "", "data-column": x.column });
      const rename = el("input", { class: "param-name", value: x.name, size: "10", "aria-label": `parameter for ${x.column}` });
      return { cb, rename, x, label: el("label", {}, cb, ` ${x.column} = ${JSON.stringify(x.default)} as $`, rename) };
    });
    const status = el("span", { class: "muted" });
    const save = el("button", { type: "button", class: "save-analysis-confirm" }, "Save");
    save.addEventListener("click", async () => {
      try {
        const params = ticks.filter((t) => t.cb.checked).map((t) => ({ column: t.x.column, name: t.rename.value }));
        await api(`/api/conversations/${conversation}/questions/${n}/analysis`, { method: "POST", body: JSON.stringify({ name: name.value, params }) });
        box.replaceChildren(el("span", { class: "muted" }, `✓ saved as ${name.value}`));
        await loadAnalyses();
      } catch (e) { status.textContent = e.message; status.className = "error"; }
    });
    box.replaceChildren(el("label", {}, "Name ", name), ...ticks.map((t) => t.label), save, status);
  });
  box.append(open);
  return box;
}

async function loadAnalyses() {
  if (!state.workspace) return;
  const list = await api(`/api/workspaces/${state.workspace}/analyses`);
  $("#analyses-count").textContent = list.length ? `(${list.length})` : "";
  $("#analysis-list").replaceChildren(...(list.length ? list.map(analysisCard) : [el("p", { class: "muted" }, "None yet: save an answer with “Save as analysis”.")]));
}

function runView(run) {
  const chart = el("div", { class: "chart" });
  const view = el("div", { class: "analysis-run", "data-ok": run.ok ? "true" : "false" },
    el("div", { class: "muted" }, `Run ${run.number} · ${run.trigger}`),
    el("div", { class: run.ok ? "answer-text" : "error" }, run.narrative),
    run.comparison.length ? el("ul", { class: "comparison" }, run.comparison.map((c) => el("li", {}, c))) : null,
    run.table ? grid(run.table, { pageSize: 10 }) : null,
    run.output && run.table ? el("pre", { class: "output" }, run.output) : null,
    ...(run.figures || []).map((f) => el("img", { class: "figure", alt: "figure drawn by the analysis", src: `data:image/png;base64,${f}` })),
    run.chart ? chart : null);
  if (run.chart && window.vegaEmbed) setTimeout(() => window.vegaEmbed(chart, run.chart, { actions: false }).catch(() => {}), 0);
  return view;
}

function analysisCard({ analysis: a, runs }) {
  const last = runs[runs.length - 1];
  const current = (p) => (last && (last.params.find((x) => x.name === p.name) || {}).value) ?? p.default;
  const inputs = a.params.map((p) => el("input", { name: p.name, value: String(current(p)), size: "12", "aria-label": p.name }));
  const result = el("div", { class: "analysis-result" }, last ? runView(last) : null);
  const history = el("details", { class: "history" }, el("summary", {}, `History (${runs.length} run${runs.length === 1 ? "" : "s"})`),
    el("ul", {}, runs.slice().reverse().map((r) => el("li", {}, `Run ${r.number} · ${r.trigger}: `, r.narrative))));
  const run = el("button", { type: "button", class: "run-analysis" }, "Run");
  run.addEventListener("click", async () => {
    const params = Object.fromEntries(inputs.map((i) => [i.name, i.value]));
    try {
      await api(`/api/workspaces/${state.workspace}/analyses/${encodeURIComponent(a.name)}/run`, { method: "POST", body: JSON.stringify({ params }) });
      await loadAnalyses();
    } catch (e) { result.replaceChildren(el("div", { class: "error" }, e.message)); }
  });
  const steps = [...(a.before || []), a.code];
  const code = el("details", { class: "analysis-code" }, el("summary", {}, `Code (${a.language || "sql"}${steps.length > 1 ? `, ${steps.length} steps` : ""})`),
    ...steps.map((c) => highlight(c, a.language || "sql")));
  return el("div", { class: "analysis", "data-analysis": a.name },
    el("h4", {}, a.name, " ", el("span", { class: "muted" }, a.question)),
    el("div", { class: "row" }, ...inputs.map((i) => el("label", {}, (a.language === "python" ? "" : "$") + i.name + " ", i)), run,
      isOwner() && last ? shareButton({ kind: "analysis", analysis: a.name }) : null),
    result, code, history);
}

// ---------------------------------------------------------------- definitions

// The fields each kind of definition takes (the kinds come from /api/config).
const DEFINITION_FIELDS = {
  metric: ["name", "expr", "table", "description"],
  term: ["name", "meaning"],
  column: ["table", "column", "description"],
  synonym: ["word", "value", "table", "column"],
  verified: ["question", "sql"],
};

async function loadDefinitions() {
  const d = await api(`/api/workspaces/${state.workspace}/definitions`);
  $("#definitions-count").textContent = d.lines.length ? `(${d.lines.length})` : "";
  $("#definition-list").replaceChildren(...d.lines.map((l) => el("li", { "data-kind": l.kind }, l.line, " ",
    el("button", { type: "button", class: "remove-definition", onclick: async () => {
      await api(`/api/workspaces/${state.workspace}/definitions/${l.kind}/${encodeURIComponent(l.key)}`, { method: "DELETE" });
      await loadDefinitions();
    } }, "Remove"))));
}

function definitionFields() {
  const kind = $("#definition-kind").value;
  $("#definition-fields").replaceChildren(...(DEFINITION_FIELDS[kind] || []).map((f) =>
    el("input", { name: f, placeholder: f, "aria-label": f, size: f === "expr" || f === "sql" || f === "description" || f === "meaning" ? "28" : "12" })));
}

function setupDefinitions() {
  const kinds = $("#definition-kind");
  kinds.replaceChildren(...state.config.definition_kinds.map((k) => el("option", { value: k.kind, title: k.help }, k.kind)));
  kinds.addEventListener("change", definitionFields);
  definitionFields();
  $("#definition-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { kind: kinds.value };
    for (const i of $("#definition-fields").querySelectorAll("input")) body[i.name] = i.value.trim();
    const status = $("#definition-status");
    try {
      await api(`/api/workspaces/${state.workspace}/definitions`, { method: "POST", body: JSON.stringify(body) });
      status.textContent = "✓ saved"; status.className = "muted";
      definitionFields();
      await loadDefinitions();
    } catch (e) { status.textContent = e.message; status.className = "error"; }
  });
}

// ---------------------------------------------------------------- live databases

async function loadConnections() {
  const list = await api(`/api/workspaces/${state.workspace}/connections`);
  $("#connections-count").textContent = list.length ? `(${list.length})` : "";
  $("#connection-list").replaceChildren(...list.map((c) => el("li", { "data-connection": c.name },
    el("strong", {}, c.name), ` ${c.kind} · ${c.url}`, c.password_env ? ` · password from $${c.password_env}` : "",
    el("div", { class: "muted connection-tables" }, c.tables.length ? c.tables.join(", ") : "no tables"),
    c.tables.length ? snapshotForm(c) : null,
    el("button", { type: "button", class: "remove-connection", onclick: async () => {
      await api(`/api/workspaces/${state.workspace}/connections/${encodeURIComponent(c.name)}`, { method: "DELETE" });
      await loadConnections();
    } }, "Remove"))));
}

// Copy a live table (or the rows a condition picks) into the catalog as a
// versioned table, so answers over it can be reproduced after the database changes.
function snapshotForm(c) {
  const table = el("select", { class: "snapshot-table", "aria-label": "table to snapshot" }, c.tables.map((t) => el("option", { value: t }, t)));
  const where = el("input", { class: "snapshot-where", placeholder: "only rows where … (optional)", "aria-label": "snapshot condition", size: "22" });
  const status = el("span", { class: "muted snapshot-status" });
  const most = el("input", { class: "snapshot-max", type: "number", min: "1", step: "1", value: String(state.config.snapshot_max_rows), "aria-label": "most rows the snapshot may hold", title: "most rows (a table with more writes nothing)", style: "width: 9em" });
  const go = el("button", { type: "button", class: "snapshot" }, "Snapshot");
  go.addEventListener("click", async () => {
    status.textContent = "copying…"; status.className = "muted snapshot-status";
    try {
      const s = await api(`/api/workspaces/${state.workspace}/snapshots`, { method: "POST", body: JSON.stringify({ table: table.value, where: where.value.trim() || null, max_rows: Number(most.value) || null }) });
      status.textContent = `✓ ${s.rows} rows → table ${s.table}`;
      await loadTables();
    } catch (e) { status.textContent = e.message; status.className = "error snapshot-status"; }
  });
  return el("div", { class: "snapshot-form" }, table, " ", where, " at most ", most, " rows ", go, " ", status);
}

function setupConnections() {
  $("#connection-url").placeholder = state.config.source_kinds.map((k) => k.example).join("  or  ");
  $("#connection-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target, status = $("#connection-status");
    const field = (n) => f.elements.namedItem(n).value.trim();
    const body = { name: field("name"), url: field("url"), password_env: field("password_env") || null };
    status.textContent = "connecting…"; status.className = "muted";
    try {
      await api(`/api/workspaces/${state.workspace}/connections`, { method: "POST", body: JSON.stringify(body) });
      status.textContent = `✓ connected ${body.name}`;
      f.reset();
      await loadConnections();
    } catch (e) { status.textContent = e.message; status.className = "error"; }
  });
}

// Minimal highlighting of the model's code: keywords, strings, numbers, comments.
const KEYWORDS = {
  sql: "select from where group by order having limit offset join left right inner outer on as and or not in is null case when then else end with distinct union all count sum avg min max cast over partition desc asc between like",
  python: "import from as def return if elif else for while in not and or is None True False lambda with try except finally class print",
};
function highlight(code, lang) {
  const words = new Set((KEYWORDS[lang] || KEYWORDS.sql).split(" "));
  const pre = el("pre", { class: "code", "data-language": lang });
  const re = /(--[^\n]*|#[^\n]*|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\b\d+(?:\.\d+)?\b|\b[A-Za-z_][A-Za-z0-9_]*\b)/g;
  let last = 0;
  for (const m of code.matchAll(re)) {
    pre.append(code.slice(last, m.index));
    const t = m[0];
    let cls = null;
    if ((lang === "sql" && t.startsWith("--")) || (lang === "python" && t.startsWith("#"))) cls = "cm";
    else if (t.startsWith("'") || t.startsWith('"')) cls = "str";
    else if (/^\d/.test(t)) cls = "num";
    else if (words.has(lang === "sql" ? t.toLowerCase() : t)) cls = "kw";
    pre.append(cls ? el("span", { class: cls }, t) : t);
    last = m.index + t.length;
  }
  pre.append(code.slice(last));
  return pre;
}

if (location.pathname === "/shared") startShared(); else start();
