// main.js: the meeting page's life: join through the front door, signal with the router, run
// an SFU or peer-to-peer session, and rejoin by itself (with backoff) when the router goes away.
// The page's state is readable (never writable) as `window.regio`, without any address.

import { JoinError, describeIceServers, joinRoom, rtcConfiguration } from "./join.js";
import { openCamera, stopStream } from "./media.js";
import { P2pSession } from "./p2p.js";
import { SfuSession } from "./sfu.js";
import { Signaling } from "./signaling.js";
import { VideoSizeReporter } from "./sizes.js";
import { collectStats } from "./stats.js";
import { MeetingView, displayName } from "./ui.js";

const SIGNALING_WORDS = {
  room_full: "This room is full: small rooms hold two people.",
  mode_mismatch: "This room already exists with another size (small or large). Use another room name.",
  replaced: "You joined this meeting again from another tab or window.",
  draining: "The meeting server is being taken out of service. Moving you to another one…",
  router_full: "The meeting server is full. Trying again…",
  token_expired: "Your admission to the meeting expired. Joining again…",
  token_invalid: "The meeting server did not accept your admission. Joining again…",
  wrong_router: "The meeting moved to another server. Joining again…",
  transport_closed: "The media connection failed. Reconnecting…",
  join_timeout: "The meeting server did not answer. Reconnecting…",
  signaling_lost: "The connection to the meeting server was lost. Reconnecting…",
};
const FATAL_SIGNALING = new Set(["mode_mismatch", "replaced"]);
const GHOST_GRACE_MS = 20000;   // our previous session may hold our place this long (router grace 10 s)
const MAX_BACKOFF_MS = 3000;

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() ?? "");
const sizeParam = params.get("size");
const options = {
  name: (params.get("name") ?? "").trim().slice(0, 64) || null,
  size: sizeParam === "small" || sizeParam === "large" ? sizeParam : null,
  policy: params.get("policy") || null,
};
const relayOnly = ["1", "true", "yes"].includes((params.get("relay") ?? "").toLowerCase());
// Test instrument: send the subscriber connection through a loopback impairment proxy
// (`regio impair`); only 127.x.y.z:PORT is accepted, anything else is ignored.
const viaMatch = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})$/.exec(params.get("via") ?? "");
const via = viaMatch ? { host: viaMatch[1], port: Number(viaMatch[2]) } : null;

const view = new MeetingView();
const model = {
  state: "starting",
  error: null,
  answer: null,
  iceServers: [],
  self: null,
  participants: new Map(),
  chatEnabled: false,
  chatLog: [],
  connection: {},
  link: null,
  stats: { audioPacketsReceived: 0, videoFramesDecoded: 0, candidateType: null, remoteCandidateType: null },
  reconnects: 0,
  muted: { audio: false, video: false },
  localStream: null,
  mediaError: null,
  everJoined: false,
  rejoinToken: null,
  ghostUntil: 0,
  tokenRefusals: 0,
};

let session = null;
let sig = null;
let generation = 0;
let attempt = 0;
let retryTimer = null;

/** The shown height of every video track the router sends us (SFU rooms only). */
function shownVideoSizes() {
  if (!(session instanceof SfuSession)) return [];
  const out = [];
  for (const [track, entry] of session.tracks) {
    if (entry.track?.kind === "video" && entry.track.readyState === "live") {
      out.push({ track, height: view.shownHeight(entry.participant) });
    }
  }
  return out;
}

const sizes = new VideoSizeReporter(shownVideoSizes, (msg) => Boolean(sig?.send(msg)));
view.onTilesChanged = () => sizes.schedule();

function setState(state) {
  model.state = state;
  view.setState(state);
}

function fatal(code, message, state = "error") {
  model.error = { code, message };
  setState(state);
  view.showBanner(message, { retry: true });
}

function renderParticipants() {
  view.renderParticipants(model.self, [...model.participants.values()]);
}

async function connect() {
  clearTimeout(retryTimer);
  const gen = ++generation;
  setState(model.everJoined ? "reconnecting" : "joining");
  let answer;
  try {
    answer = await joinRoom(room, { ...options, rejoin: model.rejoinToken });
  } catch (err) {
    if (gen !== generation) return;
    if (err.code === "invalid_rejoin") {
      // Our previous admission can no longer be shown (key rotated out, too old): join anew.
      model.rejoinToken = null;
      connect();
      return;
    }
    failed(err);
    return;
  }
  if (gen !== generation) return;
  model.answer = answer;
  model.iceServers = describeIceServers(answer);
  view.setServedBy(answer);
  view.setMode(answer.mode, relayOnly);
  setState(model.everJoined ? "reconnecting" : "connecting");
  const s = new Signaling(answer.router.signaling_url);
  let joined;
  try {
    joined = await s.open(answer.token);
  } catch (err) {
    if (gen === generation) failed(err);
    return;
  }
  if (gen !== generation) {
    s.close(true);
    return;
  }
  started(s, joined, answer);
}

