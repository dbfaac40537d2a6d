"use strict";
// The softphone's audio thread: microphone → 20 ms PCM16 frames; agent audio + marks → speaker.
// Memory: at most the queued agent audio (the service sends in real time, so ~a reply's length).
const FRAME = 320; // 20 ms at the page's 16 kHz AudioContext

class PhoneIO extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
    this.queue = []; // {samples: Float32Array, offset} | {mark: name}
    this.played = 0; // agent samples sent to the speaker so far (the page's playback clock)
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === "audio") this.queue.push({ samples: m.samples, offset: 0 });
      else if (m.type === "mark") this.queue.push({ mark: m.name });
      else if (m.type === "clear") {
        // Like a carrier's clear: queued audio is dropped and pending marks are echoed.
        for (const item of this.queue) {
          if (item.mark) this.port.postMessage({ type: "played", name: item.mark, at: this.played, cleared: true });
        }
        this.queue = [];
        this.port.postMessage({ type: "cleared", at: this.played });
      }
    };
  }

  process(inputs, outputs) {
    const mic = inputs[0] && inputs[0][0];
    if (mic) {
      for (let i = 0; i < mic.length; i++) {
        const s = Math.max(-1, Math.min(1, mic[i]));
        this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        if (this.filled === FRAME) {
          this.port.postMessage({ type: "frame", pcm: this.frame.buffer }, [this.frame.buffer]);
          this.frame = new Int16Array(FRAME);
          this.filled = 0;
        }
      }
    }
    const out = outputs[0][0];
    let written = 0;
    while (written < out.length && this.queue.length) {
      const head = this.queue[0];
      if (head.mark) {
        // Playback has reached the mark: everything before it has gone to the speaker.
        this.port.postMessage({ type: "played", name: head.mark, at: this.played, cleared: false });
        this.queue.shift();
        continue;
      }
      const n = Math.min(out.length - written, head.samples.length - head.offset);
      out.set(head.samples.subarray(head.offset, head.offset + n), written);
      written += n;
      head.offset += n;
      this.played += n;
      if (head.offset === head.samples.length) this.queue.shift();
    }
    out.fill(0, written);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("phone-io", PhoneIO);
