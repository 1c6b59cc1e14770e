// ui.js: everything the person sees. Text only through textContent (names and chat are untrusted).

const $ = (id) => document.getElementById(id);

const STATE_WORDS = {
  starting: "starting", joining: "joining…", connecting: "connecting…", connected: "connected",
  reconnecting: "reconnecting…", waiting: "waiting…", full: "room full", left: "left",
  error: "error",
};

export function displayName(p) {
  return p?.name || `Guest ${String(p?.id ?? "").slice(0, 4)}`;
}

export class MeetingView {
  constructor() {
    this.tiles = new Map();   // participant id -> {figure, video, stream, caption}
    this.handlers = {};
    /** Called when a remote tile appears, goes or changes size (window resize, re-flow). */
    this.onTilesChanged = () => {};
    this.resizes = new ResizeObserver(() => this.onTilesChanged());
  }

  /** Wire the controls; `handlers` has mute(kind), leave(), rejoin(), retry(), chat(text). */
  bind(handlers) {
    this.handlers = handlers;
    $("mute-audio").addEventListener("click", () => handlers.mute("audio"));
    $("mute-video").addEventListener("click", () => handlers.mute("video"));
    $("leave").addEventListener("click", () => handlers.leave());
    $("rejoin").addEventListener("click", () => handlers.rejoin());
    $("retry").addEventListener("click", () => handlers.retry());
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("chat-input");
      const text = input.value.trim();
      if (text && handlers.chat(text)) input.value = "";
    });
  }

  setRoom(room, name) {
    $("room-name").textContent = room;
    $("self-name").textContent = name || "You";
    document.title = `${room} · Regio meeting`;
  }

  setState(state) {
    const el = $("status");
    el.dataset.state = state;
    el.textContent = STATE_WORDS[state] ?? state;
    const inMeeting = state === "connected" || state === "connecting";
    $("leave").disabled = !inMeeting && state !== "reconnecting";
    $("rejoin").hidden = !(state === "left" || state === "full" || state === "error");
  }

  setServedBy(answer) {
    $("served-by").textContent = answer
      ? `served by ${answer.router.node} in ${answer.router.region} (${answer.jurisdiction} jurisdiction)`
      : "not connected";
  }

  setMode(mode, relayOnly) {
    const words = mode === "p2p" ? "small room: peer to peer" : mode === "sfu" ? "routed by Regio" : "";
    $("mode").textContent = words && relayOnly ? `${words}, relayed through TURN` : words;
  }

  /** A message for the person; `level` error (red) or warn (amber); null hides it. */
  showBanner(text, { level = "error", retry = false } = {}) {
    const banner = $("banner");
    if (!text) {
      banner.hidden = true;
      return;
    }
    banner.dataset.level = level;
    $("banner-text").textContent = text;
    $("retry").hidden = !retry;
    banner.hidden = false;
  }

  setLocalStream(stream) {
    $("self-video").srcObject = stream;
    const has = (kind) => Boolean(stream?.getTracks().some((t) => t.kind === kind));
    $("mute-audio").disabled = !has("audio");
    $("mute-video").disabled = !has("video");
  }

  setMuted(kind, muted) {
    const button = $(kind === "audio" ? "mute-audio" : "mute-video");
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = kind === "audio"
      ? (muted ? "Unmute microphone" : "Mute microphone")
      : (muted ? "Turn camera on" : "Turn camera off");
  }

  setChatEnabled(enabled) {
    $("chat-input").disabled = !enabled;
    $("chat-send").disabled = !enabled;
    $("chat-input").placeholder = enabled ? "Say something" : "Chat is off in this room";
  }

  addChat(entry) {
    const li = document.createElement("li");
    if (entry.self) li.className = "self";
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = entry.self ? "You" : entry.name;
    const text = document.createElement("span");
    text.textContent = entry.text;
    li.append(from, text);
    const log = $("chat-log");
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }

  renderParticipants(self, others) {
    const list = $("participants");
    list.replaceChildren();
    const everyone = [...(self ? [{ ...self, self: true }] : []), ...others];
    for (const p of everyone) {
      const li = document.createElement("li");
      li.textContent = displayName(p);
      li.dataset.participant = p.id;
      if (p.self) li.className = "self";
      list.append(li);
    }
    $("participant-count").textContent = String(everyone.length);
    for (const p of others) this.tile(p).caption.textContent = displayName(p);
    const ids = new Set(others.map((p) => p.id));
    for (const id of [...this.tiles.keys()]) if (!ids.has(id)) this.removeTile(id);
  }

  tile(p) {
    let t = this.tiles.get(p.id);
    if (t) return t;
    const figure = document.createElement("figure");
    figure.className = "tile";
    figure.dataset.participant = p.id;
    figure.dataset.media = "waiting";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    caption.textContent = displayName(p);
    figure.append(video, caption);
    $("tiles").append(figure);
    this.resizes.observe(video);
    const stream = new MediaStream();
    video.srcObject = stream;
    video.addEventListener("loadeddata", () => { figure.dataset.media = "playing"; });
    t = { figure, video, stream, caption, name: displayName(p) };
    this.tiles.set(p.id, t);
    return t;
  }

  addTrack(participant, track, name) {
    const t = this.tile({ id: participant, name });
    for (const old of t.stream.getTracks()) {
      if (old.kind === track.kind && old !== track) t.stream.removeTrack(old);
    }
    if (!t.stream.getTracks().includes(track)) t.stream.addTrack(track);
    // Reassigning srcObject makes the element pick up tracks added later.
    t.video.srcObject = t.stream;
    this.play(t.video);
  }

  removeTrack(participant, track) {
    const t = this.tiles.get(participant);
    if (t && t.stream.getTracks().includes(track)) t.stream.removeTrack(track);
  }

  removeTile(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    t.video.srcObject = null;
    this.resizes.unobserve(t.video);
    t.figure.remove();
    this.tiles.delete(id);
    this.onTilesChanged();
  }

  /** The height a participant's video is shown at, in device pixels (0: no such tile). */
  shownHeight(participant) {
    const t = this.tiles.get(participant);
    return t ? Math.round(t.video.clientHeight * (window.devicePixelRatio || 1)) : 0;
  }

  clearTiles() {
    for (const id of [...this.tiles.keys()]) this.removeTile(id);
  }

  play(video) {
    video.play().catch((err) => {
      // AbortError: a newer srcObject/play() superseded this one; nothing to do.
      if (err?.name !== "NotAllowedError") return;
      // Autoplay with sound was refused: play muted and let a click bring the sound back.
      video.muted = true;
      video.play().catch(() => {});
      this.showBanner("Click anywhere to hear the others.", { level: "warn" });
      document.addEventListener("click", () => {
        for (const t of this.tiles.values()) t.video.muted = false;
        this.showBanner(null);
      }, { once: true });
    });
  }

  /** What tests and the page state see of each remote video (no addresses). */
  remoteVideos() {
    return [...this.tiles.entries()].map(([participant, t]) => ({
      participant,
      name: t.caption.textContent,
      currentTime: t.video.currentTime,
      videoWidth: t.video.videoWidth,
      videoHeight: t.video.videoHeight,
      readyState: t.video.readyState,
      tracks: t.stream.getTracks().map((x) => x.kind).sort(),
    }));
  }
}
