// Senningen's web UI: the alert queue, alert detail and agents, over the collector's REST API
// (/api/v1). No framework and no build step: the collector serves these files as they are.
// Every value from the API reaches the page through textContent, never as HTML.

const API = "/api/v1";
const POLL_MS = 5000;
const SEVERITY_NAMES = { 1: "critical", 2: "high", 3: "medium", 4: "low" };

const state = {
  alerts: [],        // as the API returned them, newest first
  selected: -1,      // index into alerts, -1 for none
  seen: new Set(),   // alert ids already shown, to mark new arrivals
  timer: null,
  view: "alerts",
  user: null,        // {user, role, permissions} once logged in
  triage: {},        // alert id -> {status, assignee}, beside the alerts
  nextCursor: null,  // the list's next_cursor: more alerts behind the last one shown
};

const STATUSES = ["new", "in_progress", "escalated", "false_positive", "resolved"];

function triageText(t) {
  if (!t) return "";
  return t.assignee ? `${t.status} · ${t.assignee}` : t.status;
}

// --- small DOM helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function severityBadge(sev) {
  const name = SEVERITY_NAMES[sev] || "unknown";
  return el("span", { class: `sev sev-${sev}`, title: name, "aria-label": `severity ${sev} ${name}` }, String(sev));
}

function setStatus(id, text, bad = false) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.classList.toggle("bad", bad);
}

// --- API -----------------------------------------------------------------------------------

async function getJson(path, init = {}) {
  const response = await fetch(API + path, {
    ...init, headers: { Accept: "application/json", ...(init.headers || {}) },
  });
  // Flow ids are 64-bit and JavaScript numbers hold 53 bits: they are read as strings, or the
  // page would show a neighbouring flow's id.
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text.replace(/"flow_id":(\d+)/g, '"flow_id":"$1"'));
  } catch {
    body = null;
  }
  if (response.status === 401 && path !== "/login") {
    // The session ended (expired, logged out elsewhere, account disabled): log in again.
    showLogin("Your session has ended; log in again.");
  }
  if (!response.ok) {
    // RFC 7807 problem documents say what was wrong in "detail".
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    throw new Error(detail);
  }
  return body;
}

// datetime-local values are read as UTC, the time zone every timestamp on the page is in.
function toRfc3339(local) {
  if (!local) return null;
  const withSeconds = local.length === 16 ? `${local}:00` : local;
  return `${withSeconds}Z`;
}

function alertQuery() {
  const form = document.getElementById("filters");
  const params = new URLSearchParams();
  const sev = [...form.querySelectorAll("input[name=severity]:checked")].map((i) => i.value);
  if (sev.length) params.set("severity", sev.join(","));
  const agent = form.elements.agent.value.trim();
  if (agent) params.set("agent", agent);
  if (form.elements.status.value) params.set("status", form.elements.status.value);
  const assignee = form.elements.assignee.value.trim();
  if (assignee) params.set("assignee", assignee);
  listFilters(form, params);
  const since = toRfc3339(form.elements.since.value);
  if (since) params.set("since", since);
  const until = toRfc3339(form.elements.until.value);
  if (until) params.set("until", until);
  params.set("limit", form.elements.limit.value);
  return params;
}

// --- list filters, more pages, exports ----------------------------------------------------

