// serial.js: run async steps one after another (SDP handling must never interleave).

export class Serial {
  constructor(onError) {
    this.tail = Promise.resolve();
    this.onError = onError;
  }

  run(step) {
    this.tail = this.tail.then(step).catch((err) => this.onError?.(err));
    return this.tail;
  }
}
