// DockFlare dashboard: renders the view the path names from the live feed (/api/live, Server-
// Sent Events; the browser reconnects and resumes by itself). No framework, no network beyond
// this master.
"use strict";
(function () {
  const view = document.getElementById("view");
  const connection = document.getElementById("connection");
  const role = view.dataset.role;
  const csrf = view.dataset.csrf;
  const mayWrite = role === "operator" || role === "admin";
  // The add form keeps what was typed, and the admin API's refusal next to its field.
  const draft = { hostname: "", path: "", service: "", target: "", zone_name: "", errors: {}, busy: false };
  const kinds = { RESOURCE_KIND_ROUTE: "route", RESOURCE_KIND_AGENT: "agent", RESOURCE_KIND_TUNNEL: "tunnel",
    RESOURCE_KIND_DIAGNOSTIC: "diagnostic", RESOURCE_KIND_CONNECTOR: "connector" };
  const state = { route: new Map(), agent: new Map(), tunnel: new Map(), diagnostic: new Map(), connector: new Map() };
  const ui = { search: "", status: "", agent: "", zone: "", sort: "hostname", page: 0, pageSize: 200 };
  let synced = false;
  let scheduled = false;
  // Facts beyond the feed, fetched when changes arrive (at most every 2 s), never on a timer.
  const facts = { overview: null, overviewAt: 0, activity: new Map() };
  function refreshOverview() {
    if (Date.now() - facts.overviewAt < 2000) return;
    facts.overviewAt = Date.now();
    fetch("/api/overview").then(r => r.ok ? r.json() : null).then(o => { if (o) { facts.overview = o; schedule(); } }, () => {});
  }
  function loadActivity(id) {
    if (facts.activity.has(id)) return;
    facts.activity.set(id, null);
    fetch("/api/agents/" + encodeURIComponent(id) + "/activity").then(r => r.ok ? r.json() : null)
      .then(a => { facts.activity.set(id, a); schedule(); }, () => {});
  }
  const when = (ms) => ms ? new Date(ms).toLocaleString() : "never";

  const words = (value, prefix) => (value || "").replace(prefix, "").toLowerCase().replace(/_/g, " ");
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    }
    for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
    return node;
  };
  const status = (route) => words(route.status, "ROUTE_STATUS_");
  const countdown = (iso) => {
    const seconds = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
    const m = Math.floor(seconds / 60), s = seconds % 60;
    return m > 0 ? `${m} min ${s} s` : `${s} s`;
  };

  function render() {
    scheduled = false;
    const path = location.pathname;
    let content;
    if (path === "/routes") content = routesView();
    else if (path === "/agents") content = agentsView();
    else if (path.startsWith("/agents/")) content = agentView(decodeURIComponent(path.slice(8)));
    else if (path === "/diagnostics") content = diagnosticsView();
    else content = overviewView();
    const focused = document.activeElement && document.activeElement.id;
    const caret = document.activeElement && document.activeElement.selectionStart;
    view.replaceChildren(content);
    // For the dashboard benchmark: when the first view with the whole snapshot was drawn.
    if (synced && !window.dockflareRenderedAt) window.dockflareRenderedAt = performance.now();
    if (focused) { const again = document.getElementById(focused); if (again) { again.focus(); if (caret != null && again.setSelectionRange) again.setSelectionRange(caret, caret); } }
  }
  const schedule = () => { if (!scheduled) { scheduled = true; requestAnimationFrame(render); } };

  function count(map, predicate) { let n = 0; for (const v of map.values()) if (predicate(v)) n++; return n; }

  function overviewView() {
    const agents = [...state.agent.values()];
    const routes = [...state.route.values()];
    const byStatus = {};
    for (const r of routes) byStatus[status(r)] = (byStatus[status(r)] || 0) + 1;
    const card = (title, value, detail) => el("section", { class: "card" }, el("h2", {}, title), el("p", { class: "figure" }, String(value)), el("p", {}, detail));
    refreshOverview();
    const o = facts.overview;
    const pass = o && o.last_pass;
    const banner = o && o.offline ? el("p", { class: "banner", role: "note" },
      "Offline mode: no Cloudflare credentials. The built-in Cloudflare emulator" + (o.emulator ? ` (${o.emulator})` : "") +
      " stands in for Cloudflare, and each agent serves its routes through its local edge.") : "";
    const reconcile = el("section", { class: "card", id: "last-pass" }, el("h2", {}, "Last reconcile pass"),
      !pass ? el("p", {}, o && o.leader === false ? "Another master reconciles." : "None yet.") :
      [el("p", { class: pass.errors.length ? "status error" : "status active" }, pass.errors.length ? `${pass.errors.length} error(s)` : "ok"),
       el("p", {}, `${when(pass.at_ms)}, ${pass.took_ms} ms: ${pass.routes_changed} routes changed, ${pass.ingress_updates} ingress updates, ` +
         `${pass.dns_created + pass.dns_updated + pass.dns_deleted} DNS writes, ${pass.tunnels_created} tunnels created`),
       el("ul", {}, pass.errors.map(e => el("li", { class: "reason" }, e)))]);
    const setup = pass ? pass.errors.filter(e => e.startsWith("Cloudflare ")) : [];
    const cloudflare = el("section", { class: "card", id: "cloudflare" }, el("h2", {}, o && o.offline ? "Cloudflare (emulated)" : "Cloudflare"),
      !pass ? el("p", {}, "Not checked yet.") : [
        el("p", { class: setup.length ? "status error" : "status active" },
          setup.some(e => e.startsWith("Cloudflare unreachable")) ? "unreachable" : setup.length ? "refused: see below" : "reachable, permissions sufficient"),
        el("p", {}, `${pass.cloudflare_requests ?? 0} requests in the last pass; budget ${pass.budget_per_5_minutes ?? "?"} per 5 minutes`),
        el("ul", {}, setup.map(e => el("li", { class: "reason" }, e)))]);
    return el("div", {},
      el("h1", {}, "Overview"), banner,
      el("div", { class: "cards" }, reconcile, cloudflare,
        card("Agents", agents.length, `${count(state.agent, a => a.status === "AGENT_STATUS_ONLINE")} online, ${count(state.agent, a => a.status === "AGENT_STATUS_OFFLINE")} offline`),
        card("Routes", routes.length, Object.entries(byStatus).map(([k, v]) => `${v} ${k}`).join(", ") || "none"),
        card("Tunnels", state.tunnel.size, `${count(state.tunnel, t => t.connectorCount > 0)} with connectors`),
        card("Diagnostics", state.diagnostic.size, state.diagnostic.size ? "label problems to fix" : "no label problems")));
  }

  // The zone a route names, or the longest zone of the account its hostname is in.
  const zoneOf = (r) => {
    if (r.zoneName) return r.zoneName;
    const zones = (facts.overview && facts.overview.zones) || [];
    let best = "";
    for (const z of zones) if ((r.hostname === z || r.hostname.endsWith("." + z)) && z.length > best.length) best = z;
    return best;
  };

  function routeRows() {
    const q = ui.search.toLowerCase();
    let rows = [...state.route.values()].filter(r =>
      (!q || (r.hostname + (r.path || "") + " " + (r.service || "") + " " + (r.containerName || "") + " " + (r.zoneName || "")).toLowerCase().includes(q)) &&
      (!ui.status || status(r) === ui.status) && (!ui.agent || r.agentId === ui.agent) && (!ui.zone || zoneOf(r) === ui.zone));
    const key = ui.sort;
    rows.sort((a, b) => String(a[key] || "").localeCompare(String(b[key] || "")) || a.hostname.localeCompare(b.hostname));
    return rows;
  }

  function routesView() {
    refreshOverview();
    const rows = routeRows();
    const pages = Math.max(1, Math.ceil(rows.length / ui.pageSize));
    ui.page = Math.min(ui.page, pages - 1);
    const shown = rows.slice(ui.page * ui.pageSize, (ui.page + 1) * ui.pageSize);
    const statuses = [...new Set([...state.route.values()].map(status))].sort();
    const search = el("input", { id: "route-search", type: "search", placeholder: "Search hostname, service, container, zone", value: ui.search,
      "aria-label": "Search routes", oninput: (e) => { ui.search = e.target.value; ui.page = 0; schedule(); } });
    const statusFilter = el("select", { id: "route-status", "aria-label": "Filter by status", onchange: (e) => { ui.status = e.target.value; ui.page = 0; schedule(); } },
      el("option", { value: "" }, "every status"), statuses.map(s => { const o = el("option", { value: s }, s); if (s === ui.status) o.selected = true; return o; }));
    const header = (label, key) => el("th", { scope: "col" }, el("button", { class: "sort", onclick: () => { ui.sort = key; schedule(); } }, label + (ui.sort === key ? " ▾" : "")));
    const body = shown.map(r => el("tr", { "data-hostname": r.hostname, "data-status": status(r) },
      el("td", {}, r.hostname + (r.path || ""), r.access ? el("div", { class: "access", title: "Cloudflare Access labels" }, "Access: " + r.access) : ""),
      el("td", {}, r.service || ""),
      el("td", {}, el("span", { class: "status " + status(r).replace(/ /g, "-") }, status(r)),
        r.status === "ROUTE_STATUS_PENDING_DELETION" && r.deleteAt ? el("span", { class: "countdown", "data-delete-at": r.deleteAt }, " removed in " + countdown(r.deleteAt)) : "",
        r.reason ? el("div", { class: "reason" }, r.reason) : "", r.lastError ? el("div", { class: "reason" }, r.lastError) : ""),
      el("td", {}, r.agentId ? el("a", { href: "/agents/" + encodeURIComponent(r.agentId) }, agentName(r.agentId)) : (r.tunnelGroup ? "group " + r.tunnelGroup : "")),
      el("td", {}, zoneOf(r)),
      el("td", {}, words(r.source, "ROUTE_SOURCE_"),
        mayWrite && r.source === "ROUTE_SOURCE_MANUAL" ? el("button", { class: "delete", "data-write": "", "aria-label": "Delete the manual route " + r.hostname + (r.path || ""), onclick: () => deleteRoute(r) }, "Delete") : "")));
    const choice = (id, label, current, values, key) => {
      const select = el("select", { id, "aria-label": label, onchange: (e) => { ui[key] = e.target.value; ui.page = 0; schedule(); } },
        el("option", { value: "" }, label), values.map(([value, text]) => el("option", { value }, text)));
      for (const option of select.options) option.selected = option.value === current;
      return select;
    };
    const agentFilter = choice("route-agent", "every agent", ui.agent,
      [...state.agent.values()].map(a => [a.id, a.displayName || a.id]), "agent");
    const zoneFilter = choice("route-zone", "every zone", ui.zone,
      [...new Set([...state.route.values()].map(zoneOf))].sort().map(z => [z, z]), "zone");
    return el("div", {},
      el("h1", {}, "Routes"),
      mayWrite ? addForm() : "",
      el("div", { class: "filters" }, search, statusFilter, agentFilter, zoneFilter, el("span", { id: "route-count" }, `${rows.length} of ${state.route.size}`)),
      el("div", { class: "table" }, el("table", { id: "routes" },
        el("thead", {}, el("tr", {}, header("Hostname", "hostname"), header("Service", "service"), header("Status", "status"), header("Agent", "agentId"), header("Zone", "zoneName"), header("Source", "source"))),
        el("tbody", {}, body))),
      pages > 1 ? el("nav", { class: "pager", "aria-label": "Pages" },
        el("button", { onclick: () => { ui.page = Math.max(0, ui.page - 1); schedule(); } }, "Previous"),
        ` page ${ui.page + 1} of ${pages} `,
        el("button", { onclick: () => { ui.page = Math.min(pages - 1, ui.page + 1); schedule(); } }, "Next")) : "");
  }

  async function send(method, body) {
    const response = await fetch("/api/manual-routes", { method, headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body) });
    const answer = await response.json().catch(() => ({ message: response.statusText }));
    return response.ok ? null : answer;
  }

  async function addRoute(event) {
    event.preventDefault();
    if (draft.busy) return;
    draft.busy = true; draft.errors = {}; schedule();
    const target = draft.target;
    const body = { hostname: draft.hostname, path: draft.path, service: draft.service, zone_name: draft.zone_name,
      agent_id: target.startsWith("agent:") ? target.slice(6) : "", tunnel_group: target.startsWith("group:") ? target.slice(6) : "" };
    const refusal = await send("POST", body).catch(e => ({ message: String(e) }));
    draft.busy = false;
    if (refusal) draft.errors = { [refusal.field || "form"]: refusal.message };
    else Object.assign(draft, { hostname: "", path: "", service: "", zone_name: "" });
    schedule();
  }

  async function deleteRoute(route) {
    const refusal = await send("DELETE", { hostname: route.hostname, path: route.path || "" }).catch(e => ({ message: String(e) }));
    draft.errors = refusal ? { form: refusal.message } : {};
    schedule();
  }

  function addForm() {
    const field = (name, label, attrs) => el("label", {}, label,
      el("input", Object.assign({ id: "add-" + name, name, value: draft[name], oninput: (e) => { draft[name] = e.target.value; },
        "aria-invalid": draft.errors[name] ? "true" : "false", "aria-describedby": "add-" + name + "-error" }, attrs || {})),
      el("span", { class: "field-error", id: "add-" + name + "-error", role: "alert" }, draft.errors[name] || ""));
    const groups = [...new Set([...state.agent.values()].map(a => a.tunnelGroup).filter(Boolean))].sort();
    const target = el("select", { id: "add-target", name: "target", "aria-describedby": "add-target-error", onchange: (e) => { draft.target = e.target.value; } },
      el("option", { value: "" }, "agent or tunnel group…"),
      [...state.agent.values()].map(a => el("option", { value: "agent:" + a.id }, "agent " + (a.displayName || a.id))),
      groups.map(g => el("option", { value: "group:" + g }, "group " + g)));
    for (const option of target.options) option.selected = option.value === draft.target;
    const targetError = draft.errors.agent_id || draft.errors.tunnel_group || "";
    return el("form", { id: "add-route", class: "add-route", "data-write": "", onsubmit: addRoute },
      el("h2", {}, "Add a manual route"),
      field("hostname", "Hostname", { required: "", placeholder: "app.example.com" }),
      field("path", "Path", { placeholder: "optional, e.g. /api" }),
      field("service", "Service", { required: "", placeholder: "http://10.0.0.5:8080" }),
      el("label", {}, "Served by", target, el("span", { class: "field-error", id: "add-target-error", role: "alert" }, targetError)),
      field("zone_name", "Zone", { placeholder: "optional: the longest matching zone" }),
      el("button", { type: "submit" }, draft.busy ? "Adding…" : "Add route"),
      el("p", { class: "field-error", id: "add-form-error", role: "alert" }, draft.errors.form || ""));
  }

  function agentName(id) { const a = state.agent.get(id); return a ? (a.displayName || id) : id; }

  function agentsView() {
    const rows = [...state.agent.values()].sort((a, b) => (a.displayName || "").localeCompare(b.displayName || ""));
    return el("div", {}, el("h1", {}, "Agents"), el("div", { class: "table" }, el("table", { id: "agents" },
      el("thead", {}, el("tr", {}, ["Name", "Status", "Mode", "Node", "Version", "Connector", "Tunnel group", "Routes"].map(h => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map(a => {
        const connector = state.connector.get(a.id);
        const routes = count(state.route, r => r.agentId === a.id);
        return el("tr", {}, el("td", {}, el("a", { href: "/agents/" + encodeURIComponent(a.id) }, a.displayName || a.id)),
          el("td", {}, el("span", { class: "status " + words(a.status, "AGENT_STATUS_") }, words(a.status, "AGENT_STATUS_"))),
          el("td", {}, words(a.dockerMode, "DOCKER_MODE_")), el("td", {}, (a.nodeId || "") + (a.nodeRole ? " (" + words(a.nodeRole, "NODE_ROLE_") + ")" : "")),
          el("td", {}, a.version || ""), el("td", {}, connector && connector.status ? words(connector.status.state, "CONNECTOR_STATE_") + " " + (connector.status.image || "") : "—"),
          el("td", {}, a.tunnelGroup || "own tunnel"), el("td", {}, String(routes)));
      })))));
  }

  function agentView(id) {
    const a = state.agent.get(id);
    if (!a) return el("div", {}, el("h1", {}, "Agent"), el("p", {}, synced ? "No such agent." : "Loading…"));
    const routes = [...state.route.values()].filter(r => r.agentId === id);
    const diagnostics = [...state.diagnostic.values()].filter(d => d.agentId === id);
    const connector = state.connector.get(id);
    loadActivity(id);
    const activity = facts.activity.get(id);
    return el("div", {}, el("h1", {}, a.displayName || id),
      el("dl", { class: "facts" }, ["Id", id, "Status", words(a.status, "AGENT_STATUS_"), "Host", a.hostname || "", "Version", a.version || "",
        "Tunnel group", a.tunnelGroup || "own tunnel", "Connector", connector && connector.status ? words(connector.status.state, "CONNECTOR_STATE_") + " " + (connector.status.detail || "") : "none reported"]
        .map((v, i) => el(i % 2 ? "dd" : "dt", {}, v))),
      el("h2", {}, `Routes (${routes.length})`), el("ul", {}, routes.map(r => el("li", {}, `${r.hostname}${r.path || ""} → ${r.service} (${status(r)})`))),
      el("h2", {}, `Diagnostics (${diagnostics.length})`), el("ul", {}, diagnostics.map(d => el("li", {}, `${d.containerName}: ${d.diagnostic.label}: ${d.diagnostic.reason}`))),
      !activity ? el("p", {}, "Loading activity…") : [
        el("p", {}, `Last seen ${when(activity.last_seen_ms)}; ${activity.connected ? "connected to this master" : "not connected to this master"}.`),
        el("h2", {}, `Containers (${activity.containers.length})`), el("ul", { id: "agent-containers" }, activity.containers.map(c => el("li", {}, `${c.name} (${c.status})${c.service ? " · service " + c.service : ""}`))),
        el("h2", {}, "Recent commands"), el("ul", { id: "agent-commands" }, activity.commands.map(c => el("li", {}, `#${c.sequence} ${c.kind}: ${c.state}${c.error ? " — " + c.error : ""} (${when(c.created_ms)})`))),
        el("h2", {}, "Recent events"), el("ul", { id: "agent-events" }, activity.events.map(e => el("li", {}, `#${e.id} ${e.kind.replace(/_/g, " ")} (${when(e.at_ms)})`)))]);
  }

  function diagnosticsView() {
    const rows = [...state.diagnostic.values()].sort((a, b) => (a.containerName || "").localeCompare(b.containerName || ""));
    return el("div", {}, el("h1", {}, "Diagnostics"), rows.length === 0 ? el("p", {}, "No label problems.") :
      el("div", { class: "table" }, el("table", { id: "diagnostics" },
        el("thead", {}, el("tr", {}, ["Container", "Agent", "Label", "Value", "Problem"].map(h => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows.map(d => el("tr", {}, el("td", {}, d.containerName || d.containerId), el("td", {}, agentName(d.agentId)),
          el("td", {}, el("code", {}, d.diagnostic.label)), el("td", {}, el("code", {}, d.diagnostic.value || "")), el("td", {}, d.diagnostic.reason)))))));
  }

  function connect() {
    const source = new EventSource("/api/live");
    source.addEventListener("change", (e) => {
      const change = JSON.parse(e.data);
      const kind = kinds[change.kind];
      if (!kind) return;
      const object = change[kind];
      if (change.type === "CHANGE_TYPE_DELETE") state[kind].delete(change.key); else state[kind].set(change.key, object);
      if (synced) schedule();
    });
    source.addEventListener("synced", () => { window.dockflareSyncedAt = window.dockflareSyncedAt || performance.now(); synced = true; connection.textContent = "live"; connection.className = "live"; schedule(); });
    source.addEventListener("reset", () => { for (const map of Object.values(state)) map.clear(); synced = false; });
    source.addEventListener("lagged", () => { source.close(); for (const map of Object.values(state)) map.clear(); synced = false; setTimeout(connect, 500); });
    source.addEventListener("signed-out", () => { source.close(); location.assign("/login"); });
    source.onerror = () => { connection.textContent = "connection lost — reconnecting…"; connection.className = "lost"; };
  }

  // Countdowns tick without waiting for a change.
  setInterval(() => { for (const node of document.querySelectorAll(".countdown")) node.textContent = " removed in " + countdown(node.dataset.deleteAt); }, 1000);
  void role;
  connect();
})();