// The rule, address/CIDR and free-text filters of GET /api/v1/alerts.
function listFilters(form, params) {
  for (const name of ["rule", "ip", "q"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
}

// The export links carry the filters shown (not the page size: an export has every match).
function updateExports() {
  const params = alertQuery();
  params.delete("limit");
  for (const format of ["eve", "csv"]) {
    params.set("format", format);
    document.getElementById(`export-${format}`).href = `${API}/alerts/export?${params}`;
  }
}

function showMore(cursor) {
  state.nextCursor = cursor || null;
  document.getElementById("load-more").hidden = !state.nextCursor;
}

// The next page behind the last alert shown. Live updates would replace the extended queue
// with the newest page again, so they pause while older alerts are shown.
async function loadMore() {
  if (!state.nextCursor) return;
  const live = document.getElementById("live");
  if (live.checked) {
    live.checked = false;
    schedule();
  }
  try {
    const params = alertQuery();
    params.set("cursor", state.nextCursor);
    const body = await getJson(`/alerts?${params}`);
    state.alerts = state.alerts.concat(body.alerts);
    Object.assign(state.triage, body.triage || {});
    renderAlerts();
    showMore(body.next_cursor);
    const n = state.alerts.length;
    setStatus("alerts-status", `${n} alert${n === 1 ? "" : "s"} shown${state.nextCursor ? ", more to load" : ", all of them"}; live updates paused.`);
  } catch (e) {
    setStatus("alerts-status", `More alerts could not be loaded: ${e.message}`, true);
  }
}

// --- alerts --------------------------------------------------------------------------------

function flowText(a) {
  if (a.file) return a.file.path;
  if (a.src_ip) return `${a.src_ip}:${a.src_port ?? ""} → ${a.dest_ip}:${a.dest_port ?? ""} ${a.proto || ""}`;
  return "";
}

function shortTime(ts) {
  // "2026-01-15T09:00:00.001000000Z" -> "2026-01-15 09:00:00.001"
  return ts.replace("T", " ").replace(/(\.\d{3})\d*Z$/, "$1").replace(/Z$/, "");
}

function renderAlerts() {
  const tbody = document.querySelector("#alerts tbody");
  const rows = state.alerts.map((a, i) => {
    const tr = el("tr", { "data-id": a.alert.id, "aria-selected": String(i === state.selected), tabindex: "-1" },
      el("td", { text: shortTime(a.timestamp) }),
      el("td", {}, severityBadge(a.alert.severity)),
      el("td", { class: "sig", text: a.alert.signature }),
      el("td", { text: a.alert.source }),
      el("td", { text: flowText(a) }),
      el("td", { text: a.agent ? a.agent.id : "" }),
      el("td", { class: "triage", text: triageText(state.triage[a.alert.id]) }));
    if (!state.seen.has(a.alert.id)) {
      if (state.seen.size) tr.classList.add("new");  // not on the first load
    }
    tr.addEventListener("click", () => select(i, true));
    return tr;
  });
  tbody.replaceChildren(...rows);
  for (const a of state.alerts) state.seen.add(a.alert.id);
  renderChart();
}

async function loadAlerts() {
  try {
    const selectedId = state.selected >= 0 ? state.alerts[state.selected]?.alert.id : null;
    const body = await getJson(`/alerts?${alertQuery()}`);
    state.alerts = body.alerts.filter(inGroupFocus);
    state.triage = body.triage || {};
    state.selected = selectedId ? state.alerts.findIndex((a) => a.alert.id === selectedId) : -1;
    renderAlerts();
    showMore(body.next_cursor);
    updateExports();
    const n = state.alerts.length;
    setStatus("alerts-status", n === 0 ? "No alerts match." : `${n} alert${n === 1 ? "" : "s"}, newest first.`);
    if (state.selected < 0) closeDetail();
  } catch (e) {
    setStatus("alerts-status", `Alerts could not be loaded: ${e.message}`, true);
  }
}

function select(i, open) {
  if (!state.alerts.length) return;
  state.selected = Math.max(0, Math.min(i, state.alerts.length - 1));
  const rows = document.querySelectorAll("#alerts tbody tr");
  rows.forEach((r, j) => r.setAttribute("aria-selected", String(j === state.selected)));
  const row = rows[state.selected];
  row.focus({ preventScroll: true });
  row.scrollIntoView({ block: "nearest" });
  if (open) openDetail(state.alerts[state.selected]);
}

function dl(pairs) {
  const list = el("dl");
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    list.append(el("dt", { text: k }), el("dd", { text: Array.isArray(v) ? v.join(", ") : String(v) }));
  }
  return list;
}

function openDetail(a) {
  const panel = document.getElementById("detail");
  const parts = [
    el("h3", {}, severityBadge(a.alert.severity), " ", a.alert.signature),
    dl([["time", a.timestamp], ["alert id", a.alert.id], ["category", a.alert.category],
        ["source", a.alert.source], ["rule pack", a.alert.pack], ["kind", a.alert.kind],
        ["agent", a.agent && a.agent.id]]),
  ];
  if (a.src_ip) {
    parts.push(el("h4", { text: "Network" }), dl([
      ["source", `${a.src_ip}:${a.src_port ?? ""}`], ["destination", `${a.dest_ip}:${a.dest_port ?? ""}`],
      ["protocol", a.proto], ["application", a.app_proto], ["flow id", a.flow_id]]));
  }
  if (a.file) {
    parts.push(el("h4", { text: "File" }), dl([
      ["path", a.file.path], ["size", a.file.size], ["sha256", a.file.sha256],
      ["sha1", a.file.sha1], ["md5", a.file.md5]]));
  }
  if (a.intel) {
    parts.push(el("h4", { text: "Intel" }), dl([
      ["indicator", a.intel.indicator], ["type", a.intel.indicator_type],
      ["seen where", a.intel.where], ["sources", a.intel.sources]]));
  }
  if (a.matches && a.matches.length) {
    const table = el("table", { "aria-label": "Matched strings" },
      el("thead", {}, el("tr", {}, el("th", { text: "string" }), el("th", { text: "offset" }),
        el("th", { text: "length" }), el("th", { text: "data" }))));
    const body = el("tbody");
    for (const m of a.matches) {
      body.append(el("tr", {}, el("td", { text: m.identifier }), el("td", { text: m.offset }),
        el("td", { text: m.length }), el("td", { text: m.data })));
    }
    table.append(body);
    parts.push(el("h4", { text: "Matched strings" }), table);
  }
  const triage = el("section", { id: "triage", "aria-label": "Triage" }, el("h4", { text: "Triage" }),
    el("p", { class: "status", text: "loading…" }));
  parts.push(triage);
  panel.replaceChildren(...parts);
  panel.hidden = false;
  loadTriage(a.alert.id, triage);
}

// --- triage --------------------------------------------------------------------------------

function canTriage() {
  return Boolean(state.user && state.user.permissions.includes("triage-alerts"));
}

async function loadTriage(id, section) {
  let d;
  try {
    d = await getJson(`/alerts/${encodeURIComponent(id)}`);
  } catch (e) {
    section.replaceChildren(el("h4", { text: "Triage" }),
      el("p", { class: "status bad", text: `Triage could not be loaded: ${e.message}` }));
    return;
  }
  const parts = [el("h4", { text: "Triage" })];
  const message = el("p", { id: "triage-status", class: "status", role: "status" });
  if (canTriage()) {
    const status = el("select", { id: "triage-select", name: "status" });
    for (const s of STATUSES) {
      const option = el("option", { value: s, text: s });
      if (s === d.status) option.selected = true;
      status.append(option);
    }
    const assignee = el("input", { id: "triage-assignee", name: "assignee", type: "text",
      autocomplete: "off", spellcheck: "false" });
    assignee.value = d.assignee;
    const form = el("form", { id: "triage-form", class: "triage-form" },
      el("label", {}, "Status ", status), el("label", {}, "Assignee ", assignee),
      el("button", { type: "submit", text: "Save" }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const change = {};
      if (status.value !== d.status) change.status = status.value;
      if (assignee.value.trim() !== d.assignee) change.assignee = assignee.value.trim();
      if (!Object.keys(change).length) return;
      send(`/alerts/${encodeURIComponent(id)}`, "PATCH", change, id, section, message);
    });
    const text = el("textarea", { id: "comment-text", name: "text", rows: "2", maxlength: "4000" });
    const comment = el("form", { id: "comment-form", class: "comment-form" },
      el("label", {}, "Comment ", text), el("button", { type: "submit", text: "Add comment" }));
    comment.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      send(`/alerts/${encodeURIComponent(id)}/comments`, "POST", { text: text.value }, id, section, message);
    });
    parts.push(form, comment, message);
  } else {
    parts.push(dl([["status", d.status], ["assignee", d.assignee || "nobody"]]));
  }
  if (d.comments.length) {
    const list = el("ul", { id: "comments", class: "comments" });
    for (const c of d.comments) list.append(el("li", {}, el("strong", { text: c.author }), ` ${shortTime(c.time)}: `, c.text));
    parts.push(el("h4", { text: "Comments" }), list);
  }
  const audit = el("ol", { id: "audit", class: "audit", "aria-label": "Audit trail" });
  for (const e of d.audit) {
    const what = e.action === "alert.comment" ? "commented" : `${e.action.replace("alert.", "")}: ${e.old || "—"} → ${e.new || "—"}`;
    audit.append(el("li", {}, `${shortTime(e.time)} `, el("strong", { text: e.actor }), ` ${what}`));
  }
  if (!d.audit.length) audit.append(el("li", { text: "no changes yet" }));
  parts.push(el("h4", { text: "Audit trail" }), audit);
  section.replaceChildren(...parts);
}

