// The browser side of nbstream.FlowView. It only draws what the model holds
// (rows_json, counts, rates, detail) and writes the user's choices (filters, pause,
// follow, selected row) back to the model; Python does all filtering.

const COLOURS = {
  chat: "#1f6feb", content: "#2da44e", tool_use: "#8250df", tool_result: "#a371f7",
  error: "#cf222e", invalid: "#cf222e", end: "#6e7781", ping: "#0a7ea4", pong: "#0a7ea4",
  welcome: "#1b7c83", server_shutdown: "#bc4c00", batch: "#9a6700", open: "#24292f",
  close: "#24292f", other: "#57606a", fault: "#bc4c00",
};
// Strands bidi envelopes (nbstream.strands): one colour per event family, so that a
// turn reads at a glance. First matching prefix wins; white tag text stays at 4.5:1 or
// more on each (WCAG AA).
const BIDI_FAMILIES = [
  ["bidi_connection_", "#57606a"], ["bidi_response_", "#1b7c83"],
  ["bidi_transcript_", "#0969da"], ["bidi_text_", "#1a7f37"], ["bidi_audio_", "#9a6700"],
  ["bidi_reasoning_", "#6639ba"], ["bidi_tool_", "#8250df"], ["tool_", "#8250df"],
  ["bidi_barge_in", "#cf222e"], ["bidi_usage", "#6e7781"], ["bidi_", "#0550ae"],
];
const ARROWS = { c2s: "C→S", s2c: "S→C", "": "" };
const LANE_ROWS = 18;
const LANE_SESSIONS = 4;

function colour(type) {
  if (COLOURS[type]) return COLOURS[type];
  const family = BIDI_FAMILIES.find(([prefix]) => type.startsWith(prefix));
  if (family) return family[1];
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${hash}, 55%, 40%)`;
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function short(session) {
  return session.length > 8 ? session.slice(0, 8) : session;
}

function size(bytes) {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${bytes} B`;
}

function options(select, values, current, allLabel) {
  const wanted = ["", ...values];
  if (current && !wanted.includes(current)) wanted.push(current);
  const html = wanted
    .map((v) => `<option value="${esc(v)}">${esc(v === "" ? allLabel : v)}</option>`)
    .join("");
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
  }
  select.value = current;
}

function lanes(rows) {
  const recent = rows.slice(-LANE_ROWS);
  const sessions = [...new Set(recent.map((r) => r[3]))];
  const names = new Map(recent.map((r) => [r[3], r[7] || r[3].slice(0, 6)]));
  if (recent.length === 0) return `<div class="nbs-note">No messages yet.</div>`;
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
    parts.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${height}" class="nbs-life"/>`);
    parts.push(`<text x="${x}" y="14" class="nbs-lane-head"><title>${esc(s)}</title>` +
      `${esc(names.get(s))}</text>`);
  }
  parts.push(`<line x1="${server}" y1="${top - 6}" x2="${server}" y2="${height}" class="nbs-life"/>`);
  parts.push(`<text x="${server}" y="14" class="nbs-lane-head">server</text>`);
  recent.forEach((r, i) => {
    const [seq, , dir, session, type] = r;
    const y = top + step * i + 6;
    const c = colour(type);
    const x = xOf(session);
    if (dir === "") {
      parts.push(`<circle cx="${x}" cy="${y}" r="4" fill="${c}"/>` +
        `<text x="${x + 8}" y="${y + 4}" class="nbs-lane-label" style="text-anchor:start" ` +
        `fill="${c}">${esc(type)}</text>`);
      return;
    }
    const [from, to] = dir === "c2s" ? [x, server] : [server, x];
    const head = dir === "c2s" ? -6 : 6;
    parts.push(`<g class="nbs-arrow" data-seq="${seq}">` +
      `<line x1="${from}" y1="${y}" x2="${to}" y2="${y}" stroke="${c}"/>` +
      `<polyline points="${to + head},${y - 4} ${to},${y} ${to + head},${y + 4}" ` +
      `fill="none" stroke="${c}"/>` +
      `<text x="${(from + to) / 2}" y="${y - 3}" class="nbs-lane-label" fill="${c}">` +
      `${esc(type)}</text></g>`);
  });
  return `<svg class="nbs-lanes" width="${width}" height="${height}">${parts.join("")}</svg>`;
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
      <div class="nbs-body">
        <div class="nbs-table-wrap">
          <table class="nbs-table">
            <colgroup><col class="nbs-c-time"/><col class="nbs-c-dir"/><col class="nbs-c-session"/>
              <col class="nbs-c-type"/><col class="nbs-c-size"/><col/></colgroup>
            <thead><tr><th>time</th><th>dir</th><th>session</th><th>type</th>
              <th>size</th><th>preview</th></tr></thead>
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
      .map(([t, n]) => `<span class="nbs-chip" style="border-color:${colour(t)};` +
        `color:${colour(t)}">${esc(t)} <b>${n}</b></span>`)
      .join("");
    options($(".nbs-type"), Object.keys(counts).concat(["open", "close"]),
      model.get("type_filter"), "all types");
    options($(".nbs-session"), model.get("sessions"), model.get("session_filter"),
      "all sessions");
    $(".nbs-pause").textContent = model.get("paused") ? "resume" : "pause";
    $(".nbs-follow").checked = model.get("follow");
  }

  function drawRows() {
    const rows = JSON.parse(model.get("rows_json"));
    const selected = model.get("selected");
    $("tbody").innerHTML = rows
      .map(([seq, clock, dir, session, type, bytes, preview, user]) =>
        `<tr class="nbs-row${seq === selected ? " nbs-selected" : ""}${type === "fault" ? " nbs-fault" : ""}" data-seq="${seq}">` +
        `<td>${esc(clock)}</td><td class="nbs-dir-${dir || "none"}">${ARROWS[dir] ?? ""}</td>` +
        `<td title="${esc(user ? `${session} (${user})` : session)}">${esc(short(session))}</td>` +
        `<td><span class="nbs-type-tag" style="background:${colour(type)}">${esc(type)}</span></td>` +
        `<td class="nbs-size">${dir ? size(bytes) : ""}</td>` +
        `<td class="nbs-preview">${esc(preview)}</td></tr>`)
      .join("");
    $(".nbs-lane-wrap").innerHTML = lanes(rows);
    if (model.get("follow")) wrap.scrollTop = wrap.scrollHeight;
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
    choose("selected", seq === model.get("selected") ? -1 : seq);
  });
  $(".nbs-text").value = model.get("text_filter");

  const onHead = () => drawHead();
  const onRows = () => drawRows();
  const onDetail = () => drawDetail();
  const heads = ["change:total", "change:rates", "change:counts", "change:sessions",
    "change:type_filter", "change:session_filter", "change:paused", "change:follow",
    "change:title"];
  heads.forEach((name) => model.on(name, onHead));
  model.on("change:rows_json", onRows);
  model.on("change:selected", onRows);
  model.on("change:detail", onDetail);
  drawHead();
  drawRows();
  drawDetail();
  return () => {
    heads.forEach((name) => model.off(name, onHead));
    model.off("change:rows_json", onRows);
    model.off("change:selected", onRows);
    model.off("change:detail", onDetail);
  };
}

export default { render };
