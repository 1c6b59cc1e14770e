// sfu.js: a participant of an SFU room (docs/signaling.md): two peer connections, the
// publisher (we offer, sendonly) and the subscriber (the router offers, renegotiated as
// tracks come and go; each m-section's msid names the publishing participant).

import { Serial } from "./serial.js";

/** Lowest first; rids q/h/f at 1/4, 1/2 and full resolution. */
export const SIMULCAST_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** The router's host candidates pointed at ``via`` (a loopback impairment proxy). */
function viaCandidates(sdp, via) {
  return sdp.replace(/^(a=candidate:\S+ \d+ udp \d+ )\S+ \d+( typ host.*)$/gim,
    (_, head, tail) => `${head}${via.host} ${via.port}${tail}`);
}

export class SfuSession {
  /**
   * @param {import("./signaling.js").Signaling} signaling
   * @param {{localStream: MediaStream|null, rtcConfig: RTCConfiguration,
   *          onTrack: (participant: string, track: MediaStreamTrack) => void,
   *          onTrackGone: (participant: string, track: MediaStreamTrack) => void,
   *          onConnectionState: (role: string, state: string) => void,
   *          onError: (err: Error) => void}} options
   */
  constructor(signaling, options) {
    this.sig = signaling;
    this.opts = options;
    this.pub = null;
    this.sub = null;
    this.midTracks = {};          // subscriber mid -> router track id
    this.tracks = new Map();      // router track id -> {participant, track}
    this.serial = new Serial(options.onError);
    this.closed = false;
  }

  peerConnections() {
    return [this.pub, this.sub].filter(Boolean);
  }

  start(joined) {
    this.sub = this.newConnection("subscriber");
    this.sub.ontrack = (event) => this.onTrack(event);
    this.sig.on("offer", (msg) => this.serial.run(() => this.onOffer(msg)));
    this.sig.on("answer", (msg) => this.serial.run(() => this.onAnswer(msg)));
    this.sig.on("track_unpublished", (msg) => this.onUnpublished(msg.track));
    this.sig.on("transport", () => {});
    for (const t of joined.tracks ?? []) this.tracks.set(t.id, { participant: t.participant, track: null });
    // Rooms of three or more: camera video goes out as three simulcast layers and the router
    // sends each subscriber the one its link and window fit (docs/signaling.md, Simulcast).
    this.simulcast = (joined.participants ?? []).length + 1 >= 3;
    const stream = this.opts.localStream;
    if (stream && stream.getTracks().length) this.serial.run(() => this.publish(stream));
  }

  newConnection(role) {
    // The router is ICE-lite with a host candidate; TURN is offered too so a client whose
    // network blocks UDP to the router can still reach it through a relay.
    // Both sides use max-bundle: the router's subscriber offers always carry a BUNDLE group
    // (a parked, inactive section anchors it when there is nothing to receive).
    const pc = new RTCPeerConnection(this.opts.rtcConfig);
    pc.onconnectionstatechange = () => this.opts.onConnectionState(role, pc.connectionState);
    return pc;
  }

  async publish(stream) {
    this.pub = this.newConnection("publisher");
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      if (track.kind === "video" && this.simulcast) init.sendEncodings = SIMULCAST_LAYERS;
      this.pub.addTransceiver(track, init);
    }
    const offer = await this.pub.createOffer();
    await this.pub.setLocalDescription(offer);
    // No trickle: the ICE-lite router learns our address from our connectivity checks.
    this.sig.send({ type: "publish", sdp: this.pub.localDescription.sdp });
  }

  async onAnswer(msg) {
    if (!this.pub || this.pub.signalingState !== "have-local-offer") return;
    await this.pub.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    for (const r of msg.rejected ?? []) console.warn("router rejected track", r.mid, r.reason);
  }

  async onOffer(msg) {
    if (this.closed) return;
    this.midTracks = msg.tracks ?? {};
    const sdp = this.opts.via ? viaCandidates(msg.sdp, this.opts.via) : msg.sdp;
    await this.sub.setRemoteDescription({ type: "offer", sdp });
    const answer = await this.sub.createAnswer();
    await this.sub.setLocalDescription(answer);
    this.sig.send({ type: "answer", sdp: this.sub.localDescription.sdp });
    this.answersSent = (this.answersSent ?? 0) + 1;
    this.prune();
  }

  onTrack(event) {
    const mid = event.transceiver?.mid;
    const trackId = mid != null ? this.midTracks[mid] : undefined;
    const known = trackId ? this.tracks.get(trackId) : undefined;
    const participant = event.streams[0]?.id ?? known?.participant;
    if (!participant) return;
    if (trackId) this.tracks.set(trackId, { participant, track: event.track });
    event.track.addEventListener("ended", () => this.opts.onTrackGone(participant, event.track));
    this.opts.onTrack(participant, event.track);
  }

  onUnpublished(info) {
    const entry = this.tracks.get(info.id);
    this.tracks.delete(info.id);
    if (entry?.track) this.opts.onTrackGone(entry.participant, entry.track);
  }

  /** Drop tracks whose m-section the router retired (port 0 or no longer mapped). */
  prune() {
    const live = new Set(Object.values(this.midTracks));
    for (const [id, entry] of this.tracks) {
      if (entry.track && !live.has(id)) {
        this.tracks.delete(id);
        this.opts.onTrackGone(entry.participant, entry.track);
      }
    }
  }

  close() {
    this.closed = true;
    for (const pc of this.peerConnections()) pc.close();
    this.pub = null;
    this.sub = null;
    this.tracks.clear();
  }
}