async function send(path, method, body, id, section, message) {
  try {
    await getJson(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    await loadTriage(id, section);
    loadAlerts();
  } catch (e) {
    message.textContent = `Not saved: ${e.message}`;
    message.classList.add("bad");
  }
}

function closeDetail() {
  document.getElementById("detail").hidden = true;
}

// Stacked bars of alerts per UTC hour, severity 1 at the bottom: the true counts of every
// alert the filters select (GET /alerts/aggregate, answered from the collector's hourly
// totals), not of the page below. The newest CHART_HOURS hours, gaps shown as empty slots.
const CHART_HOURS = 24;
const HOUR_MS = 3600 * 1000;
let chartSeq = 0;  // a slower, older answer must not overwrite a newer one

// The queue's filters for the aggregate and group resources: the list's, without paging.
function aggregateQuery() {
  const params = alertQuery();
  for (const k of ["limit", "sort", "cursor"]) params.delete(k);
  return params;
}

async function renderChart() {
  const seq = ++chartSeq;
  // Whenever the queue reloads (filters, live updates), the grouped view follows.
  if (groups.on) loadGroups();
  const params = aggregateQuery();
  params.set("by", "hour");
  params.set("limit", String(CHART_HOURS));
  const svg = document.getElementById("chart");
  const caption = document.getElementById("chart-caption");
  let body;
  try {
    body = await getJson(`/alerts/aggregate?${params}`);
  } catch (e) {
    if (seq !== chartSeq) return;
    caption.textContent = `Alerts per hour could not be loaded: ${e.message}`;
    svg.replaceChildren();
    return;
  }
  if (seq !== chartSeq) return;
  drawChart(svg, caption, body);
}

function drawChart(svg, caption, body) {
  const NS = "http://www.w3.org/2000/svg";
  const counts = new Map();  // "YYYY-MM-DDTHH" -> [count sev1..4]
  for (const b of body.buckets) {
    counts.set(b.hour.slice(0, 13), [1, 2, 3, 4].map((s) => b.severity[s]));
  }
  const hourMs = (h) => Date.parse(`${h}:00:00Z`);
  const known = [...counts.keys()];  // ascending, as the API lists them
  const hours = [];
  if (known.length) {
    const last = hourMs(known[known.length - 1]);
    const first = Math.max(hourMs(known[0]), last - (CHART_HOURS - 1) * HOUR_MS);
    for (let t = first; t <= last; t += HOUR_MS) hours.push(new Date(t).toISOString().slice(0, 13));
  }
  // Without a "since" filter the grouped view covers the hours the chart shows: grouping
  // counts over the alerts themselves, and on a large store all of them would be slow.
  groups.since = hours.length ? `${hours[0]}:00:00Z` : null;
  const total = body.total;
  caption.textContent = !hours.length
    ? "Alerts per hour by severity: no alert matches the filters"
    : body.truncated
      ? `Alerts per hour (UTC) by severity: ${total} alerts in the newest ${CHART_HOURS} hours that have alerts`
      : `Alerts per hour (UTC) by severity: all ${total} alerts that match the filters`;
  svg.setAttribute("data-total", String(total));
  const sums = hours.map((h) => (counts.get(h) || [0]).reduce((x, y) => x + y, 0));
  const max = Math.max(1, ...sums);
  const W = 720, H = 140, left = 30, bottom = 18;
  const slot = Math.min((W - left) / Math.max(hours.length, 1), 40);
  const shapes = [];
  const text = (x, y, s, anchor = "middle") => {
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("class", "axis");
    t.setAttribute("text-anchor", anchor); t.textContent = s;
    return t;
  };
  shapes.push(text(left - 4, 10, String(max), "end"), text(left - 4, H - bottom, "0", "end"));
  hours.forEach((hour, i) => {
    let y = H - bottom;
    (counts.get(hour) || [0, 0, 0, 0]).forEach((count, s) => {
      if (!count) return;
      const h = (count / max) * (H - bottom - 8);
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", left + i * slot + slot * 0.15);
      r.setAttribute("width", slot * 0.7);
      r.setAttribute("y", y - h);
      r.setAttribute("height", h);
      r.setAttribute("fill", `var(--sev-${s + 1})`);
      r.setAttribute("data-severity", String(s + 1));
      r.setAttribute("data-hour", hour);
      r.setAttribute("data-count", String(count));
      const title = document.createElementNS(NS, "title");
      title.textContent = `${hour}:00Z severity ${s + 1}: ${count}`;
      r.append(title);
      shapes.push(r);
      y -= h;
    });
    // Every label when they fit, else every third.
    if (hours.length <= 12 || i % 3 === 0) shapes.push(text(left + i * slot + slot / 2, H - 4, `${hour.slice(11)}h`));
  });
  svg.replaceChildren(...shapes);
}

// --- related alerts grouped ----------------------------------------------------------------

// The queue as groups of related alerts (GET /alerts/groups): same rule, agent and target in
// one UTC hour. Clicking a group narrows the queue to its alerts: the filters take its agent
// and hour, and the rows its rule and target (focus).
const groups = { on: false, focus: null, seq: 0, since: null };

// What the collector groups on: the file path of a file alert, else the destination address.
function targetOf(a) {
  return a.alert.kind === "file" ? (a.file ? a.file.path : "") : (a.dest_ip || "");
}

function inGroupFocus(a) {
  const f = groups.focus;
  return !f || (a.alert.signature === f.rule && (a.agent ? a.agent.id : "") === f.agent && targetOf(a) === f.target);
}

async function loadGroups() {
  const seq = ++groups.seq;
  const params = aggregateQuery();
  const since = params.has("since") ? null : groups.since;
  if (since) params.set("since", since);
  params.set("window", "1h");
  params.set("limit", "500");
  let body;
  try {
    body = await getJson(`/alerts/groups?${params}`);
  } catch (e) {
    if (seq === groups.seq) setStatus("groups-status", `Groups could not be loaded: ${e.message}`, true);
    return;
  }
  if (seq !== groups.seq) return;
  const statusText = (st) => Object.entries(st).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(" · ");
  const rows = body.groups.map((g) => {
    const tr = el("tr", { "data-newest": g.newest_id, tabindex: "0" },
      el("td", { text: shortTime(g.last) }),
      el("td", {}, severityBadge(g.severity)),
      el("td", { class: "sig", text: g.rule }),
      el("td", { text: g.agent }),
      el("td", { text: g.target }),
      el("td", { class: "count", text: String(g.count) }),
      el("td", { text: shortTime(g.first) }),
      el("td", { class: "triage", text: statusText(g.statuses) }));
    tr.addEventListener("click", () => focusGroup(g));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") focusGroup(g); });
    return tr;
  });
  document.querySelector("#groups tbody").replaceChildren(...rows);
  const alerts = body.groups.reduce((n, g) => n + g.count, 0);
  setStatus("groups-status", body.count === 0 ? "No alerts match."
    : `${body.count} group${body.count === 1 ? "" : "s"} of ${alerts} alert${alerts === 1 ? "" : "s"}` +
      `${since ? ` since ${shortTime(since)} (the hours of the chart)` : ""}, most recently active first.`);
}

function showGroups(on) {
  groups.on = on;
  document.getElementById("group-related").checked = on;
  document.getElementById("groups").hidden = !on;
  document.getElementById("groups-status").hidden = !on;
  document.getElementById("queue").hidden = on;
  document.getElementById("alerts-status").hidden = on;
  if (on) {
    closeDetail();
    loadGroups();
  }
}

// datetime-local wants "YYYY-MM-DDTHH:MM:SS" (the page reads it as UTC).
function toLocalInput(ts) {
  return ts.slice(0, 19);
}

function focusGroup(g) {
  const form = document.getElementById("filters");
  form.elements.agent.value = g.agent;
  form.elements.since.value = toLocalInput(g.window_start);
  form.elements.until.value = toLocalInput(g.window_end);
  if (form.elements.rule) form.elements.rule.value = g.rule;
  groups.focus = { rule: g.rule, agent: g.agent, target: g.target };
  document.getElementById("group-focus-text").textContent =
    `Group: ${g.rule} · ${g.agent} → ${g.target || "no target"} (${g.count} alert${g.count === 1 ? "" : "s"})`;
  document.getElementById("group-focus").hidden = false;
  showGroups(false);
  loadAlerts();
}

function clearGroupFocus() {
  groups.focus = null;
  document.getElementById("group-focus").hidden = true;
}

function startGroups() {
  const status = el("p", { id: "groups-status", class: "status", role: "status", "aria-live": "polite" });
  status.hidden = true;
  document.getElementById("groups").before(status);
  document.getElementById("group-related").addEventListener("change", (e) => showGroups(e.target.checked));
  document.getElementById("group-focus-clear").addEventListener("click", () => {
    clearGroupFocus();
    loadAlerts();
  });
  document.getElementById("filters").addEventListener("reset", clearGroupFocus);
}

// --- agents --------------------------------------------------------------------------------

async function loadAgents() {
  try {
    const body = await getJson("/agents");
    const rows = body.agents.map((g) => el("tr", {},
      el("td", { text: g.id }),
      el("td", { class: `state-${g.state}`, text: g.state }),
      el("td", { text: shortTime(g.last_heartbeat) }),
      el("td", { text: g.version }),
      el("td", { text: g.rule_pack }),
      el("td", { text: g.counters.packets }),
      el("td", { text: g.counters.kernel_drops }),
      el("td", { text: g.counters.files_scanned }),
      el("td", { text: g.counters.alerts }),
      el("td", { text: g.counters.queue_depth })));
    document.querySelector("#agents tbody").replaceChildren(...rows);
    setStatus("agents-status", rows.length ? `${rows.length} agent${rows.length === 1 ? "" : "s"}.` : "No agent has sent a heartbeat yet.");
  } catch (e) {
    setStatus("agents-status", `Agents could not be loaded: ${e.message}`, true);
  }
}

async function loadHealth() {
  const node = document.getElementById("health");
  try {
    const h = await getJson("/health");
    node.textContent = `collector ${h.version} · ${h.backend} · ${h.alerts} alerts stored`;
    node.classList.remove("bad");
  } catch (e) {
    node.textContent = `collector unreachable: ${e.message}`;
    node.classList.add("bad");
  }
}

// --- navigation, live updates, keys --------------------------------------------------------

// --- login ---------------------------------------------------------------------------------

function postJson(path, body) {
  return getJson(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
}

function showLogin(message = "") {
  state.user = null;
  clearInterval(state.timer);
  document.getElementById("app").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("whoami").textContent = "";
  document.getElementById("logout").hidden = true;
  setStatus("login-status", message, message !== "");
  document.getElementById("login-name").focus();
}

function showApp(me) {
  state.user = me;
  document.getElementById("login").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("whoami").textContent = `${me.user} (${me.role})`;
  document.getElementById("logout").hidden = false;
  showView();
  schedule();
}

async function login(event) {
  event.preventDefault();
  const name = document.getElementById("login-name").value;
  const password = document.getElementById("login-password");
  setStatus("login-status", "logging in…");
  try {
    const me = await postJson("/login", { name, password: password.value });
    password.value = "";
    showApp(me);
  } catch (e) {
    setStatus("login-status", `Not logged in: ${e.message}`, true);
  }
}

async function logout() {
  try {
    await postJson("/logout", {});
  } finally {
    showLogin("Logged out.");
  }
}

function refresh() {
  if (!state.user) return Promise.resolve();
  loadHealth();
  return state.view === "alerts" ? loadAlerts() : loadAgents();
}

function schedule() {
  clearInterval(state.timer);
  if (state.user && document.getElementById("live").checked) state.timer = setInterval(refresh, POLL_MS);
}

function showView() {
  state.view = location.hash === "#/agents" ? "agents" : "alerts";
  document.getElementById("view-alerts").hidden = state.view !== "alerts";
  document.getElementById("view-agents").hidden = state.view !== "agents";
  for (const v of ["alerts", "agents"]) {
    const link = document.getElementById(`nav-${v}`);
    if (v === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  refresh();
}

function onKey(event) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement?.tagName);
  if (event.key === "Escape") {
    if (typing) document.activeElement.blur();
    closeDetail();
    return;
  }
  if (!state.user || typing || event.ctrlKey || event.metaKey || event.altKey ||
      state.view !== "alerts") return;
  const detailOpen = !document.getElementById("detail").hidden;
  if (event.key === "j") select(state.selected + 1, detailOpen);
  else if (event.key === "k") select(state.selected < 0 ? 0 : state.selected - 1, detailOpen);
  else if (event.key === "Enter" && state.selected >= 0) openDetail(state.alerts[state.selected]);
  else if (event.key === "/") document.getElementById("filter-agent").focus();
  else if (event.key === "r") loadAlerts();
  else return;
  event.preventDefault();
}

function start() {
  const form = document.getElementById("filters");
  form.addEventListener("submit", (e) => { e.preventDefault(); loadAlerts(); });
  form.addEventListener("reset", () => setTimeout(loadAlerts, 0));
  document.getElementById("live").addEventListener("change", schedule);
  document.getElementById("load-more").addEventListener("click", loadMore);
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", showView);
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  startGroups();
  loadHealth();
  // Already logged in (the session cookie is HttpOnly, so ask the server)?
  getJson("/me").then(showApp, () => showLogin());
}

start();
