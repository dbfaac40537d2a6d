"use strict";
// The live-calls table, redrawn from each "calls" event of /ui/live (server-sent events).
(() => {
  const body = document.querySelector("#live-calls tbody");
  const count = document.getElementById("live-count");
  const none = document.getElementById("no-calls");
  const feedState = document.getElementById("feed-state");
  let calls = [];

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    row.appendChild(td);
    return td;
  }
  function duration(startedIso) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(startedIso)) / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  function draw() {
    body.replaceChildren();
    for (const call of calls) {
      const row = document.createElement("tr");
      row.dataset.callSid = call.call_sid;
      const link = document.createElement("a");
      link.href = `/ui/calls/${encodeURIComponent(call.call_sid)}`;
      link.textContent = call.call_sid;
      cell(row, "").appendChild(link);
      for (const key of ["carrier", "direction", "profile", "from", "to"]) cell(row, call[key]);
      cell(row, duration(call.started_at)).className = "duration";
      cell(row, call.state).className = "state";
      cell(row, call.barge_ins).className = "barge-ins";
      cell(row, call.last_heard_ms);
      body.appendChild(row);
    }
    count.textContent = String(calls.length);
    none.hidden = calls.length > 0;
  }

  const feed = new EventSource("/ui/live");
  feed.addEventListener("open", () => { feedState.textContent = "live"; });
  feed.addEventListener("error", () => { feedState.textContent = "reconnecting…"; });
  feed.addEventListener("calls", (message) => {
    calls = JSON.parse(message.data).calls;
    draw();
  });
  setInterval(draw, 1000); // durations tick

  const latencyBody = document.querySelector("#latency tbody");
  async function latency() {
    const reply = await fetch("/ui/latency", { credentials: "same-origin" });
    if (!reply.ok) return;
    const data = await reply.json();
    latencyBody.replaceChildren();
    for (const [path, summary] of Object.entries(data.latency || {})) {
      if (!summary || typeof summary !== "object") continue;
      const row = document.createElement("tr");
      cell(row, path);
      cell(row, summary.p50 ?? "");
      cell(row, summary.p99 ?? "");
      cell(row, summary.count ?? "");
      const plot = cell(row, "");
      for (const [key, cls] of [["p50", "bar"], ["p99", "bar p99"]]) {
        const bar = document.createElement("span");
        bar.className = cls;
        bar.style.width = `${Math.min(300, Number(summary[key] || 0) * 3)}px`;
        plot.appendChild(bar);
      }
      latencyBody.appendChild(row);
    }
  }
  latency();
  setInterval(latency, 5000);
})();
