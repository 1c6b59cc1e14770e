// sizes.js: tell the router how large each remote video is shown (`video_size`,
// docs/signaling.md), so it never spends a subscriber's bandwidth on a simulcast layer larger
// than the tile can show. Sizes are read after layout settles (debounced) and only changes
// are sent: a window resize or a tile arriving or leaving re-flows every tile at once.

export const SIZE_DEBOUNCE_MS = 300;
const REFUSED_RETRY_MS = 1000;
const REFUSED_RETRIES = 5;

export class VideoSizeReporter {
  /**
   * @param {() => {track: string, height: number}[]} measure the shown height (device
   *   pixels) of every received video track; 0 for a track not laid out yet (not sent)
   * @param {(msg: object) => boolean} send a signaling message; false when it was not sent
   */
  constructor(measure, send) {
    this.measure = measure;
    this.send = send;
    this.sent = new Map();   // track id -> height the router was last told
    this.timer = null;
    this.refusals = 0;
  }

  /** Something may have changed size: measure once things settle. */
  schedule(delay = SIZE_DEBOUNCE_MS) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delay);
  }

  /** The router refused a size (`unknown_track`): a track we were just offered may not be
   * subscribed on its side yet. Send every size again a little later (a few times). */
  refused() {
    this.sent.clear();
    if (++this.refusals <= REFUSED_RETRIES) this.schedule(REFUSED_RETRY_MS);
  }

  flush() {
    this.timer = null;
    const live = new Set();
    for (const { track, height } of this.measure()) {
      live.add(track);
      if (!(height > 0) || this.sent.get(track) === height) continue;
      if (this.send({ type: "video_size", track, height })) this.sent.set(track, height);
    }
    for (const track of [...this.sent.keys()]) if (!live.has(track)) this.sent.delete(track);
  }

  /** A new router session knows none of our sizes. */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.refusals = 0;
    this.sent.clear();
  }

  /** What was last sent, by track id (for the page state). */
  snapshot() {
    return Object.fromEntries(this.sent);
  }
}
