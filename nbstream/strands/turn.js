// The browser side of nbstream.strands.TurnView. It only draws what the model holds
// (turns_json, sessions) and writes the chosen session back; Python folds the events.

const STATES = {
  waiting: "waiting", speaking: "speaking…", tools: "running tools",
  done: "done", interrupted: "interrupted", cut: "connection cut",
  refused: "input refused", failed: "model failed",
};

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function clock(at) {
  const d = new Date(at * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false }) +
    `.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function ms(from, to) {
  return from != null && to != null ? `${Math.round((to - from) * 1000)} ms` : "";
}

function kb(bytes) {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${bytes} B`;
}

function audioBar(sizes, chunks, bytes) {
  if (!chunks) return "";
  const top = Math.max(...sizes, 1);
  const width = 3, height = 18;
  const bars = sizes.map((s, i) => {
    const h = Math.max(1, Math.round((s / top) * height));
    return `<rect x="${i * width}" y="${height - h}" width="${width - 1}" height="${h}"/>`;
  }).join("");
  const more = chunks > sizes.length ? ` (first ${sizes.length} shown)` : "";
  return `<div class="nbs-turn-audio" title="${chunks} audio chunks, ${kb(bytes)}${more}">` +
    `<svg width="${sizes.length * width}" height="${height}">${bars}</svg>` +
    `<span>${chunks} chunks · ${kb(bytes)}</span></div>`;
}

function tools(list) {
  return list.map((t) => {
    const args = esc(JSON.stringify(t.input ?? {}));
    const result = t.result == null ? "…" : esc(t.result);
    const cls = t.status === "error" ? "nbs-turn-tool nbs-turn-tool-error" : "nbs-turn-tool";
    return `<div class="${cls}">🔧 <b>${esc(t.name)}</b>(${args}) → ${result}</div>`;
  }).join("");
}

function turnHtml(turn) {
  const user = turn.user ||
    (turn.user_audio_bytes ? `🎤 ${kb(turn.user_audio_bytes)} of audio` : "");
  const said = turn.assistant || turn.text;
  const both = turn.assistant && turn.text && turn.text !== turn.assistant;
  const caret = turn.state === "speaking" ? '<span class="nbs-turn-caret">▍</span>' : "";
  const facts = [clock(turn.started), STATES[turn.state] ?? turn.state];
  const first = ms(turn.started, turn.first_output_at);
  if (first) facts.push(`first output ${first}`);
  const total = ms(turn.started, turn.ended);
  if (total) facts.push(`took ${total}`);
  const barge = turn.barge_in_at != null
    ? `<div class="nbs-turn-barge">✋ barge-in at ${clock(turn.barge_in_at)}</div>` : "";
  const notes = turn.notes.map((n) => `<div class="nbs-turn-note">⚠ ${esc(n)}</div>`).join("");
  return `<div class="nbs-turn nbs-turn-${esc(turn.state)}">` +
    `<div class="nbs-turn-head">#${turn.index} · ${esc(facts.join(" · "))}</div>` +
    (user ? `<div class="nbs-turn-user">${esc(user)}</div>` : "") +
    tools(turn.tools) +
    (said || caret ? `<div class="nbs-turn-assistant">${esc(said)}${caret}</div>` : "") +
    (both ? `<div class="nbs-turn-text">text: ${esc(turn.text)}</div>` : "") +
    audioBar(turn.audio, turn.audio_chunks, turn.audio_bytes) + barge + notes + `</div>`;
}

function render({ model, el }) {
  el.innerHTML = `
    <div class="nbs-turns">
      <div class="nbs-turns-head">
        <span class="nbs-turns-title"></span>
        <select class="nbs-turns-session" title="Session shown"></select>
        <span class="nbs-turns-count"></span>
      </div>
      <div class="nbs-turns-body"></div>
    </div>`;
  const $ = (selector) => el.querySelector(selector);
  const body = $(".nbs-turns-body");

  function drawHead() {
    $(".nbs-turns-title").textContent = model.get("title");
    const current = model.get("session");
    const sessions = model.get("sessions");
    const wanted = ["", ...sessions];
    if (current && !wanted.includes(current)) wanted.push(current);
    const html = wanted.map((s) =>
      `<option value="${esc(s)}">${esc(s === "" ? "latest session" : s)}</option>`).join("");
    const select = $(".nbs-turns-session");
    if (select.dataset.html !== html) {
      select.innerHTML = html;
      select.dataset.html = html;
    }
    select.value = current;
    $(".nbs-turns-count").textContent = `${model.get("total_turns")} turns`;
  }

  function drawTurns() {
    const turns = JSON.parse(model.get("turns_json"));
    body.innerHTML = turns.length ? turns.map(turnHtml).join("")
      : '<div class="nbs-turns-empty">No turns yet: say something to the agent.</div>';
    body.scrollTop = body.scrollHeight;
  }

  $(".nbs-turns-session").addEventListener("change", (e) => {
    model.set("session", e.target.value);
    model.save_changes();
  });
  const onHead = () => drawHead();
  const onTurns = () => drawTurns();
  ["change:title", "change:sessions", "change:session", "change:total_turns"]
    .forEach((name) => model.on(name, onHead));
  model.on("change:turns_json", onTurns);
  drawHead();
  drawTurns();
  return () => {
    ["change:title", "change:sessions", "change:session", "change:total_turns"]
      .forEach((name) => model.off(name, onHead));
    model.off("change:turns_json", onTurns);
  };
}

export default { render };
