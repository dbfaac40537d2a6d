"use strict";
// One call: transcript, timeline and tool audit, filled from /ui/calls/{sid}/feed (SSE).
(() => {
  const sid = document.getElementById("call-data").dataset.callSid;
  const transcript = document.getElementById("transcript");
  const timeline = document.querySelector("#timeline tbody");
  const tools = document.querySelector("#tools tbody");
  const badge = document.getElementById("call-state");
  const SKIP = ["type", "at", "id", "text"];

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    row.appendChild(td);
    return td;
  }
  function details(entry, skip) {
    return Object.entries(entry).filter(([k]) => !skip.includes(k))
      .map(([k, v]) => `${k}=${v}`).join(" ");
  }
  function onEvent(entry) {
    if (entry.type === "transcript") {
      const li = document.createElement("li");
      li.className = entry.role === "caller" ? "caller" : "agent";
      li.textContent = `${entry.role}: ${entry.text}`;
      transcript.appendChild(li);
      return;
    }
    const row = document.createElement("tr");
    row.className = `timeline-${entry.type}`;
    cell(row, (entry.at || "").slice(11, 23));
    cell(row, entry.type);
    let text = details(entry, SKIP);
    if (entry.type === "barge_in") {
      text = `heard ${entry.audio_end_ms} ms of ${entry.sent_ms} ms sent (${entry.unheard_ms ?? 0} ms unheard) ${entry.item_id || ""}`;
    }
    cell(row, text);
    timeline.appendChild(row);
  }
  function onTool(entry) {
    const row = document.createElement("tr");
    row.className = `tool-${entry.state}`;
    cell(row, (entry.at || "").slice(11, 23));
    cell(row, entry.name);
    cell(row, entry.state);
    cell(row, details(entry, ["at", "id", "name", "state", "call_sid"]));
    tools.appendChild(row);
  }

  const feed = new EventSource(`/ui/calls/${encodeURIComponent(sid)}/feed`);
  feed.addEventListener("reset", () => {
    transcript.replaceChildren(); timeline.replaceChildren(); tools.replaceChildren();
  });
  feed.addEventListener("event", (m) => onEvent(JSON.parse(m.data)));
  feed.addEventListener("tool", (m) => onTool(JSON.parse(m.data)));
  feed.addEventListener("end", (m) => {
    badge.textContent = `ended: ${JSON.parse(m.data).end_reason}`;
    feed.close();
  });
})();
