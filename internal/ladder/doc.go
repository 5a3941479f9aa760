// Package ladder owns bitrate ladders: the profiles/<name>.yaml files that say
// which video rungs and audio renditions a job encodes, how long its segments
// are and how much of a live stream it keeps.
//
// Parse and Load read one ladder strictly: unknown keys, wrong types and
// out-of-range values are all reported at once, each as
// "<file>:<line>: <key path>: <message>". Store finds ladders by name in a
// directory that is re-read at every call and in the embedded profiles: the
// directory's ladders add to the embedded ones and replace those of the same
// name. Ladder.Plan applies a ladder to a probed source and decides what
// is really encoded: sizes that follow the source aspect ratio, no upscaling,
// frame rate, GOP and resolved rate-control values, and which source audio
// track each audio rendition encodes, in which language (language.go turns
// ISO 639-2 tags such as "fra" into the BCP 47 tags players match, "fr").
package ladder
