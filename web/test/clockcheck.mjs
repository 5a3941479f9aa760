// Reads the burnt-in clock (clock.js) off raw RGBA frames, for the Go test that checks
// this reader against testmedia.ReadClock on the same frames:
//
//   node clockcheck.mjs WIDTH HEIGHT frame1.rgba frame2.rgba ...
//
// prints one value a line (-1 for a frame that did not read clearly).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./clock.js');
const [w, h, ...files] = process.argv.slice(2);
for (const f of files) {
  console.log(globalThis.transcoderdClock.readClock(readFileSync(f), Number(w), Number(h)));
}
