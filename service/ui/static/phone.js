"use strict";
// The browser softphone: getUserMedia (echo cancellation) → AudioWorklet → 20 ms PCM16 frames
// over /phone/ws; agent audio and marks back to the worklet; marks reported when played.
(() => {
  const RATE = 16000;
  const $ = (id) => document.getElementById(id);
  const state = $("phone-state");
  // What the page played, on its own clock (ms of agent audio sent to the speaker): each
  // mark with the clock when it was reached (or flushed by a clear), and each clear.
  const stats = {
    marksPlayed: 0, msReceived: 0, framesSent: 0, callSid: "", ended: "",
    marks: [], clears: [],
  };
  window.phoneStats = stats; // read by the browser tests
  let ws = null, context = null, stream = null, node = null, feed = null;
  const pendingClears = [];

  function setState(text) { state.textContent = text; }
  function inCall(on) {
    $("call").disabled = on; $("hangup").disabled = !on;
    for (const b of document.querySelectorAll("#keypad button")) b.disabled = !on;
  }
  function showTranscript(sid) {
    feed = new EventSource(`/ui/calls/${encodeURIComponent(sid)}/feed`);
    feed.addEventListener("reset", () => $("transcript").replaceChildren());
    feed.addEventListener("event", (m) => {
      const e = JSON.parse(m.data);
      if (e.type !== "transcript") return;
      const li = document.createElement("li");
      li.className = e.role === "caller" ? "caller" : "agent";
      li.textContent = `${e.role}: ${e.text}`;
      $("transcript").appendChild(li);
    });
    feed.addEventListener("end", () => feed.close());
  }
  async function stop(reason) {
    stats.ended = reason || "hung up";
    setState(`ended: ${stats.ended}`);
    inCall(false);
    if (stream) for (const t of stream.getTracks()) t.stop();
    if (node) node.disconnect();
    if (context) await context.close();
    stream = context = node = null;
  }

  async function call() {
    inCall(true);
    setState("starting microphone…");
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
    });
    context = new AudioContext({ sampleRate: RATE });
    await context.audioWorklet.addModule("/ui/static/phone-worklet.js");
    node = new AudioWorkletNode(context, "phone-io", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    });
    context.createMediaStreamSource(stream).connect(node);
    node.connect(context.destination);
    await context.resume();

    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/phone/ws`);
    ws.binaryType = "arraybuffer";
    node.port.onmessage = (event) => {
      const m = event.data;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (m.type === "frame") { ws.send(m.pcm); stats.framesSent++; }
      else if (m.type === "cleared") {
        // Playback went on while the clear travelled: how long, on the shared wall clock.
        const now = performance.timeOrigin + performance.now();
        const sentAt = pendingClears.shift();
        stats.clears.push({ atMs: (m.at * 1000) / RATE, transitMs: sentAt ? now - sentAt : 0 });
      }
      else if (m.type === "played") {
        stats.marks.push({
          name: m.name, atMs: (m.at * 1000) / RATE, cleared: m.cleared,
          sentAt: performance.timeOrigin + performance.now(),
        });
        ws.send(JSON.stringify({ type: "mark", name: m.name }));
        stats.marksPlayed++;
        $("marks-played").textContent = String(stats.marksPlayed);
      }
    };
    ws.onopen = () => {
      setState("calling…");
      ws.send(JSON.stringify({ type: "start", profile: $("profile").value }));
    };
    ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        const pcm = new Int16Array(event.data);
        const samples = new Float32Array(pcm.length);
        for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 0x8000;
        node.port.postMessage({ type: "audio", samples }, [samples.buffer]);
        stats.msReceived += (pcm.length * 1000) / RATE;
        $("ms-received").textContent = String(Math.round(stats.msReceived));
        return;
      }
      const m = JSON.parse(event.data);
      if (m.type === "started") {
        stats.callSid = m.call_sid;
        setState("in call");
        const link = $("call-link");
        link.href = `/ui/calls/${encodeURIComponent(m.call_sid)}`;
        link.textContent = m.call_sid;
        link.hidden = false;
        showTranscript(m.call_sid);
      } else if (m.type === "mark" || m.type === "clear") {
        if (m.type === "clear") pendingClears.push(m.sent_at);
        node.port.postMessage(m);
      } else if (m.type === "hangup") {
        stats.ended = m.reason;
      }
    };
    ws.onclose = (event) => { ws = null; stop(stats.ended || event.reason || `closed ${event.code}`); };
  }

  $("call").addEventListener("click", () => {
    call().catch((error) => { setState(`failed: ${error.message}`); stop(String(error)); });
  });
  $("hangup").addEventListener("click", () => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
  });
  for (const button of document.querySelectorAll("#keypad button")) {
    button.addEventListener("click", () => {
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "dtmf", digit: button.dataset.digit }));
      }
    });
  }
})();
