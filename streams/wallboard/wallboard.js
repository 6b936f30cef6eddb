// vocflow wallboard (大屏/实时看板): renders the KPI document pushed over /api/stream.
//
// Plain ES2020, no framework, no build step and no network access beyond the worker
// that served the page: wallboard PCs on a contact-center floor are often offline.
// Every rendered number also sits, unformatted, in a data-* attribute so that tests
// (and anyone debugging a screen with devtools) can read exactly what was shown.
"use strict";

(() => {
  const CONFIG = JSON.parse(document.getElementById("wallboard-config").textContent);
  const LANG = CONFIG.lang; // "zh" | "en" | "both"

  // [Chinese, English]. Chinese first: the floor reads Chinese; English for everyone else.
  const LABELS = {
    title: ["实时看板", "Live wallboard"],
    sl: ["服务水平", "Service level"],
    waiting: ["排队", "Waiting"],
    oldest: ["最长等待", "Oldest wait"],
    asa: ["平均应答", "ASA"],
    abandon: ["放弃率", "Abandoned"],
    contacts: ["接触量", "Contacts"],
    today: ["今日", "Today"],
    target: ["目标", "Target"],
    updated: ["数据更新于", "Data updated"],
    hot: ["热点话题", "Hot topics"],
    alerts: ["当前告警", "Active alerts"],
    none: ["暂无", "None"],
    noData: ["等待数据…", "Waiting for data…"],
    noTiles: ["暂无队列数据", "No queue data yet"],
    live: ["● 实时", "● Live"],
    connecting: ["○ 连接中…", "○ Connecting…"],
    offline: ["✕ 连接中断，重连中…", "✕ Disconnected, reconnecting…"],
    stale: ["数据过期", "Data stale"],
    agoSeconds: ["{n} 秒前", "{n} s ago"],
    agoMinutes: ["{n} 分钟前", "{n} min ago"],
    totalAll: ["全部", "All queues"],
    totalFloor: ["本区合计", "This board"],
    interval_15m: ["本 15 分钟", "This 15 min"],
    interval_60m: ["近 60 分钟", "Last 60 min"],
    interval_today: ["今日", "Today"],
    status_green: ["达标", "On target"],
    status_amber: ["接近目标", "Near target"],
    status_red: ["未达标", "Below target"],
    status_none: ["无数据", "No data"],
    since: ["始于 {t}", "since {t}"],
    dim_keyword: ["关键词", "keyword"],
    dim_category: ["类别", "category"],
    dim_city: ["城市", "city"],
    dim_category_city: ["类别·城市", "category·city"],
    sev_critical: ["严重", "critical"],
    sev_warning: ["警告", "warning"],
    department: ["部门", "dept."],
    drillTitle: ["明细", "Contacts"],
    drillClose: ["关闭", "Close"],
    drillLoading: ["加载中…", "Loading…"],
    drillEmpty: ["无接触", "No contacts"],
    drillMore: ["还有 {n} 条，请导出 CSV", "{n} more: export CSV"],
    drillCsv: ["导出 CSV", "Export CSV"],
    drillAuth: ["需要 API 令牌（/wallboard#token=…）", "API token needed (/wallboard#token=…)"],
  };
  const DEPARTMENTS = {
    billing: "计费账务",
    network: "网络运维",
    tech_support: "技术支持",
    sales_retention: "营销与挽留",
    complaints: "投诉处理",
  };
  const ALL = "_all";
  const MAX_HOT = 8;
  const MAX_ALERTS = 6;
  const COLUMNS = [1, 1, 2, 3, 2, 3, 3, 4, 4, 3, 4, 4, 4, 5, 5, 5, 4];
  // Which contact list a tile's number opens (/api/contacts ?kpi=, docs/drilldown.md).
  const DRILL = {
    sl: "sl_missed",
    waiting: "waiting",
    oldest: "waiting",
    asa: "answered",
    abandon: "abandoned",
  };
  const DRILL_ROWS = 50;

  const state = {
    doc: null,
    hot: [],
    alerts: [],
    offsetMs: 0, // server clock - this screen's clock, from the last message
    lastMessageAt: 0,
    updates: 0,
    source: null,
    retryMs: 1000,
    retryTimer: null,
  };

  // ---------------------------------------------------------------- labels

  function fill(text, vars) {
    return text.replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? String(vars[k]) : ""));
  }

  function txt(key, vars) {
    const pair = LABELS[key] || [key, key];
    if (LANG === "en") return fill(pair[1], vars);
    if (LANG === "zh") return fill(pair[0], vars);
    return `${fill(pair[0], vars)} / ${fill(pair[1], vars)}`;
  }

  // A label element: one line in zh or en, Chinese over smaller English for "both".
  function lbl(key, vars, cls) {
    const pair = LABELS[key] || [key, key];
    const span = el("span", `lbl ${cls || ""}`.trim());
    if (LANG === "both") {
      span.append(el("span", "l-zh", fill(pair[0], vars)), el("span", "l-en", fill(pair[1], vars)));
    } else {
      span.textContent = fill(LANG === "en" ? pair[1] : pair[0], vars);
    }
    return span;
  }

  function deptName(id) {
    if (!id) return "";
    if (LANG === "en" || !DEPARTMENTS[id]) return id;
    return LANG === "zh" ? DEPARTMENTS[id] : `${DEPARTMENTS[id]} ${id}`;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------- formats

  // Percentages are truncated, not rounded: a number shown as 80 is never below an 80 target.
  function pctFloor(v) {
    return Math.floor(v * 100 + 1e-9);
  }

  function fmtPct1(v) {
    return v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "–";
    const total = Math.round(s);
    if (total < 60) return `${total}s`;
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = String(total % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  function fmtCount(v) {
    return v === null || v === undefined ? "–" : String(Math.round(v));
  }

  function clockFormat(timeZone, withSeconds) {
    const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withSeconds) opts.second = "2-digit";
    try {
      return new Intl.DateTimeFormat("en-GB", { ...opts, timeZone });
    } catch (_e) {
      return new Intl.DateTimeFormat("en-GB", opts); // unknown zone name: screen's own zone
    }
  }

  function fmtTime(iso, withSeconds) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return "";
    return clockFormat(state.doc && state.doc.timezone, withSeconds).format(new Date(t));
  }

  function status(v) {
    if (v === null || v === undefined) return "none";
    const pct = v * 100 + 1e-9;
    if (pct >= CONFIG.target_pct) return "green";
    if (pct >= CONFIG.target_pct - CONFIG.amber_band_pct) return "amber";
    return "red";
  }

  function attr(v) {
    return v === null || v === undefined ? "" : String(v);
  }

  // ---------------------------------------------------------------- the document

  function intervalBy(interval, by) {
    const body = state.doc && state.doc.intervals && state.doc.intervals[interval];
    return (body && body.by && body.by[by]) || {};
  }

  function nowBy(by) {
    return (state.doc && state.doc.now && state.doc.now[by]) || {};
  }

  function cell(map, name, group) {
    const groups = map[name];
    return (groups && groups[group]) || null;
  }

  function value(k) {
    return k && k.value !== undefined ? k.value : null;
  }

  // Which tiles: the kiosk's queues in its order, else every queue seen; department
  // tiles when the kiosk names departments (then queue tiles only if it names queues too).
  function tileGroups() {
    const out = [];
    const seen = (by) => {
      const names = new Set();
      for (const map of [intervalBy(CONFIG.interval, by), intervalBy("today", by), nowBy(by)]) {
        for (const groups of Object.values(map)) for (const g of Object.keys(groups)) names.add(g);
      }
      names.delete(ALL);
      return [...names].sort((a, b) => (a === "unknown") - (b === "unknown") || a.localeCompare(b));
    };
    if (CONFIG.queues.length) CONFIG.queues.forEach((q) => out.push(["queue", q]));
    else if (!CONFIG.departments.length) seen("queue").forEach((q) => out.push(["queue", q]));
    CONFIG.departments.forEach((d) => out.push(["department", d]));
    return out;
  }

  function tileData(by, group) {
    const iv = intervalBy(CONFIG.interval, by);
    const now = nowBy(by);
    return {
      sl: value(cell(iv, "service_level_ratio", group)),
      slToday: value(cell(intervalBy("today", by), "service_level_ratio", group)),
      // A queue absent from `now` has nobody waiting (the document lists only queues with waits).
      waiting: state.doc ? value(cell(now, "queue_depth", group)) ?? 0 : null,
      oldest: value(cell(now, "oldest_waiting_seconds", group)),
      asa: value(cell(iv, "asa_seconds", group)),
      abandon: value(cell(iv, "abandonment_ratio", group)),
      contacts: state.doc ? value(cell(iv, "contacts", group)) ?? 0 : null,
    };
  }

  // Header totals. Unfiltered: the document's own `_all`. Filtered: re-aggregated from the
  // shown groups' numerators and denominators (ratios are never averaged).
  function totals(tiles) {
    if (!CONFIG.queues.length && !CONFIG.departments.length) {
      return { scope: "totalAll", ...tileData("all", ALL) };
    }
    const by = tiles.length && tiles.every(([b]) => b === tiles[0][0]) ? tiles[0][0] : "queue";
    const groups = tiles.filter(([b]) => b === by).map(([, g]) => g);
    const iv = intervalBy(CONFIG.interval, by);
    const today = intervalBy("today", by);
    const now = nowBy(by);
    const sum = (map, name, scale) => {
      let num = 0;
      let den = 0;
      for (const g of groups) {
        const k = cell(map, name, g);
        if (k) {
          num += k.numerator;
          den += k.denominator;
        }
      }
      return den > 0 ? num / den / scale : null;
    };
    const count = (map, name) =>
      groups.reduce((acc, g) => acc + (value(cell(map, name, g)) || 0), 0);
    const oldest = groups
      .map((g) => value(cell(now, "oldest_waiting_seconds", g)))
      .filter((v) => v !== null);
    return {
      scope: "totalFloor",
      sl: sum(iv, "service_level_ratio", 1),
      slToday: sum(today, "service_level_ratio", 1),
      waiting: state.doc ? count(now, "queue_depth") : null,
      oldest: oldest.length ? Math.max(...oldest) : null,
      asa: sum(iv, "asa_seconds", 1000), // seconds KPIs count milliseconds in the numerator
      abandon: sum(iv, "abandonment_ratio", 1),
      contacts: state.doc ? count(iv, "contacts") : null,
    };
  }

  // ---------------------------------------------------------------- rendering

  function setData(node, d) {
    node.dataset.sl = attr(d.sl);
    node.dataset.slToday = attr(d.slToday);
    node.dataset.waiting = attr(d.waiting);
    node.dataset.oldest = attr(d.oldest);
    node.dataset.asa = attr(d.asa);
    node.dataset.abandon = attr(d.abandon);
    node.dataset.contacts = attr(d.contacts);
    node.dataset.status = status(d.sl);
  }

  function stat(key, shown, cls) {
    const box = el("div", `stat stat-${key} ${cls || ""}`.trim());
    box.dataset.k = key;
    box.append(lbl(key, null, "stat-label"), el("div", "stat-value", shown));
    return box;
  }

  function renderTile(by, group) {
    const d = tileData(by, group);
    const tile = el("article", "tile");
    tile.dataset.tile = by;
    tile.dataset.group = group;
    setData(tile, d);
    const head = el("header", "tile-head");
    head.append(
      el("h3", "tile-name", by === "department" ? deptName(group) : group),
      lbl(`status_${status(d.sl)}`, null, "badge"),
    );
    const sl = el("div", "sl");
    sl.append(
      el("span", "sl-value", d.sl === null ? "–" : String(pctFloor(d.sl))),
      el("span", "sl-unit", d.sl === null ? "" : "%"),
    );
    const slLabel = el("div", "sl-label");
    slLabel.append(lbl("sl"), el("span", "sl-target", ` · ${txt("target")} ${CONFIG.target_pct}%`));
    const stats = el("div", "stats");
    stats.append(
      stat("waiting", fmtCount(d.waiting), d.waiting > 0 ? "busy" : ""),
      stat("oldest", fmtDuration(d.oldest)),
      stat("asa", fmtDuration(d.asa)),
      stat("abandon", fmtPct1(d.abandon)),
    );
    tile.append(head, sl, slLabel, stats);
    if (CONFIG.interval !== "today") {
      const today = el("div", "tile-today");
      today.append(
        lbl("today"),
        el("span", `today-value s-${status(d.slToday)}`,
          d.slToday === null ? "–" : `${pctFloor(d.slToday)}%`),
        el("span", "today-contacts", ` · ${txt("contacts")} ${fmtCount(d.contacts)}`),
      );
      tile.append(today);
    }
    return tile;
  }

  function renderTiles() {
    const box = document.getElementById("tiles");
    const groups = tileGroups();
    const tiles = groups.map(([by, g]) => renderTile(by, g));
    const n = Math.max(1, tiles.length);
    // Columns for a wide screen: 3 in a row, 4 as 2x2, 5-6 as 3x2, ... (no half-empty rows).
    const cols = n < COLUMNS.length ? COLUMNS[n] : Math.ceil(Math.sqrt(n * 1.6));
    box.style.setProperty("--cols", String(cols));
    box.style.setProperty("--rows", String(Math.ceil(n / cols)));
    if (!tiles.length) {
      tiles.push(el("div", "empty", state.doc ? txt("noTiles") : txt("noData")));
    }
    box.replaceChildren(...tiles);
    return groups;
  }

  function renderTotals(groups) {
    const t = totals(groups);
    const box = document.getElementById("totals");
    box.dataset.scope = t.scope;
    setData(box, t);
    const sl = el("div", `total total-sl s-${status(t.sl)}`);
    sl.dataset.k = "sl";
    sl.append(
      lbl(t.scope, null, "total-scope"),
      el("div", "total-value", t.sl === null ? "–" : `${pctFloor(t.sl)}%`),
      lbl("sl", null, "total-label"),
    );
    const item = (key, shown) => {
      const node = el("div", `total total-${key}`);
      node.dataset.k = key;
      node.append(el("div", "total-value", shown), lbl(key, null, "total-label"));
      return node;
    };
    box.replaceChildren(
      sl,
      item("waiting", fmtCount(t.waiting)),
      item("oldest", fmtDuration(t.oldest)),
      item("asa", fmtDuration(t.asa)),
      item("abandon", fmtPct1(t.abandon)),
      item("contacts", fmtCount(t.contacts)),
    );
  }

  function renderHot() {
    const list = document.getElementById("hot");
    const rows = state.hot.slice(0, MAX_HOT).map((h) => {
      const li = el("li", h.alerting ? "hot-row alerting" : "hot-row");
      li.dataset.key = attr(h.key);
      li.dataset.count = attr(h.count);
      const change = typeof h.change === "number" ? `×${h.change.toFixed(1)}` : "";
      li.append(
        el("span", "hot-key", h.key),
        lbl(`dim_${h.dimension}`, null, "hot-dim"),
        el("span", "hot-count", fmtCount(h.count)),
        el("span", `hot-change ${h.change >= 2 ? "up" : ""}`, change),
      );
      return li;
    });
    list.replaceChildren(...(rows.length ? rows : [el("li", "none", txt("none"))]));
    list.dataset.count = String(rows.length);
  }

  function alertText(a) {
    const ann = a.annotations || {};
    const labels = a.labels || {};
    const zh = a.summary_zh || ann.summary_zh || ann.summary || labels.alertname || a.key || "";
    const en = a.summary_en || ann.summary_en || ann.summary || labels.alertname || a.key || "";
    return LANG === "en" ? [en] : LANG === "zh" ? [zh] : zh === en ? [zh] : [zh, en];
  }

  function renderAlerts() {
    const list = document.getElementById("alerts");
    const rows = state.alerts.slice(0, MAX_ALERTS).map((a) => {
      const labels = a.labels || {};
      const severity = a.severity || labels.severity || "warning";
      const li = el("li", `alert sev-${severity}`);
      li.dataset.severity = severity;
      li.dataset.alertId = attr(a.alert_id || a.fingerprint || labels.alertname);
      const [main, second] = alertText(a);
      li.append(el("div", "alert-text", main));
      if (second) li.append(el("div", "alert-text alert-en", second));
      const meta = [txt(`sev_${severity}`)];
      const dept = a.department || labels.department;
      if (dept) meta.push(deptName(dept));
      if (labels.queue) meta.push(labels.queue);
      const since = a.first_seen || a.startsAt;
      if (since) meta.push(txt("since", { t: fmtTime(since, false) }));
      li.append(el("div", "alert-meta", meta.join(" · ")));
      return li;
    });
    list.replaceChildren(...(rows.length ? rows : [el("li", "none", txt("none"))]));
    list.dataset.count = String(rows.length);
  }

  function renderFreshness() {
    const box = document.getElementById("freshness");
    const generated = state.doc ? Date.parse(state.doc.generated_at) : NaN;
    const ageS = Number.isNaN(generated)
      ? null
      : Math.max(0, (Date.now() + state.offsetMs - generated) / 1000);
    const stale = ageS === null || ageS > CONFIG.stale_after_s;
    box.dataset.stale = String(stale);
    box.dataset.ageSeconds = ageS === null ? "" : String(Math.round(ageS));
    document.body.classList.toggle("stale", stale && state.doc !== null);
    const clock = document.getElementById("updated-at");
    clock.textContent = state.doc ? fmtTime(state.doc.generated_at, true) : "--:--:--";
    clock.dataset.generatedAt = state.doc ? state.doc.generated_at : "";
    let age = "";
    if (ageS !== null) {
      age = ageS < 120
        ? txt("agoSeconds", { n: Math.round(ageS) })
        : txt("agoMinutes", { n: Math.floor(ageS / 60) });
      if (stale) age = `${txt("stale")} · ${age}`;
    }
    document.getElementById("updated-age").textContent = age;
  }

  function renderStatic() {
    document.getElementById("board-title").replaceChildren(lbl("title"));
    document.getElementById("interval").replaceChildren(lbl(`interval_${CONFIG.interval}`));
    document.getElementById("updated-label").replaceChildren(lbl("updated"));
    document.getElementById("hot-title").replaceChildren(lbl("hot"));
    document.getElementById("alerts-title").replaceChildren(lbl("alerts"));
    document.body.dataset.lang = LANG;
  }

  function render() {
    renderTotals(renderTiles());
    renderHot();
    renderAlerts();
    renderFreshness();
  }

  // ---------------------------------------------------------------- live stream

  function setConn(kind) {
    document.body.dataset.state = kind;
    document.getElementById("conn").textContent = txt(kind);
  }

  function onMessage(data, isUpdate) {
    state.lastMessageAt = Date.now();
    const serverTime = Date.parse(data.server_time);
    if (!Number.isNaN(serverTime)) state.offsetMs = serverTime - Date.now();
    setConn("live");
    if (isUpdate) {
      state.doc = data.kpis || null;
      state.hot = Array.isArray(data.hot_topics) ? data.hot_topics : [];
      state.alerts = Array.isArray(data.alerts) ? data.alerts : [];
      render();
      state.updates += 1;
      document.body.dataset.updates = String(state.updates);
    } else {
      renderFreshness();
    }
  }

  function parse(ev) {
    try {
      return JSON.parse(ev.data);
    } catch (_e) {
      return null; // a truncated frame: wait for the next one
    }
  }

  function scheduleReconnect() {
    if (state.retryTimer !== null) return;
    const wait = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, 30000);
    state.retryTimer = setTimeout(() => {
      state.retryTimer = null;
      connect();
    }, wait);
  }

  function connect() {
    if (state.source) state.source.close();
    setConn("connecting");
    state.lastMessageAt = Date.now();
    const source = new EventSource(CONFIG.stream);
    state.source = source;
    source.addEventListener("open", () => {
      state.retryMs = 1000;
      state.lastMessageAt = Date.now();
    });
    source.addEventListener("update", (ev) => {
      const data = parse(ev);
      if (data) onMessage(data, true);
    });
    source.addEventListener("heartbeat", (ev) => {
      const data = parse(ev);
      if (data) onMessage(data, false);
    });
    source.addEventListener("error", () => {
      setConn("offline");
      // CONNECTING: the browser retries on its own. CLOSED (an HTTP error, a proxy's
      // error page): it has given up, so we retry with a growing delay, forever.
      if (source.readyState === EventSource.CLOSED) scheduleReconnect();
    });
  }

  // Once a second: the age of the data, and a watchdog for a connection that is
  // open but silent (half-open TCP through a NAT or proxy never fires "error").
  function tick() {
    renderFreshness();
    const silentS = (Date.now() - state.lastMessageAt) / 1000;
    if (state.retryTimer === null && silentS > CONFIG.heartbeat_timeout_s) {
      setConn("offline");
      if (state.source) state.source.close();
      scheduleReconnect();
    }
  }

  // ---------------------------------------------------------------- drill-down

  // The API token, if the worker wants one: from the page's #token=..., never stored.
  function apiHeaders() {
    const m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    return m ? { Authorization: `Bearer ${decodeURIComponent(m[1])}` } : {};
  }

  function drillQuery(list, by, group, extra) {
    const q = new URLSearchParams({ kpi: list, interval: CONFIG.interval, ...extra });
    if (by !== "all" && group !== ALL) q.set(by, group);
    return q;
  }

  async function openDrill(list, by, group) {
    const panel = document.getElementById("drill");
    const body = document.getElementById("drill-body");
    panel.hidden = false;
    panel.dataset.list = list;
    panel.dataset.group = group;
    panel.dataset.state = "loading";
    document.getElementById("drill-title").textContent =
      `${txt("drillTitle")} · ${by === "department" ? deptName(group) : group} · ${list}`;
    const csv = document.getElementById("drill-csv");
    csv.href = `/api/contacts?${drillQuery(list, by, group, { format: "csv", limit: "10000" })}`;
    body.replaceChildren(el("p", "drill-note", txt("drillLoading")));
    let doc;
    try {
      const q = drillQuery(list, by, group, { limit: String(DRILL_ROWS) });
      const resp = await fetch(`/api/contacts?${q}`, { headers: apiHeaders() });
      if (resp.status === 401) throw new Error(txt("drillAuth"));
      doc = await resp.json();
      if (!resp.ok) throw new Error(doc.error || String(resp.status));
    } catch (e) {
      panel.dataset.state = "error";
      body.replaceChildren(el("p", "drill-note drill-error", String(e.message || e)));
      return;
    }
    panel.dataset.state = "ready";
    panel.dataset.total = String(doc.total);
    panel.dataset.numerator = String(doc.kpi_totals.numerator);
    panel.dataset.denominator = String(doc.kpi_totals.denominator);
    const k = doc.kpi_totals;
    const head = el("p", "drill-summary",
      `${doc.total} · ${doc.kpi} ${k.numerator}/${k.denominator}`);
    const rows = doc.contacts.map((c) => {
      const li = el("li", "drill-row");
      li.dataset.contactId = c.contact_id;
      const meta = [fmtTime(c.arrival_at || "", false), c.channel, c.queue,
        deptName((c.routing && c.routing.department) || c.department),
        c.tags && c.tags.urgency].filter(Boolean).join(" · ");
      li.append(el("div", "drill-meta", `${c.contact_id} · ${meta}`),
        el("div", "drill-text", c.summary || ""));
      return li;
    });
    const list_ = el("ol", "drill-list");
    list_.replaceChildren(...rows);
    const parts = [head, rows.length ? list_ : el("p", "drill-note", txt("drillEmpty"))];
    if (doc.total > rows.length) {
      parts.push(el("p", "drill-note", txt("drillMore", { n: doc.total - rows.length })));
    }
    body.replaceChildren(...parts);
  }

  function setupDrill() {
    const panel = el("aside", "drill");
    panel.id = "drill";
    panel.hidden = true;
    const bar = el("header", "drill-head");
    const title = el("h2", "drill-title");
    title.id = "drill-title";
    const csv = el("a", "drill-csv", txt("drillCsv"));
    csv.id = "drill-csv";
    const close = el("button", "drill-close", txt("drillClose"));
    close.type = "button";
    close.addEventListener("click", () => {
      panel.hidden = true;
    });
    bar.append(title, csv, close);
    const body = el("div", "drill-body");
    body.id = "drill-body";
    panel.append(bar, body);
    document.body.append(panel);
    // One listener for tiles that are re-rendered on every push.
    const open = (ev, box) => {
      const node = ev.target.closest("[data-k]");
      const owner = ev.target.closest("[data-tile]");
      const key = node ? node.dataset.k : "sl";
      if (!DRILL[key]) return;
      if (owner) openDrill(DRILL[key], owner.dataset.tile, owner.dataset.group);
      else if (box) openDrill(DRILL[key], "all", ALL);
    };
    document.getElementById("tiles").addEventListener("click", (ev) => open(ev, false));
    document.getElementById("totals").addEventListener("click", (ev) => open(ev, true));
  }

  renderStatic();
  setupDrill();
  render();
  connect();
  setInterval(tick, 1000);
})();
