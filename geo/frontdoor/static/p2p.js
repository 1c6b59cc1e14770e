// p2p.js: a small room (two people): one peer connection straight to the other participant,
// or through TURN; offers, answers and ICE candidates travel in the router's `relay` messages.
// The participant who joins second makes the offer.

import { Serial } from "./serial.js";

export class P2pSession {
  /** Same options as SfuSession. */
  constructor(signaling, options) {
    this.sig = signaling;
    this.opts = options;
    this.pc = null;
    this.peer = null;
    this.pending = [];
    this.offerer = false;
    this.serial = new Serial(options.onError);
    this.closed = false;
  }

  peerConnections() {
    return this.pc ? [this.pc] : [];
  }

  start(joined) {
    this.sig.on("relay", (msg) => this.serial.run(() => this.onRelay(msg.from, msg.payload)));
    const other = (joined.participants ?? [])[0];
    if (other) {
      this.offerer = true;
      this.serial.run(() => this.offer(other.id, false));
    }
  }

  /** The router told us our peer left: forget its connection and wait for the next one. */
  peerLeft(id) {
    if (id !== this.peer) return;
    this.reset();
    this.offerer = false;
  }

  reset() {
    if (this.pc) {
      for (const r of this.pc.getReceivers()) if (r.track) this.opts.onTrackGone(this.peer, r.track);
      this.pc.close();
    }
    this.pc = null;
    this.peer = null;
    this.pending = [];
  }

  /** A connection to `peer`; the offerer adds its media now, the answerer once the offer is in. */
  connect(peer, offering) {
    if (this.pc && this.peer === peer) return this.pc;
    this.reset();
    this.peer = peer;
    const pc = new RTCPeerConnection(this.opts.rtcConfig);
    this.pc = pc;
    if (offering) {
      const stream = this.opts.localStream;
      const kinds = new Set();
      for (const track of stream?.getTracks() ?? []) {
        pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
        kinds.add(track.kind);
      }
      for (const kind of ["audio", "video"]) {
        if (!kinds.has(kind)) pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    pc.onicecandidate = (event) => {
      const c = event.candidate;
      const payload = c && c.candidate
        ? { kind: "candidate", candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }
        : { kind: "end-of-candidates" };
      this.sig.send({ type: "relay", to: peer, payload });
    };
    pc.ontrack = (event) => {
      event.track.addEventListener("ended", () => this.opts.onTrackGone(peer, event.track));
      this.opts.onTrack(peer, event.track);
    };
    pc.onconnectionstatechange = () => {
      this.opts.onConnectionState("peer", pc.connectionState);
      if (pc.connectionState === "failed" && this.offerer && pc === this.pc) {
        this.serial.run(() => this.offer(peer, true));
      }
    };
    return pc;
  }

  async offer(peer, restart) {
    const pc = restart && this.pc ? this.pc : this.connect(peer, true);
    const offer = await pc.createOffer({ iceRestart: restart });
    await pc.setLocalDescription(offer);
    this.sig.send({ type: "relay", to: peer, payload: { kind: "offer", sdp: pc.localDescription.sdp } });
  }

  /** Answerer: send our media on the transceivers the offer created (addTrack reuses them). */
  attachMedia(pc) {
    const stream = this.opts.localStream;
    for (const track of stream?.getTracks() ?? []) pc.addTrack(track, stream);
  }

  async onRelay(from, payload) {
    if (this.closed || !payload) return;
    switch (payload.kind) {
      case "offer": {
        const fresh = !(this.pc && this.peer === from);
        const pc = this.connect(from, false);
        await pc.setRemoteDescription({ type: "offer", sdp: payload.sdp });
        if (fresh) this.attachMedia(pc);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.sig.send({ type: "relay", to: from, payload: { kind: "answer", sdp: pc.localDescription.sdp } });
        await this.flush();
        break;
      }
      case "answer":
        if (this.pc && this.peer === from && this.pc.signalingState === "have-local-offer") {
          await this.pc.setRemoteDescription({ type: "answer", sdp: payload.sdp });
          await this.flush();
        }
        break;
      case "candidate":
        if (from !== this.peer && this.pc) return;
        this.pending.push(payload);
        if (this.pc?.remoteDescription) await this.flush();
        break;
      case "restart":
        if (this.offerer && this.peer === from) await this.offer(from, true);
        break;
      default:
        break;   // end-of-candidates: nothing to do
    }
  }

  async flush() {
    const items = this.pending;
    this.pending = [];
    for (const c of items) {
      try {
        await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex });
      } catch (err) {
        console.warn("ignored a remote candidate", err);
      }
    }
  }

  close() {
    this.closed = true;
    if (this.pc) this.pc.close();
    this.pc = null;
  }
}
