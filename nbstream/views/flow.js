// The browser side of nbstream.FlowView. It only draws what the model holds
// (rows_json, counts, rates, detail, a recording's position) and writes the user's
// choices (filters, pause, follow, selected row, play, seek, speed) back to the model;
// Python does all filtering and replaying.
// Colours are CSS classes (flow.css): the theme decides the shade, never this file.

const PALETTE = {
  chat: "chat", content: "content", tool_use: "tool_use", tool_result: "tool_result",
  error: "error", invalid: "error", end: "end", ping: "ping", pong: "ping",
  welcome: "welcome", server_shutdown: "server_shutdown", batch: "batch", auth: "x5",
  open: "text", close: "text", refused: "refused", fault: "fault", other: "other",
  text: "text", binary: "batch", frame: "other",
};
// Strands bidi envelopes (nbstream.strands): one palette tone per event family, so that
// a turn reads at a glance. The first matching prefix wins.
const BIDI_FAMILIES = [
  ["bidi_connection_", "other"], ["bidi_response_", "welcome"],
  ["bidi_transcript_", "chat"], ["bidi_text_", "content"], ["bidi_audio_", "batch"],
  ["bidi_reasoning_", "tool_result"], ["bidi_tool_", "tool_use"], ["tool_", "tool_use"],
  ["bidi_barge_in", "error"], ["bidi_usage", "end"], ["bidi_", "x5"],
];
const EXTRA = 8;
const ARROWS = { c2s: "C→S", s2c: "S→C", "": "" };
const CONNECTION_KINDS = ["open", "close", "refused"];
const LANE_ROWS = 18;
const SPEEDS = [0.25, 0.5, 1, 2, 4, 10];
const LANE_SESSIONS = 4;

// The CSS class that colours a type: its own, or one of EXTRA others picked by a hash.
function tone(type) {
  if (PALETTE[type]) return `nbs-t-${PALETTE[type]}`;
  const family = BIDI_FAMILIES.find(([prefix]) => type.startsWith(prefix));
  if (family) return `nbs-t-${family[1]}`;
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.charCodeAt(0)) % 9973;
  return `nbs-t-x${hash % EXTRA}`;
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function short(session) {
  return session.length > 8 ? session.slice(0, 8) : session;
}

// What a session is called: its user's name (with its id when the name is shared).
function namer(users) {
  const seen = new Map();
  for (const user of Object.values(users)) if (user) seen.set(user, (seen.get(user) || 0) + 1);
  return (session, user) => {
    const name = user || users[session];
    if (!name) return short(session);
    return seen.get(name) > 1 ? `${name} ${short(session)}` : name;
  };
}

function size(bytes) {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${bytes} B`;
}

// The time since the previous row of the same session: +0.4 ms, +12 ms, +3.1 s, +2 min.
function gapText(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 0.01) return `+${(seconds * 1000).toFixed(1)} ms`;
  if (seconds < 1) return `+${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `+${seconds.toFixed(1)} s`;
  return `+${Math.round(seconds / 60)} min`;
}

function options(select, values, current, allLabel, label = (v) => v) {
  const wanted = ["", ...values];
  if (current && !wanted.includes(current)) wanted.push(current);
  const html = wanted
    .map((v) => `<option value="${esc(v)}" title="${esc(v)}">` +
      `${esc(v === "" ? allLabel : label(v))}</option>`)
    .join("");
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
  }
  select.value = current;
}

function lanes(rows, name, note) {
  const recent = rows.slice(-LANE_ROWS);
  const sessions = [...new Set(recent.map((r) => r[3]))];
  if (recent.length === 0) return `<div class="nbs-note">${esc(note)}</div>`;
  if (sessions.length > LANE_SESSIONS) {
    return `<div class="nbs-note">Lanes show up to ${LANE_SESSIONS} sessions; ` +
      `filter by session to see one.</div>`;
  }
  const width = 320, top = 28, step = 20, margin = 45;
  const server = width - 30;
  const gap = (server - margin - 20) / Math.max(sessions.length, 1);
  const xOf = (s) => margin + gap * sessions.indexOf(s);
  const height = top + step * recent.length + 8;
  const parts = [];
  for (const s of sessions) {
    const x = xOf(s);
    const user = (recent.find((r) => r[3] === s && r[7]) || [])[7];
    parts.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${height}" class="nbs-life"/>`);
    parts.push(`<text x="${x}" y="14" class="nbs-lane-head"><title>${esc(s)}</title>` +
      `${esc(name(s, user))}</text>`);
  }
  parts.push(`<line x1="${server}" y1="${top - 6}" x2="${server}" y2="${height}" class="nbs-life"/>`);
  parts.push(`<text x="${server}" y="14" class="nbs-lane-head">server</text>`);
  recent.forEach((r, i) => {
    const [seq, , dir, session, type] = r;
    const y = top + step * i + 6;
    const x = xOf(session);
    if (dir === "") {
      parts.push(`<g class="nbs-marker ${tone(type)}" data-seq="${seq}">` +
        `<circle cx="${x}" cy="${y}" r="4" fill="currentColor"/>` +
        `<text x="${x + 8}" y="${y + 4}" class="nbs-lane-label" style="text-anchor:start">` +
        `${esc(type)}</text></g>`);
      return;
    }
    const [from, to] = dir === "c2s" ? [x, server] : [server, x];
    const head = dir === "c2s" ? -6 : 6;
    parts.push(`<g class="nbs-arrow ${tone(type)}" data-seq="${seq}">` +
      `<line x1="${from}" y1="${y}" x2="${to}" y2="${y}" stroke="currentColor"/>` +
      `<polyline points="${to + head},${y - 4} ${to},${y} ${to + head},${y + 4}" ` +
      `fill="none" stroke="currentColor"/>` +
      `<text x="${(from + to) / 2}" y="${y - 3}" class="nbs-lane-label">` +
      `${esc(type)}</text></g>`);
  });
  return `<svg class="nbs-lanes" width="${width}" height="${height}">${parts.join("")}</svg>`;
}