function started(s, joined, answer) {
  sig = s;
  attempt = 0;
  model.tokenRefusals = 0;
  model.everJoined = true;
  model.error = null;
  model.self = { id: joined.participant, name: options.name };
  model.participants = new Map((joined.participants ?? []).map((p) => [p.id, p]));
  model.chatEnabled = Boolean(joined.chat);
  model.connection = { signaling: "open" };
  view.setChatEnabled(model.chatEnabled);
  const Session = joined.mode === "p2p" ? P2pSession : SfuSession;
  session = new Session(s, {
    localStream: model.localStream,
    via,
    rtcConfig: rtcConfiguration(answer, relayOnly),
    onTrack: (pid, track) => {
      view.addTrack(pid, track, displayName(model.participants.get(pid) ?? { id: pid }));
      sizes.schedule();
    },
    onTrackGone: (pid, track) => {
      view.removeTrack(pid, track);
      sizes.schedule();
    },
    onConnectionState: (role, state) => { model.connection[role] = state; },
    onError: (err) => console.error("media negotiation failed", err),
  });
  s.on("participant_joined", (msg) => {
    model.participants.set(msg.participant.id, msg.participant);
    renderParticipants();
  });
  s.on("participant_left", (msg) => {
    model.participants.delete(msg.participant.id);
    session?.peerLeft?.(msg.participant.id);
    renderParticipants();
  });
  s.on("chat", (msg) => addChat({ from: msg.from.id, name: displayName(msg.from), text: msg.text, self: false }));
  s.on("error", (msg) => {
    if (msg.code === "chat_rate_limited") view.showBanner("You are sending messages too fast.", { level: "warn" });
    else if (msg.code === "chat_disabled") view.setChatEnabled(false);
    else if (msg.in_reply_to === "video_size") sizes.refused();
    else console.warn("router:", msg.code, msg.message);
  });
  s.on("bye", () => {});
  s.on("link_stats", (msg) => {
    // The router's view of our subscriber connection; layers by publishing participant.
    model.link = { estimateBps: msg.estimate_bps ?? 0, rttMs: msg.rtt_ms ?? 0,
      layers: byPublisherName(msg.layers ?? {}) };
  });
  s.onlost = (code) => lost(code);
  renderParticipants();
  session.start(joined);
  setState("connected");
  view.showBanner(model.mediaError ? model.mediaMessage : null, { level: "warn" });
}

/** `{track id: value}` re-keyed by the name of the participant publishing each track. */
function byPublisherName(values) {
  const out = {};
  for (const [trackId, value] of Object.entries(values)) {
    const who = session?.tracks?.get(trackId)?.participant;
    out[who ? displayName(model.participants.get(who) ?? { id: who }) : trackId] = value;
  }
  return out;
}

/** Decoding figures of each received video, by the name of its publisher (SFU rooms). */
function receivedVideo() {
  const byTrack = {};
  const mids = session?.midTracks ?? {};
  for (const [mid, figures] of Object.entries(model.stats.videoByMid ?? {})) {
    if (mids[mid]) byTrack[mids[mid]] = figures;
  }
  return byPublisherName(byTrack);
}

/** A join attempt failed: retry by ourselves when that can help, else say why and stop. */
function failed(err) {
  const code = err.code ?? "error";
  if (err instanceof JoinError) {
    if (err.retryable) schedule(err.message, err.retryAfter);
    else fatal(code, err.message);
    return;
  }
  const words = SIGNALING_WORDS[code] ?? SIGNALING_WORDS.signaling_lost;
  if (code === "room_full") {
    // Rejoining right after a lost connection, our own old session may still hold a place.
    if (Date.now() < model.ghostUntil) schedule(SIGNALING_WORDS.signaling_lost);
    else fatal(code, words, "full");
  } else if (FATAL_SIGNALING.has(code)) {
    fatal(code, words);
  } else if (code === "token_invalid" && ++model.tokenRefusals > 3) {
    fatal(code, "The meeting server does not accept admissions from this front door.");
  } else {
    schedule(words);
  }
}

