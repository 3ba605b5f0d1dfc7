// Working together: what the caller's role lets the page offer, the
// workspace's members, its share links and its audit trail (owners), and
// the read-only page a share link opens. Loaded before app.js, whose
// helpers ($, el, api, state, renderAnswer) these functions call.
"use strict";

// The caller's role in the open workspace (from /api/workspaces).
function role() {
  const w = (state.wsList || []).find((x) => x.id === state.workspace);
  return w ? w.role : "owner";
}
const canEdit = () => !state.shared && role() !== "viewer";
const isOwner = () => !state.shared && role() === "owner";

// Show what the role allows, hide what it does not (the server checks anyway).
function applyRole() {
  const w = (state.wsList || []).find((x) => x.id === state.workspace) || {};
  const viewer = role() === "viewer";
  $("#drop").hidden = viewer;
  $("#ask").hidden = viewer;
  $("#viewer-note").hidden = !viewer;
  $("#new-conversation").hidden = viewer;
  $("#definition-form").hidden = viewer;
  $("#connection-form").hidden = !isOwner();
  $("#sql-console").hidden = viewer && !w.viewers_sql;
  $("#role").textContent = role();
  document.body.classList.remove("role-viewer", "role-editor", "role-owner");
  document.body.classList.add(`role-${role()}`);
  for (const id of ["#shares", "#audit", "#member-form", "#share-conversation", "#viewers-sql-label"]) $(id).hidden = !isOwner();
  loadMembers();
  if (isOwner()) { loadShares(); loadAudit(); }
}

// ---------------------------------------------------------------- members

async function loadMembers() {
  const m = await api(`/api/workspaces/${state.workspace}/members`);
  $("#members-count").textContent = `(${m.members.length})`;
  $("#viewers-sql").checked = m.viewers_sql;
  const choose = (mem) => {
    const sel = el("select", { "aria-label": `role of ${mem.name}`, "data-member": mem.name },
      m.roles.filter((r) => r.role !== "owner").map((r) => el("option", { value: r.role, title: r.help }, r.role)));
    sel.value = mem.role;
    sel.addEventListener("change", () => setMember(mem.name, sel.value));
    return sel;
  };
  $("#member-list").replaceChildren(...m.members.map((mem) => el("li", { "data-member": mem.name }, mem.name, " ",
    mem.role === "owner" || !isOwner() ? el("span", { class: "muted" }, mem.role) : choose(mem),
    mem.role !== "owner" && isOwner()
      ? el("button", { type: "button", onclick: () => removeMember(mem.name) }, "Remove") : null)));
  $("#member-role").replaceChildren(...m.roles.filter((r) => r.role !== "owner").map((r) => el("option", { value: r.role, title: r.help }, r.role)));
}

async function setMember(name, role) {
  try {
    await api(`/api/workspaces/${state.workspace}/members`, { method: "POST", body: JSON.stringify({ name, role }) });
    $("#member-status").textContent = `${name} is ${role === "editor" ? "an" : "a"} ${role}.`;
  } catch (e) { $("#member-status").textContent = e.message; }
  loadMembers(); loadAudit();
}

async function removeMember(name) {
  try { await api(`/api/workspaces/${state.workspace}/members/${encodeURIComponent(name)}`, { method: "DELETE" }); }
  catch (e) { $("#member-status").textContent = e.message; }
  loadMembers(); loadAudit();
}

function setupTeam() {
  $("#member-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    setMember(String(f.get("name")).trim(), f.get("role"));
    ev.target.reset();
  });
  $("#viewers-sql").addEventListener("change", async (ev) => {
    await api(`/api/workspaces/${state.workspace}/settings`, { method: "POST", body: JSON.stringify({ viewers_sql: ev.target.checked }) });
    const w = state.wsList.find((x) => x.id === state.workspace);
    if (w) w.viewers_sql = ev.target.checked;
    loadAudit();
  });
  $("#share-conversation").addEventListener("click", (ev) =>
    ev.target.after(shareForm({ kind: "conversation", conversation: state.conversation })));
}

// ---------------------------------------------------------------- share links