// Why the table is empty: nothing yet, or nothing kept matches the filters.
function emptyNote(kept, dropped) {
  if (kept === 0) return "No messages yet.";
  const older = dropped > 0
    ? `; ${dropped.toLocaleString("en")} older rows were dropped (see the counters above)`
    : "";
  return `No kept rows match the filters (${kept.toLocaleString("en")} kept${older}).`;
}

function render({ model, el }) {
  el.innerHTML = `
    <div class="nbs-flow">
      <div class="nbs-head">
        <span class="nbs-title"></span>
        <span><b class="nbs-total">0</b> messages</span>
        <span class="nbs-rate nbs-c2s"></span>
        <span class="nbs-rate nbs-s2c"></span>
      </div>
      <div class="nbs-counts"></div>
      <div class="nbs-controls">
        <select class="nbs-type" title="Filter by type"></select>
        <select class="nbs-session" title="Filter by session"></select>
        <input class="nbs-text" type="search" placeholder="filter text" />
        <button class="nbs-pause"></button>
        <label><input class="nbs-follow" type="checkbox" /> follow</label>
      </div>
      <div class="nbs-replay">
        <button class="nbs-play"></button>
        <input class="nbs-scrub" type="range" min="0" step="any" title="Go to any moment" />
        <span class="nbs-position"></span>
        <select class="nbs-speed" title="Speed">${SPEEDS.map((v) =>
          `<option value="${v}">${v}×</option>`).join("")}</select>
      </div>
      <div class="nbs-body">
        <div class="nbs-table-wrap">
          <table class="nbs-table">
            <colgroup><col class="nbs-c-time"/><col class="nbs-c-gap"/><col class="nbs-c-dir"/>
              <col class="nbs-c-session"/><col class="nbs-c-type"/><col class="nbs-c-size"/>
              <col/></colgroup>
            <thead><tr><th>time</th><th title="Since the previous row of the session">gap</th>
              <th>dir</th><th>session</th><th>type</th><th>size</th><th>preview</th></tr></thead>
            <tbody></tbody>
          </table>
        </div>
        <div class="nbs-lane-wrap"></div>
      </div>
      <pre class="nbs-detail"></pre>
    </div>`;
  const $ = (selector) => el.querySelector(selector);
  const wrap = $(".nbs-table-wrap");

  function drawHead() {
    $(".nbs-title").textContent = model.get("title");
    $(".nbs-total").textContent = model.get("total").toLocaleString("en");
    const [c2s, s2c] = model.get("rates");
    $(".nbs-c2s").textContent = `C→S ${c2s.toFixed(1)}/s`;
    $(".nbs-s2c").textContent = `S→C ${s2c.toFixed(1)}/s`;
    const counts = model.get("counts");
    $(".nbs-counts").innerHTML = Object.entries(counts)
      .map(([t, n]) => `<span class="nbs-chip ${tone(t)}">${esc(t)} ` +
        `<b>${n.toLocaleString("en")}</b></span>`)
      .join("");
    options($(".nbs-type"), Object.keys(counts).concat(CONNECTION_KINDS),
      model.get("type_filter"), "all types");
    const name = namer(model.get("session_users"));
    options($(".nbs-session"), model.get("sessions"), model.get("session_filter"),
      "all sessions", (s) => name(s));
    $(".nbs-pause").textContent = model.get("paused") ? "resume" : "pause";
    $(".nbs-follow").checked = model.get("follow");
  }

  function drawRows() {
    const rows = JSON.parse(model.get("rows_json"));
    const selected = model.get("selected");
    const name = namer(model.get("session_users"));
    const note = emptyNote(model.get("kept"), model.get("dropped"));
    $("tbody").innerHTML = rows.length === 0
      ? `<tr><td colspan="7" class="nbs-note">${esc(note)}</td></tr>`
      : rows.map(([seq, clock, dir, session, type, bytes, preview, user, gap]) =>
        `<tr class="nbs-row${seq === selected ? " nbs-selected" : ""}` +
        `${type === "fault" ? " nbs-fault" : ""}" data-seq="${seq}">` +
        `<td>${esc(clock)}</td><td class="nbs-gap">${gapText(gap)}</td>` +
        `<td class="nbs-dir-${dir || "none"}">${ARROWS[dir] ?? ""}</td>` +
        `<td title="${esc(session)}">${esc(name(session, user))}</td>` +
        `<td><span class="nbs-type-tag ${tone(type)}">${esc(type)}</span></td>` +
        `<td class="nbs-size">${dir ? size(bytes) : ""}</td>` +
        `<td class="nbs-preview">${esc(preview)}</td></tr>`)
        .join("");
    $(".nbs-lane-wrap").innerHTML = lanes(rows, name, note);
    if (model.get("follow")) wrap.scrollTop = wrap.scrollHeight;
  }

  // Selecting only marks the row: the table never moves under the pointer.
  function drawSelected() {
    const selected = String(model.get("selected"));
    for (const row of el.querySelectorAll("tr.nbs-row")) {
      row.classList.toggle("nbs-selected", row.dataset.seq === selected);
    }
  }

  // A finished recording: play, pause, scrub, speed. Hidden for live sources.
  let scrubbing = false;
  function drawReplay() {
    const duration = model.get("duration");
    $(".nbs-replay").style.display = duration > 0 ? "flex" : "none";
    if (duration <= 0) return;
    const scrub = $(".nbs-scrub");
    scrub.max = String(duration);
    if (!scrubbing) scrub.value = String(model.get("position"));
    $(".nbs-position").textContent =
      `${Number(scrub.value).toFixed(2)} / ${duration.toFixed(2)} s`;
    $(".nbs-play").textContent = model.get("playing") ? "■ stop" : "▶ play";
    $(".nbs-speed").value = String(model.get("speed"));
  }

  function drawDetail() {
    const detail = model.get("detail");
    const box = $(".nbs-detail");
    box.textContent = detail;
    box.style.display = detail ? "block" : "none";
  }

  function choose(name, value) {
    model.set(name, value);
    model.save_changes();
  }

  $(".nbs-type").addEventListener("change", (e) => choose("type_filter", e.target.value));
  $(".nbs-session").addEventListener("change", (e) => choose("session_filter", e.target.value));
  $(".nbs-text").addEventListener("input", (e) => choose("text_filter", e.target.value));
  $(".nbs-pause").addEventListener("click", () => choose("paused", !model.get("paused")));
  $(".nbs-follow").addEventListener("change", (e) => choose("follow", e.target.checked));
  $("tbody").addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-seq]");
    if (!row) return;
    const seq = Number(row.dataset.seq);
    // Reading a row stops following: new rows must not scroll it away.
    if (model.get("follow")) model.set("follow", false);
    choose("selected", seq === model.get("selected") ? -1 : seq);
  });
  $(".nbs-text").value = model.get("text_filter");
  $(".nbs-play").addEventListener("click", () => choose("playing", !model.get("playing")));
  $(".nbs-speed").addEventListener("change", (e) => choose("speed", Number(e.target.value)));
  $(".nbs-scrub").addEventListener("input", (e) => {
    scrubbing = true;
    choose("seek_to", Number(e.target.value));
    drawReplay();
  });
  $(".nbs-scrub").addEventListener("change", () => { scrubbing = false; });

  const onHead = () => drawHead();
  let drawing = false;  // rows_json, kept and dropped change together: draw once
  const onRows = () => {
    if (drawing) return;
    drawing = true;
    queueMicrotask(() => { drawing = false; drawRows(); });
  };
  const onFollow = () => { if (model.get("follow")) wrap.scrollTop = wrap.scrollHeight; };
  const onSelected = () => drawSelected();
  const onDetail = () => drawDetail();
  const onReplay = () => drawReplay();
  const replays = ["change:duration", "change:position", "change:playing", "change:speed"];
  const heads = ["change:total", "change:rates", "change:counts", "change:sessions",
    "change:session_users", "change:type_filter", "change:session_filter", "change:paused",
    "change:follow", "change:title"];
  const bodies = ["change:rows_json", "change:kept", "change:dropped"];
  heads.forEach((name) => model.on(name, onHead));
  bodies.forEach((name) => model.on(name, onRows));
  model.on("change:selected", onSelected);
  model.on("change:follow", onFollow);
  model.on("change:detail", onDetail);
  replays.forEach((name) => model.on(name, onReplay));
  drawHead();
  drawRows();
  drawDetail();
  drawReplay();
  return () => {
    heads.forEach((name) => model.off(name, onHead));
    bodies.forEach((name) => model.off(name, onRows));
    model.off("change:selected", onSelected);
    model.off("change:follow", onFollow);
    model.off("change:detail", onDetail);
    replays.forEach((name) => model.off(name, onReplay));
  };
}

export default { render };
