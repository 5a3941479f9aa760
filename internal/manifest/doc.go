// Package manifest renders the manifests of a job folder from the daemon's own index of
// segments: the HLS multivariant playlist (master.m3u8), one HLS media playlist per
// rendition (<name>/index.m3u8) and the DASH MPD (manifest.mpd). The job writes them
// with fileio's FS.WriteAtomic, so that a web server never sees a half-written file.
// layout.go names every served file once (MasterName, MPDName, MediaName, InitName,
// SegmentName); ffmpeg, the job and the scripts take the names from there.
//
// Every manifest is rendered whole from a Presentation each time it changes; nothing is
// patched and no library-side sliding window is used. All URIs are relative to the job
// folder, so any static web server can serve it. Rendering is a pure function of the
// Presentation: the same input gives the same bytes, which the golden tests rely on.
package manifest
