// Reads the clock that a test source burns into its frames (internal/testmedia/clock.go
// has the layout and the Go reader this one mirrors): ClockBits columns across the top
// 2/9 of the frame, row A white for a 1, row B its inverse; the value is the wall-clock
// time in 10 ms steps modulo 2^16. Loaded by harness.html, and by clockcheck.mjs in node
// to check it against the Go reader on the same frames.
'use strict';

(function (root) {
  const BITS = 16;
  const UNIT_MS = 10;
  const WRAP = 1 << BITS;

  // readClock reads rgba (width x height, 4 bytes a pixel) and returns the clock value,
  // or -1 when a column does not read clearly (rows A and B less than 64 apart).
  function readClock(rgba, width, height) {
    const luma = (x, y) => {
      const i = 4 * (y * width + x);
      return 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
    };
    const mean = (cx, cy, rx, ry) => {
      let sum = 0, n = 0;
      for (let y = cy - ry; y <= cy + ry; y++) {
        for (let x = cx - rx; x <= cx + rx; x++) { sum += luma(x, y); n++; }
      }
      return sum / n;
    };
    let value = 0;
    for (let i = 0; i < BITS; i++) {
      const x = Math.floor((2 * i + 1) * width / (2 * BITS));
      const rx = Math.floor(width / (4 * BITS)), ry = Math.floor(height / 72);
      const a = mean(x, Math.floor(height / 18), rx, ry);
      const b = mean(x, Math.floor(3 * height / 18), rx, ry);
      if (Math.abs(a - b) < 64) return -1;
      value = value * 2 + (a > b ? 1 : 0);
    }
    return value;
  }

  // clockLatency is how many milliseconds before nowMs (Unix milliseconds) the frame
  // showing value was made.
  function clockLatency(value, nowMs) {
    const now = Math.floor(nowMs / UNIT_MS) % WRAP;
    return ((now - value + WRAP) % WRAP) * UNIT_MS;
  }

  root.transcoderdClock = { readClock, clockLatency, BITS, UNIT_MS };
})(typeof window !== 'undefined' ? window : globalThis);
