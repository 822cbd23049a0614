// A WebSocket server on the ws package, for nbstream's tests: it echoes text and binary
// messages as they came, answers {"type": "time"} with {"type": "time", "now": ms} and
// {"type": "sum", "values": [...]} with {"type": "sum", "total": n}. It listens on
// 127.0.0.1, port 0, and prints "listening PORT" once it does; SIGTERM stops it.
import { WebSocketServer } from "ws";

const server = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 1 << 20 });

function answer(data, isBinary) {
  if (isBinary) return data;
  const text = data.toString();
  let value;
  try { value = JSON.parse(text); } catch { return text; }
  if (value && value.type === "time") return JSON.stringify({ type: "time", now: Date.now() });
  if (value && value.type === "sum" && Array.isArray(value.values)) {
    return JSON.stringify({ type: "sum", total: value.values.reduce((a, b) => a + b, 0) });
  }
  return text;
}

server.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(answer(data, isBinary), { binary: isBinary }));
});
server.on("listening", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