function schedule(message, retryAfterSeconds = null) {
  attempt += 1;
  const backoff = Math.min(MAX_BACKOFF_MS, 250 * 1.6 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
  const delay = retryAfterSeconds ? Math.max(retryAfterSeconds * 1000, backoff) : backoff;
  setState(model.everJoined ? "reconnecting" : "waiting");
  view.showBanner(message, { level: "warn" });
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
}

/** The router went away (restart, drain, network): rejoin through the front door. */
function lost(code) {
  teardown(false);
  model.rejoinToken = model.answer?.token ?? null;
  model.reconnects += 1;
  model.ghostUntil = Date.now() + GHOST_GRACE_MS;
  const words = SIGNALING_WORDS[code] ?? SIGNALING_WORDS.signaling_lost;
  model.error = { code, message: words };
  if (FATAL_SIGNALING.has(code)) fatal(code, words);
  else schedule(words);
}

function teardown(leave) {
  sizes.reset();
  sig?.close(leave);
  sig = null;
  session?.close();
  session = null;
  model.participants.clear();
  model.connection = {};
  view.clearTiles();
  renderParticipants();
  view.setChatEnabled(false);
}

function addChat(entry) {
  model.chatLog.push({ ...entry, at: Date.now() });
  view.addChat(entry);
}

async function ensureCamera() {
  if (model.localStream) return;
  const media = await openCamera();
  model.localStream = media.stream;
  model.mediaError = media.error;
  model.mediaMessage = media.message;
  view.setLocalStream(media.stream);
  model.muted = { audio: false, video: false };
  view.setMuted("audio", false);
  view.setMuted("video", false);
}

async function rejoin() {
  generation += 1;
  attempt = 0;
  model.rejoinToken = null;
  model.error = null;
  view.showBanner(null);
  teardown(true);
  await ensureCamera();
  connect();
}

const handlers = {
  mute(kind) {
    const tracks = model.localStream?.getTracks().filter((t) => t.kind === kind) ?? [];
    if (!tracks.length) return;
    model.muted[kind] = !model.muted[kind];
    for (const t of tracks) t.enabled = !model.muted[kind];
    view.setMuted(kind, model.muted[kind]);
  },
  leave() {
    generation += 1;
    clearTimeout(retryTimer);
    teardown(true);
    stopStream(model.localStream);
    model.localStream = null;
    view.setLocalStream(null);
    view.showBanner(null);
    setState("left");
  },
  rejoin,
  retry: rejoin,
  chat(text) {
    if (!sig || !model.chatEnabled) return false;
    if (!sig.send({ type: "chat", text })) return false;
    addChat({ from: model.self?.id ?? null, name: displayName(model.self), text, self: true });
    return true;
  },
};

function snapshot() {
  const a = model.answer;
  const state = {
    state: model.state,
    error: model.error,
    room,
    name: options.name,
    participant: model.self?.id ?? null,
    mode: a?.mode ?? null,
    policy: a?.policy ?? null,
    region: a?.router?.region ?? null,
    node: a?.router?.node ?? null,
    jurisdiction: a?.jurisdiction ?? null,
    routerJurisdiction: a?.router?.jurisdiction ?? null,
    relayOnly,
    iceServers: model.iceServers,
    participants: [...model.participants.values()].map((p) => ({ id: p.id, name: p.name ?? null })),
    remoteVideos: view.remoteVideos(),
    chatEnabled: model.chatEnabled,
    chatLog: model.chatLog.map(({ from, name, text, self, at }) => ({ from, name, text, self, at })),
    connection: { ...model.connection },
    ...model.stats,
    link: model.link,
    videoSizes: byPublisherName(sizes.snapshot()),
    receivedVideo: receivedVideo(),
    reconnects: model.reconnects,
    // Subscriber answers sent and pongs received on the current signaling connection: a pong
    // after an answer means the router has handled that answer.
    answersSent: session?.answersSent ?? 0,
    pongs: sig?.pongs ?? 0,
    muted: { ...model.muted },
    publishing: Boolean(model.localStream?.getTracks().length),
    mediaError: model.mediaError,
  };
  return JSON.parse(JSON.stringify(state));
}

function deepFreeze(value) {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

Object.defineProperty(window, "regio", {
  get: () => deepFreeze(snapshot()),
  enumerable: true,
  configurable: false,
});

setInterval(async () => {
  if (session) model.stats = await collectStats(session.peerConnections());
  if (session instanceof SfuSession && model.state === "connected") sig?.send({ type: "link_stats" });
}, 1000);

window.addEventListener("pagehide", () => sig?.close(true));

async function main() {
  view.bind(handlers);
  view.setRoom(room, options.name);
  setState("starting");
  await ensureCamera();
  if (model.mediaError) view.showBanner(model.mediaMessage, { level: "warn" });
  connect();
}

main();