// A small form: show the code or not, how long the link opens; then the link.
function shareForm(what) {
  const code = el("input", { type: "checkbox", checked: "", name: "show_code" });
  const days = el("input", { type: "number", min: "1", max: "3650", placeholder: "never", size: "5", name: "expires_days", "aria-label": "days the link opens" });
  const out = el("span", { class: "share-link" });
  const make = el("button", { type: "submit" }, "Make link");
  const form = el("form", { class: "share-form" }, el("label", {}, code, " show code"),
    el("label", {}, "expires after ", days, " days"), make, out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const body = { ...what, show_code: code.checked, expires_days: days.value ? Number(days.value) : null };
      const r = await api(`/api/workspaces/${state.workspace}/shares`, { method: "POST", body: JSON.stringify(body) });
      const link = r.link.startsWith("/") ? location.origin + r.link : r.link;
      out.replaceChildren(el("input", { readonly: "", value: link, size: "40", class: "share-url", "aria-label": "share link" }),
        el("span", { class: "muted" }, " shown once: copy it now"));
      make.disabled = true;
      loadShares(); loadAudit();
    } catch (e) { out.replaceChildren(el("span", { class: "error" }, e.message)); }
  });
  return form;
}

async function loadShares() {
  const list = await api(`/api/workspaces/${state.workspace}/shares`);
  const open = list.filter((s) => s.open);
  $("#shares-count").textContent = open.length ? `(${open.length} open)` : "";
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "when revoked");
  $("#share-list").replaceChildren(...(list.length ? list.map((s) => el("li", { "data-share": s.id, "data-open": String(s.open) },
    `${s.kind} ${s.target}${s.question ? ` question ${s.question}` : ""} · ${s.show_code ? "with" : "without"} code · by ${s.created_by} ${s.created_at} · `,
    s.revoked ? "revoked" : s.open ? `ends ${when(s.expires_unix)} ` : "expired",
    s.open ? el("button", { type: "button", onclick: async () => { await api(`/api/workspaces/${state.workspace}/shares/${s.id}`, { method: "DELETE" }); loadShares(); loadAudit(); } }, "Revoke") : null))
    : [el("li", { class: "muted" }, "No links yet: “Share” by a conversation or an answer makes one.")]));
}

// ---------------------------------------------------------------- audit trail

async function loadAudit() {
  if (!isOwner()) return;
  const log = await api(`/api/workspaces/${state.workspace}/audit`);
  $("#audit-csv").href = `/api/workspaces/${state.workspace}/audit?format=csv`;
  const rows = log.slice(-200).reverse();
  $("#audit-list").replaceChildren(el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["when", "who", "did", "what"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((e) => el("tr", { "data-action": e.action }, el("td", {}, e.at), el("td", {}, e.user), el("td", {}, e.action), el("td", {}, e.target))))));
}

// ---------------------------------------------------------------- the shared page

// `/shared#TOKEN`: the token stays in the fragment (never sent to a server)
// and goes to /api/shared in a header.
async function startShared() {
  const token = location.hash.slice(1);
  state.shared = { token };
  document.body.classList.add("shared");
  $("#app").hidden = false;
  const r = await fetch("/api/shared", { headers: { "x-quarry-share": token } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("#thread").replaceChildren(el("p", { class: "error", "data-kind": "share-error" }, body.error || `${r.status}`)); return; }
  state.config = { export_formats: body.export_formats };
  $("#shared-title").replaceChildren(el("h2", {}, body.title), el("div", { class: "exports" }, "Export:",
    body.export_formats.filter((f) => body.answers.some((a) => a.table) || !f.needs_table).map(sharedExport)));
  $("#shared-title").hidden = false;
  body.answers.forEach((a, i) => {
    const q = questionBox(i + 1);
    q.box.querySelector(".q").textContent = a.question;
    renderAnswer(q, i + 1, a);
  });
  if (body.answers.length === 0) $("#thread").append(el("p", { class: "muted" }, "Nothing answered yet."));
}

// A shared object's export, fetched with the token in its header.
function sharedExport(f) {
  const a = el("a", { href: "#", "data-format": f.format }, f.label);
  a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const r = await fetch(`/api/shared/export/${f.format}`, { headers: { "x-quarry-share": state.shared.token } });
    if (!r.ok) { a.textContent = `${f.label}: ${(await r.json().catch(() => ({}))).error || r.status}`; return; }
    const url = URL.createObjectURL(await r.blob());
    const save = el("a", { href: url, download: `quarry-shared.${f.format}` });
    document.body.append(save); save.click(); save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return a;
}
